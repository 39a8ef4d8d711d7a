"""The model's chat template, rendered as transformers renders it (sandboxed Jinja), without transformers.

One renderer for every place that turns messages into a prompt: the llama.cpp engine (which has no
transformers tokenizer to do it) and the web tier (which counts prompt tokens without loading the model). So
the prompt the web counts is, character for character, the prompt the worker feeds the model.
"""

from __future__ import annotations

import json
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
        return self._template.render(messages=messages, add_generation_prompt=True, tools=None, documents=None, **self._special)
