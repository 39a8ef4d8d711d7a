"""Counting prompt tokens in the web process, without torch or transformers: the served model's tokenizer
(`tokenizers`) and its chat template (sandboxed Jinja, as transformers renders it), published by the worker.

Used to refuse a job whose prompt cannot fit the model's context before it is queued, and to preview in the
admin the exact text the model will receive. A test checks the counts equal the engine's own.
"""

from __future__ import annotations

from tokenizers import Tokenizer

from ..engine.chat import ChatTemplate


class PromptCounter:
    def __init__(self, *, chat_template: str, tokenizer_json: str, special_tokens: dict, context_length: int):
        self._template = ChatTemplate(chat_template, special_tokens)
        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        # Users' text: special-token strings in it are read as plain text, as the engine reads them.
        self._plain = Tokenizer.from_str(tokenizer_json)
        self._plain.encode_special_tokens = True
        self.context_length = context_length

    def render(self, messages: list[dict]) -> str:
        """The exact prompt text the model receives, chat template applied, ready for its reply."""
        return self._template.render(messages)

    def count(self, messages: list[dict]) -> int:
        return sum(
            len((self._tokenizer if trusted else self._plain).encode(text, add_special_tokens=False).ids)
            for text, trusted in self._template.render_parts(messages)
        )
