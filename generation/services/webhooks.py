"""Outgoing webhooks: when a job ends, its JSON is POSTed to the job's callback_url, signed with the webhook
secret of the API key that created it, and retried with a doubling backoff. Deliveries run on a queue of their
own ("webhooks"), so a slow receiver never holds a generation worker; every attempt is kept (WebhookDelivery).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from ..models import Job, JobStatus, WebhookDelivery

log = logging.getLogger("generation.webhooks")

WEBHOOK_QUEUE = "webhooks"
EVENT = "job.finished"
USER_AGENT = "aigc-studio-webhooks"
FINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
ERROR_MAX_CHARS = 1000


def webhook_body(job: Job) -> bytes:
    """The job exactly as `GET /api/v1/jobs/<id>/` shows it (html_url as a path: there is no request)."""
    from ..api.serializers import JobSerializer

    data = JobSerializer(job).data
    return json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """HMAC-SHA256 of `<timestamp>.<body>`, hex: the timestamp is signed too, so an old request cannot be replayed
    with a fresh one."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _post(url: str, body: bytes, headers: dict) -> tuple[int | None, str]:
    """One POST: (status code or None, error text or ""). Never raises for the network or the receiver.

    http.client rather than urllib: the headers go out spelled as documented (urllib title-cases them), and a
    3xx is an answer like any other, never followed: following it would send the signed body to a URL the key
    holder never gave. HTTPS certificates are verified (the default context)."""
    parts = urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    host = parts.netloc.rpartition("@")[2]  # "host:port" or "[v6]:port", parsed by http.client
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not host:
        return None, "The URL has no host."
    connection = None
    try:
        connection = connection_class(host, timeout=settings.AIGC["WEBHOOK_TIMEOUT_S"])
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read(64 * 1024)  # let the receiver finish; only the start of an error is kept
    except (OSError, http.client.HTTPException, ValueError) as exc:  # refused, unknown host, TLS, timeout, bad URL
        return None, (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:ERROR_MAX_CHARS]
    finally:
        if connection is not None:
            connection.close()
    if 200 <= response.status < 300:
        return response.status, ""
    error = f"HTTP {response.status} {response.reason}"
    location = response.getheader("Location") if 300 <= response.status < 400 else None
    error += f" (a redirect to {location}, not followed)" if location else ""
    detail = answer[:300].decode("utf-8", "replace").strip()
    error += f": {detail}" if detail else ""
    return response.status, error[:ERROR_MAX_CHARS]


def webhook_deliver(job_id, attempt: int) -> float | None:
    """POST a finished job to its callback_url once and record the attempt. Returns the seconds to wait before
    the next attempt, or None when delivered, given up (after WEBHOOK_ATTEMPTS) or not deliverable at all."""
    job = (
        Job.objects.select_related("api_key", "template", "template_version")
        .prefetch_related("outputs")
        .filter(pk=job_id)
        .first()
    )
    if job is None or not job.callback_url or job.status not in FINAL:
        log.info("job %s: no callback to deliver (missing, no callback_url or not finished)", job_id)
        return None
    if job.api_key is None:  # nothing to sign with; the API only takes a callback_url from a key
        log.warning("job %s: callback_url without an API key to sign it; not delivered", job_id)
        return None
    url = job.callback_url
    if urlsplit(url).scheme not in ("http", "https"):
        WebhookDelivery.objects.create(job=job, url=url, attempt=attempt, error="Only http and https URLs are called.")
        return None
    body = webhook_body(job)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-AIGC-Event": EVENT,
        "X-AIGC-Delivery": f"{job.pk}-{attempt}",
        "X-AIGC-Timestamp": str(timestamp),
        "X-AIGC-Signature": f"sha256={sign(job.api_key.webhook_secret, timestamp, body)}",
    }
    started = time.monotonic()
    status_code, error = _post(url, body, headers)
    ok = status_code is not None and 200 <= status_code < 300
    WebhookDelivery.objects.create(
        job=job, url=url, attempt=attempt, status_code=status_code, ok=ok, error=error,
        duration_ms=round((time.monotonic() - started) * 1000),
    )  # fmt: skip
    if ok:
        log.info("job %s: webhook delivered (attempt %d, HTTP %s)", job.pk, attempt, status_code)
        return None
    if attempt >= settings.AIGC["WEBHOOK_ATTEMPTS"]:
        log.warning("job %s: webhook not delivered after %d attempts, giving up: %s", job.pk, attempt, error)
        return None
    delay = settings.AIGC["WEBHOOK_BACKOFF_S"] * 2 ** (attempt - 1)
    log.info("job %s: webhook attempt %d failed (%s); next in %.0f s", job.pk, attempt, error, delay)
    return delay


def webhook_schedule(job_id) -> None:
    """Called on commit when a job ends: queue its callback, if it asked for one. Never raises, so a broker that
    is down cannot fail the job (the callback is then lost, and logged)."""
    job = Job.objects.filter(pk=job_id).exclude(callback_url="").values("api_key_id").first()
    if job is None:
        return
    if job["api_key_id"] is None:
        log.warning("job %s: callback_url without an API key to sign it; not delivered", job_id)
        return
    from ..tasks import deliver_webhook

    try:
        deliver_webhook.apply_async(args=[str(job_id)], queue=WEBHOOK_QUEUE)
    except Exception:
        log.exception("could not send the webhook of job %s to the broker", job_id)
