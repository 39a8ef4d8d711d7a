"""`GET /api/v1/jobs/<id>/events/`: a job's stream as server-sent events.

An async view: under the ASGI server an open stream holds no worker thread. Entries carry their Redis Stream
id; a reader reconnecting with `Last-Event-ID` (or `?last_event_id=`) gets exactly the entries after it.
When the stream is gone (expired, or Redis lost it) and the job is finished, the text comes from the database.
"""

from __future__ import annotations

import json

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import Http404, JsonResponse, StreamingHttpResponse

from .. import events, selectors, services
from ..models import Job

BLOCK_MS = 15000


async def _user(request):
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() == "bearer":
        key = await sync_to_async(services.api_key_authenticate)(raw.strip())
        return key.user if key else None
    user = await request.auser()
    return user if user.is_authenticated else None


async def job_events(request, job_id):
    user = await _user(request)
    if user is None:
        body = {"error": {"message": "Authentication credentials were not provided or are invalid.", "type": "authentication_error",
                          "code": "not_authenticated", "param": None, "fields": {}}}  # fmt: skip
        return JsonResponse(body, status=401, headers={"WWW-Authenticate": 'Bearer realm="api"'})
    job = await sync_to_async(selectors.job_for_user)(user, job_id)
    if job is None:
        raise Http404
    last_id = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or "0-0"
    response = StreamingHttpResponse(_stream(job.pk, last_id), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _final_job(job_id):
    job = Job.objects.filter(pk=job_id).prefetch_related("outputs").first()
    if job is None or not job.is_final:
        return None
    return job.status, job.error, [o.text for o in job.outputs.all()]


async def _lost_and_final(client, key, job_id):
    """When the stream is gone (expired or lost with Redis) and the job is done: its final state, else None."""
    if await _exists(client, key):
        return None
    return await sync_to_async(_final_job)(job_id)


def _from_database(final, fresh: bool):
    """The job's text from the database. A fresh reader gets it as deltas; a reader that had part of the
    stream gets one `replace` per candidate, so nothing is doubled or missed."""
    status, error, texts = final
    for index, text in enumerate(texts):
        yield "delta" if fresh else "replace", json.dumps({"index": index, "text": text}, ensure_ascii=False), f"db-{index}"
    end = "error" if status == "failed" else "done"
    yield end, json.dumps({"status": status, **({"error": error} if error else {})}, ensure_ascii=False), "db-end"


async def job_event_entries(job_id, last_id: str = "0-0"):
    """A job's events after `last_id` as (event, data, id), ending with its done/error event; None while
    nothing happens (every BLOCK_MS), so that a caller can keep its connection alive."""
    key = events.stream_key(job_id)
    client = aioredis.from_url(settings.REDIS_URL)
    try:
        fresh = last_id == "0-0"
        if last_id.startswith("db-"):
            last_id = "0-0"
        final = await _lost_and_final(client, key, job_id)  # checked first: no need to wait for a lost stream
        while final is None:
            try:
                batch = await client.xread({key: last_id}, block=BLOCK_MS, count=200)
            except aioredis.RedisError:
                batch = None
            if not batch:
                final = await _lost_and_final(client, key, job_id)
                if final is None:
                    yield None
                continue
            for entry_id, fields in batch[0][1]:
                last_id, fresh = entry_id.decode(), False
                event = fields[b"event"].decode()
                yield event, fields[b"data"].decode(), last_id
                if event in ("done", "error"):
                    return
        for entry in _from_database(final, fresh):
            yield entry
    finally:
        await client.aclose()


async def _stream(job_id, last_id: str):
    async for entry in job_event_entries(job_id, last_id):
        yield ": waiting\n\n" if entry is None else events.sse(*entry)  # a comment keeps proxies from closing an idle stream


async def _exists(client, key) -> bool:
    try:
        return bool(await client.exists(key))
    except aioredis.RedisError:
        return False
