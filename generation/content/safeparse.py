"""The one parser of JSON and CSV that people send: request bodies, form fields, JSONL and CSV uploads.

Python's json module accepts `NaN` and `Infinity` (no JSON number; PostgreSQL refuses to store them), nests as
deep as the interpreter's recursion limit (and raises RecursionError, not ValueError, past it) and keeps
`\\u0000` in strings (PostgreSQL's jsonb refuses that too). Python's csv module raises `csv.Error` in the middle
of a file on a field longer than `csv.field_size_limit()` (131,072 characters unless raised, and a process-wide
value). Every one of those is refused here with an error that says where it is (the dotted path of a JSON value,
the row and column of a CSV cell), so that each layer above can answer a 400 or a form error naming the field,
never a 500.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator

MAX_DEPTH = 32  # a job body needs 3 levels; nothing legitimate comes near this
MAX_DIGITS = 4300  # Python's own bound on int() of a string (sys.get_int_max_str_digits), raised as ValueError
MAX_FIELD_CHARS = 131_072  # csv's own default field limit, kept as ours: far above any input, far below a file
# csv's own limit, raised once for the process: each field is measured here instead, so that a long value is an
# error naming its cell rather than a csv.Error mid-row (callers bound the whole text).
_CSV_LIMIT = 2**31 - 1


class JSONInputError(json.JSONDecodeError):
    """Refused JSON. `msg`: what; `where`: the dotted path of the value at fault ("" for the text as a whole);
    `syntax`: True when the text is no JSON at all (or holds NaN/Infinity), False when it is JSON of a shape
    refused (too deep, too long, a NUL character). A JSONDecodeError, so code that catches that catches it."""

    def __init__(self, msg: str, doc: str = "", pos: int = 0, *, where: str = "", syntax: bool = False) -> None:
        super().__init__(msg, doc, pos)
        self.where, self.syntax = where, syntax

    def __str__(self) -> str:
        return f"{self.where}: {self.msg}" if self.where else self.msg

    def __reduce__(self):
        return type(self), (self.msg, self.doc, self.pos), {"where": self.where, "syntax": self.syntax}


class CSVInputError(ValueError):
    """Refused CSV; its message starts with the row (and column) at fault: "Row 5, column text: ..."."""


def _no_constant(name: str):
    raise JSONInputError(f"{name} is not a JSON number", syntax=True)


def _int(text: str) -> int:
    if len(text) > MAX_DIGITS:
        raise JSONInputError(f"A number of {len(text):,} digits; at most {MAX_DIGITS:,}.")
    return int(text)


def loads(text: str | bytes, *, max_chars: int | None = None):
    """`json.loads`, refusing (JSONInputError) text over `max_chars`, NaN/Infinity, integers of more than
    MAX_DIGITS digits, values nested deeper than MAX_DEPTH and NUL characters in names or strings. Bytes are
    decoded as json.loads would (UTF-8/16/32)."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode(json.detect_encoding(text))
        except UnicodeDecodeError as exc:
            raise JSONInputError(f"not UTF-8 text (byte {exc.start + 1})", syntax=True) from None
    if max_chars is not None and len(text) > max_chars:
        raise JSONInputError(f"Longer than {max_chars:,} characters.")
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_int=_int)
    except JSONInputError:
        raise
    except json.JSONDecodeError as exc:
        raise JSONInputError(exc.msg, exc.doc, exc.pos, syntax=True) from None
    except ValueError as exc:  # anything else json (or int, float) refuses
        raise JSONInputError(str(exc), syntax=True) from None
    except RecursionError:
        where = _too_deep_at(text) or ""
        raise JSONInputError(f"Nested deeper than {MAX_DEPTH} levels.", where=where) from None
    found = problem(value)
    if found:
        raise JSONInputError(found[1], where=found[0])
    return value


def problem(value, path: str = "") -> tuple[str, str] | None:
    """(where, what) for the first value nested too deep or a string (key or value) holding NUL; else None.
    `where` is the dotted path below `path` ("" for the value itself). Iterative, so that a deep value cannot
    exhaust the stack here either."""
    stack = [(value, path, 0)]
    while stack:
        node, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            return where, f"Nested deeper than {MAX_DEPTH} levels."
        if isinstance(node, str):
            if "\x00" in node:
                return where, "Must not contain NUL characters."
        elif isinstance(node, dict):
            for key, child in node.items():
                if "\x00" in key:
                    return where, "Names must not contain NUL characters."
                stack.append((child, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(node, list):
            stack.extend((child, f"{where}.{i}" if where else str(i), depth + 1) for i, child in enumerate(node))
    return None


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:,]')


def _too_deep_at(text: str) -> str | None:
    """The dotted path of the first container nested deeper than MAX_DEPTH, read off the text without building
    anything (json itself could not: it ran out of stack). Only called on text json refused as too deep."""
    stack: list[list] = []  # per open container: [bracket, its current key or index]
    expect_key = False
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in ("{", "["):
            if len(stack) > MAX_DEPTH:  # this container's depth is len(stack), the root's 0
                return ".".join(str(place) for _, place in stack if place is not None)
            stack.append([token, None if token == "{" else 0])
            expect_key = token == "{"
        elif token in ("}", "]"):
            if stack:
                stack.pop()
        elif token == ",":
            if stack and stack[-1][0] == "[":
                stack[-1][1] += 1
            else:
                expect_key = True
        elif token == ":":
            expect_key = False
        elif expect_key and stack:
            try:
                stack[-1][1] = json.loads(token)
            except ValueError:
                stack[-1][1] = token[1:-1]
            expect_key = False
    return None


def csv_rows(
    text: str, *, max_field_chars: int = MAX_FIELD_CHARS, error: Callable[[str], Exception] = CSVInputError
) -> Iterator[tuple[int, list[str]]]:
    """(row number, values) of each CSV record of `text` (the header is row 1; a quoted value may span lines).
    Broken quoting and a value over `max_field_chars` raise `error(message)`, the message naming the row (and
    the column, by its header name): the caller's own error type, such as a form's or a serializer's."""
    csv.field_size_limit(_CSV_LIMIT)
    reader = csv.reader(io.StringIO(text, newline=""))  # newline="": quoted fields may hold \r, \n or \r\n
    header: list[str] | None = None
    number = 0  # the last row read
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise error(f"Row {number + 1}: not valid CSV ({exc}).") from None
        number += 1
        header = row if header is None else header
        for i, value in enumerate(row):
            if len(value) > max_field_chars:
                name = header[i].strip() if number > 1 and i < len(header) and len(header[i]) <= 200 else ""
                raise error(
                    f"Row {number}, column {name or i + 1}: {len(value):,} characters; at most {max_field_chars:,}."
                )
        yield number, row


def csv_dicts(
    text: str, *, max_field_chars: int = MAX_FIELD_CHARS, error: Callable[[str], Exception] = CSVInputError
) -> Iterator[dict]:
    """csv.DictReader's records (the first row names the columns; values past them under None, missing ones
    None; empty lines skipped), read through `csv_rows` and refused the same way."""
    rows = csv_rows(text, max_field_chars=max_field_chars, error=error)
    first = next(rows, None)
    if first is None:
        return
    header = first[1]
    for _, row in rows:
        if not row:
            continue
        record: dict = dict(zip(header, row, strict=False))
        if len(row) > len(header):
            record[None] = row[len(header) :]
        for name in header[len(row) :]:
            record[name] = None
        yield record
