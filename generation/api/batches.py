"""Reading a batch request: a JSON list of job bodies, or an uploaded CSV or JSONL file."""

from __future__ import annotations

import csv
import io
import json

from rest_framework.exceptions import ValidationError

JOB_FIELDS = ("kind", "template", "version", "label", "callback_url")


def parse_items(data: dict, limit: int) -> list[dict]:
    if ("jobs" in data) == ("file" in data):
        raise ValidationError({"jobs": ["Send either `jobs` (a JSON list) or `file` (CSV or JSONL), not both or neither."]})
    items = data["jobs"] if "jobs" in data else _from_file(data["file"])
    if not items:
        raise ValidationError({"jobs": ["The batch is empty."]})
    if len(items) > limit:
        raise ValidationError({"jobs": [f"At most {limit} jobs per batch; this one has {len(items)}."]})
    return items


def _from_file(upload) -> list[dict]:
    try:
        text = upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError({"file": ["The file is not UTF-8 text."]}) from None
    name = (upload.name or "").lower()
    if name.endswith((".jsonl", ".ndjson")) or (not name.endswith(".csv") and text.lstrip().startswith("{")):
        return _jsonl(text)
    return _csv(text)


def _jsonl(text: str) -> list[dict]:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError({"file": [f"Line {number} is not JSON: {exc.msg}."]}) from None
        if not isinstance(item, dict):
            raise ValidationError({"file": [f"Line {number} is not a JSON object."]})
        items.append(item)
    return items


def _csv(text: str) -> list[dict]:
    """One job per row: job fields by name, `params.<name>` columns as params, any other column an input."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise ValidationError({"file": ["The CSV file has no header row."]})
    items = []
    for row in reader:
        item: dict = {"inputs": {}, "params": {}}
        for column, value in row.items():
            if column is None or value is None or value == "":
                continue
            column = column.strip()
            if column in JOB_FIELDS:
                item[column] = int(value) if column == "version" and value.isdigit() else value
            elif column.startswith("params."):
                item["params"][column[7:]] = _number(value)
            else:
                item["inputs"][column] = value
        items.append(item)
    return items


def _number(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
