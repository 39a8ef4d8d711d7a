"""Reading a batch request: a JSON list of job bodies, or an uploaded CSV or JSONL file.

A file is the one input no tool built as JSON for us: spreadsheets export it and people edit it. Every way it
can be malformed (too big, not UTF-8, NUL bytes, broken quoting, ragged rows, huge fields, digits that are not
0-9, lines that are not JSON objects, JSON nested past reason) is answered here: 413 for the size, else a 400 on
`file` naming the row and column (CSV) or the line and field (JSONL). Errors found later, by the job validators,
are named the same way (`Parsed.name`), so a person can find the cell to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.conf import settings
from rest_framework.exceptions import ValidationError

from ..content import safeparse
from .errors import PayloadTooLarge

JOB_FIELDS = ("kind", "template", "version", "label", "callback_url")
VERSION = re.compile(r"[0-9]{1,9}")  # str.isdigit() also takes "²" (int() refuses it) and "١٢" (int() takes it)
# A multipart body is the file plus its part headers and boundaries: this much over the file limit is allowed
# in Content-Length before the body is refused unread.
MULTIPART_SLACK = 16 * 1024


@dataclass
class Parsed:
    items: list[dict]
    source: str = "jobs"  # "jobs" (a JSON list), "csv" or "jsonl"
    places: list[int] = field(default_factory=list)  # each item's row (CSV, the header is row 1) or line (JSONL)
    header: tuple[str, ...] = ()

    def name(self, index: int, field_name: str, messages: list[str]) -> tuple[str, list[str]]:
        """The error key and messages for item `index`'s `field_name`: "jobs.3.inputs.text" for a JSON list,
        "file" with "Row 5, column text: ..." (or "Line 5, field inputs.text: ...") for an upload."""
        if self.source == "jobs":
            return f"jobs.{index}.{field_name}", messages
        place = self.places[index]
        if self.source == "jsonl":
            return "file", [f"Line {place}, field {field_name}: {m}" for m in messages]
        column = field_name.removeprefix("inputs.")
        where = f"column {column}" if column in self.header else f"field {field_name}"
        return "file", [f"Row {place}, {where}: {m}" for m in messages]


def file_error(message: str) -> ValidationError:
    return ValidationError({"file": [message]})


def refuse_large_body(request) -> None:
    """413 before the body is read when its declared length is past what a batch may be: the file limit plus
    multipart framing for an upload (Django would otherwise spool all of it to disk first); a JSON body is held
    to DATA_UPLOAD_MAX_MEMORY_SIZE by its parser."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return  # the server has refused such a request already; nothing is read on our side
    if (
        request.content_type.startswith("multipart/")
        and length > settings.AIGC["MAX_BATCH_FILE_BYTES"] + MULTIPART_SLACK
    ):
        raise too_large()


def too_large() -> PayloadTooLarge:
    limit = settings.AIGC["MAX_BATCH_FILE_BYTES"]
    return PayloadTooLarge(f"The batch file is larger than {limit:,} bytes; split it into smaller files.", param="file")


def parse_items(data: dict, limit: int) -> Parsed:
    if ("jobs" in data) == ("file" in data):
        raise ValidationError(
            {"jobs": ["Send either `jobs` (a JSON list) or `file` (CSV or JSONL), not both or neither."]}
        )
    parsed = Parsed(data["jobs"]) if "jobs" in data else _from_file(data["file"])
    where = "jobs" if parsed.source == "jobs" else "file"
    if not parsed.items:
        raise ValidationError({where: ["The batch is empty."]})
    if len(parsed.items) > limit:
        raise ValidationError({where: [f"At most {limit} jobs per batch; this one has {len(parsed.items)}."]})
    return parsed


def _from_file(upload) -> Parsed:
    limit = settings.AIGC["MAX_BATCH_FILE_BYTES"]
    if upload.size is not None and upload.size > limit:
        raise too_large()
    raw = upload.read(limit + 1)
    if len(raw) > limit:
        raise too_large()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise file_error(f"The file is not UTF-8 text (line {line}, byte {exc.start + 1}).") from None
    name = (upload.name or "").lower()
    if name.endswith((".jsonl", ".ndjson")) or (not name.endswith(".csv") and text.lstrip().startswith("{")):
        return _jsonl(text)
    return _csv(text)


def _jsonl(text: str) -> Parsed:
    items, places = [], []
    # Split on newlines only: str.splitlines() also splits on U+2028 and other separators that JSON strings
    # may hold unescaped.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            item = safeparse.loads(line)
        except safeparse.JSONInputError as exc:
            if exc.syntax or not exc.where:
                raise file_error(f"Line {number} is not JSON: {exc.msg}.") from None
            raise file_error(f"Line {number}, field {exc.where}: {exc.msg}") from None
        if not isinstance(item, dict):
            raise file_error(f"Line {number} is not a JSON object (it is {_json_type(item)}).")
        items.append(item)
        places.append(number)
    return Parsed(items, "jsonl", places)


def _json_type(value) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _csv(text: str) -> Parsed:
    """One job per row: job fields by name, `params.<name>` columns as params, any other column an input."""
    rows = safeparse.csv_rows(text, error=file_error)  # each value at most safeparse.MAX_FIELD_CHARS
    header = next(rows, (1, None))[1]
    if not header or not any(h.strip() for h in header):
        raise file_error("The CSV file has no header row.")
    header = [h.strip() for h in header]
    _check_header(header)
    items, places = [], []
    for number, row in rows:
        if not any(value.strip() for value in row):
            continue  # a blank line
        items.append(_row(header, row, number))
        places.append(number)
    return Parsed(items, "csv", places, tuple(header))


def _check_header(header: list[str]) -> None:
    seen = set()
    for i, column in enumerate(header, start=1):
        if not column:
            raise file_error(f"Row 1, column {i}: the header names no column here.")
        if "\x00" in column or len(column) > 200:
            raise file_error(f"Row 1, column {i}: not a column name (NUL characters or over 200 characters).")
        if column in seen:
            raise file_error(f"Row 1, column {column}: named twice in the header.")
        seen.add(column)


def _row(header: list[str], row: list[str], number: int) -> dict:
    if len(row) < len(header):
        raise file_error(
            f"Row {number}, column {header[len(row)]}: missing (the row has {len(row)} values, "
            f"the header {len(header)} columns)."
        )
    if len(row) > len(header):
        raise file_error(f"Row {number}, column {len(header) + 1}: a value past the header's {len(header)} columns.")
    item: dict = {"inputs": {}, "params": {}}
    for column, value in zip(header, row, strict=True):
        where = f"Row {number}, column {column}"
        if "\x00" in value:
            raise file_error(f"{where}: contains a NUL character.")
        if value == "":
            continue
        if column == "version":
            if not VERSION.fullmatch(value.strip()):
                raise file_error(f"{where}: a version number, written with the digits 0-9 (got {value[:20]!r}).")
            item[column] = int(value.strip())
        elif column in JOB_FIELDS:
            item[column] = value
        elif column.startswith("params."):
            item["params"][column[7:]] = _param(value, where)
        else:
            item["inputs"][column] = value
    return item


def _param(value: str, where: str):
    """A number, boolean or list written as JSON; anything else is taken as text (a stop string)."""
    try:
        return safeparse.loads(value)
    except safeparse.JSONInputError as exc:
        if exc.syntax:
            return value
        raise file_error(f"{where}: {exc.msg}") from None
