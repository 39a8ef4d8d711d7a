"""What a webhook carries: the job exactly as `GET /api/v1/jobs/<id>/` shows it. Built here, where the API's
shape lives, and handed to the outbox sender by the task that runs it (services never import the API)."""

from __future__ import annotations

import json

from django.core.serializers.json import DjangoJSONEncoder

from .serializers import JobSerializer


def job_body(job) -> bytes:
    """The job's JSON (html_url as a path: there is no request), compact UTF-8."""
    data = JobSerializer(job).data
    return json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
