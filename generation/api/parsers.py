"""JSON that cannot reach the validators in a shape they could choke on.

Python's json module accepts `NaN` and `Infinity` (no JSON number; PostgreSQL refuses to store them), nests as
deep as the interpreter's recursion limit (and raises RecursionError, not ValueError, past it) and keeps
`\\u0000` in strings (PostgreSQL's jsonb refuses that too). Each of those is a 400 naming where it is, here,
for request bodies and for the lines of a JSONL batch file alike.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32  # a job body needs 3 levels; nothing legitimate comes near this


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def loads(text: str | bytes):
    """json.loads without NaN/Infinity; RecursionError becomes ValueError, as every other refusal is."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None


def problem(value, path: str = "") -> tuple[str, str] | None:
    """(where, what) for the first value nested too deep or a string (key or value) holding NUL; else None.
    Iterative, so that a deep value cannot exhaust the stack here either."""
    stack = [(value, path, 0)]
    while stack:
        node, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            return where or "body", f"Nested deeper than {MAX_DEPTH} levels."
        if isinstance(node, str):
            if "\x00" in node:
                return where or "body", "Must not contain NUL characters."
        elif isinstance(node, dict):
            for key, child in node.items():
                if "\x00" in key:
                    return where or "body", "Names must not contain NUL characters."
                stack.append((child, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(node, list):
            stack.extend((child, f"{where}.{i}" if where else str(i), depth + 1) for i, child in enumerate(node))
    return None


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, with the refusals above as 400s naming the field."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        # DRF reads the body from the request's stream, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE check (which
        # only request.body makes): read no more than it allows.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(body) > limit:
            raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
        try:
            data = loads(body.decode(encoding))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        found = problem(data)
        if found:
            raise ValidationError({found[0]: [found[1]]})
        return data
