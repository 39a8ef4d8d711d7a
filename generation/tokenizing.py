"""Counting prompt tokens in the web process, without torch or transformers: the served model's tokenizer
(`tokenizers`) and its chat template (sandboxed Jinja, as transformers renders it), published by the worker.

Used to refuse a job whose prompt cannot fit the model's context before it is queued, and to preview in the
admin the exact text the model will receive. A test checks the counts equal the engine's own.
"""

from __future__ import annotations

import json
from datetime import datetime

from jinja2 import ext
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer


def _raise(message):
    raise TemplateError(message)


class PromptCounter:
    def __init__(self, *, chat_template: str, tokenizer_json: str, special_tokens: dict, context_length: int):
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[ext.loopcontrols])
        env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self._template = env.from_string(chat_template)
        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        self._special = {k: v for k, v in special_tokens.items() if isinstance(v, str)}
        self.context_length = context_length

    def render(self, messages: list[dict]) -> str:
        """The exact prompt text the model receives, chat template applied, ready for its reply."""
        return self._template.render(messages=messages, add_generation_prompt=True, tools=None, documents=None, **self._special)

    def count(self, messages: list[dict]) -> int:
        return len(self._tokenizer.encode(self.render(messages), add_special_tokens=False).ids)
