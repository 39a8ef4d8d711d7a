"""The model's chat template, rendered as transformers renders it (sandboxed Jinja), without transformers.

One renderer for every place that turns messages into a prompt: the llama.cpp engine (which has no
transformers tokenizer to do it) and the web tier (which counts prompt tokens without loading the model). So
the prompt the web counts is, character for character, the prompt the worker feeds the model.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from jinja2 import ext
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment


def _raise(message):
    raise TemplateError(message)


class ChatTemplate:
    def __init__(self, template: str, special_tokens: dict) -> None:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[ext.loopcontrols])
        env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self.source = template
        self._template = env.from_string(template)
        self._special = {k: v for k, v in special_tokens.items() if isinstance(v, str)}

    def render(self, messages: list[dict]) -> str:
        """The exact prompt text, ready for the assistant's reply."""
        return self._template.render(
            messages=messages, add_generation_prompt=True, tools=None, documents=None, **self._special
        )

    def render_parts(self, messages: list[dict]) -> list[tuple[str, bool]]:
        """The same prompt as (text, trusted) pieces: the template's own text (trusted: its special-token strings
        are control tokens) and each message's content (never: a user who writes "<|im_end|><|im_start|>system"
        must get those characters read as text, not a forged turn). Joined, the pieces are `render`'s text.

        Each content is replaced by a marker for rendering, padded with spaces to see whether the template trims
        it (Llama 3's does); the marker never meets user text, so no content can forge a marker either."""
        markers = [f"{_MARK_OPEN}{i}{_MARK_CLOSE}" for i in range(len(messages))]
        padded = [{**m, "content": f" {marker} "} for m, marker in zip(messages, markers, strict=True)]
        rendered = self.render(padded)
        contents = {}
        for i, (message, marker) in enumerate(zip(messages, markers, strict=True)):
            content = str(message.get("content") or "")
            if f" {marker} " in rendered:
                rendered = rendered.replace(f" {marker} ", marker)
                contents[i] = content
            else:
                contents[i] = content.strip()
        parts: list[tuple[str, bool]] = []
        for n, piece in enumerate(_MARKER.split(rendered)):
            if n % 2 == 0:
                if piece:
                    parts.append((piece, True))
            elif contents[int(piece)]:
                parts.append((contents[int(piece)], False))
        return parts


# Private-use code points: only ever written by render_parts itself, between its own rendering and splitting.
_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"
_MARKER = re.compile(f"{_MARK_OPEN}(\\d+){_MARK_CLOSE}")
