"""ASGI: refuse a request body larger than any view takes, before Django reads it.

Django's ASGI handler reads the whole body (into memory, then a temporary file past FILE_UPLOAD_MAX_MEMORY_SIZE)
before any middleware or view runs, so a view's own size check would come after the upload had been taken in.
Here a declared Content-Length past the limit is answered 413 unread, and a body without one (chunked) is
counted as it arrives and cut at the limit.
"""

from __future__ import annotations

import json

from django.conf import settings

BATCH_PATH_SUFFIX = "/jobs/batch/"


def largest_body() -> int:
    """The most any view reads: a batch file with its multipart framing, or a JSON body (Django's limit)."""
    from .batches import MULTIPART_SLACK

    return max(settings.AIGC["MAX_BATCH_FILE_BYTES"] + MULTIPART_SLACK, settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0)


class BodyLimit:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = largest_body()
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            return await _refuse(send, scope, limit)
        received, refused = 0, False

        async def counted_receive():
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    await _refuse(send, scope, limit)
                    return {"type": "http.disconnect"}  # Django stops reading and answers nothing more
            return message

        async def guarded_send(message):
            if not refused:
                await send(message)

        await self.app(scope, counted_receive, guarded_send)


async def _refuse(send, scope, limit: int) -> None:
    param = "file" if scope.get("path", "").endswith(BATCH_PATH_SUFFIX) else None
    message = f"The request body is larger than {limit // 1024} KiB."
    error = {
        "message": message,
        "type": "invalid_request_error",
        "code": "payload_too_large",
        "param": param,
        "fields": {param: [message]} if param else {},
    }
    body = json.dumps({"error": error}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
