"""DRF's JSON parser through the one safe parser (generation/content/safeparse.py): NaN and Infinity, JSON nested
past reason and NUL characters are 400s naming where they are, as for every other JSON a user sends."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

from ..content import safeparse


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
            return safeparse.loads(body.decode(encoding))
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        except safeparse.JSONInputError as exc:
            if exc.syntax:
                raise ParseError(f"JSON parse error - {exc.msg}") from None
            raise ValidationError({exc.where or "body": [exc.msg]}) from None
