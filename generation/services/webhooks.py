"""Outgoing webhooks: when a job ends (event job.finished), and again when it is approved (job.approved, carrying
the chosen final text), its JSON is POSTed to the job's callback_url, signed with the webhook secret of the API
key that created it, and retried with a doubling backoff. Every attempt is kept (WebhookDelivery).

Nothing is lost between the commit and the send. The delivery is a row (WebhookOutbox) written in the very
transaction that ends the job; once committed, a kick asks the webhooks worker to send it now, and the sweeper
(beat, every AIGC_OUTBOX_SWEEP_EVERY_S) sends whatever is due: rows whose kick was lost, retries whose time has
come, rows whose sender died mid-send (their lease ran out). A row is claimed with SELECT ... FOR UPDATE SKIP
LOCKED, so two senders never take the same one. Delivery is at least once, under one X-AIGC-Delivery id.

Nor can a callback reach inside. The receiver's name is resolved once per attempt, every address is checked
(public unicast only, unless AIGC_WEBHOOK_ALLOW_PRIVATE), and the connection goes to the checked address while
the Host header and the TLS name (SNI, certificate) stay the URL's: a DNS answer that changes between the check
and the connect (rebinding) cannot swap it. Each attempt has a wall-clock deadline for connect, send and read
together, so a receiver trickling bytes cannot hold a sender; deliveries in flight are capped per API key.

Deliveries run on a queue of their own ("webhooks"), so a slow receiver never holds a generation worker; the
reconciler has another ("maintenance"), so slow receivers never delay the recovery of jobs.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import logging
import socket
import ssl
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import ApiKey, Job, JobStatus, ReviewState, WebhookDelivery, WebhookOutbox, WebhookOutboxState
from . import dispatch

log = logging.getLogger("generation.webhooks")

WEBHOOK_QUEUE = "webhooks"
EVENT = "job.finished"
APPROVED_EVENT = "job.approved"  # the job's JSON again, once approved: its chosen final text for the CMS
USER_AGENT = "aigc-studio-webhooks"
FINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
ERROR_MAX_CHARS = 1000
# Rows one sweep sends at most (one after another); beat sends the next sweep a few seconds later.
SWEEP_MAX_ROWS = 100
# Due rows one claim looks at, to find one whose key is under its cap.
CLAIM_SCAN = 50
# A lease outlives the attempt's deadline by this much: time to record the answer.
LEASE_MARGIN_S = 30.0

# Addresses no callback may reach even where ipaddress calls them public: cloud metadata and host services.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack instance metadata
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud metadata
        "168.63.129.16",  # Azure WireServer (a public address)
    )
)
SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598): ipaddress calls it neither
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class UnsafeTarget(Exception):
    """A callback_url the studio refuses to call: the message says why, for the key holder."""


def getaddrinfo(host: str, port: int) -> list[tuple]:
    """The one DNS lookup of an attempt: (family, sockaddr) of each TCP address. A module function, so that a
    test can stand in a resolver whose answers it controls (rebinding); the connection itself is always real."""
    return [(family, sockaddr) for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def address_refusal(address) -> str | None:
    """Why a callback may not go to this address, or None for a public unicast one. IPv6 forms that carry an IPv4
    address (IPv4-mapped, 6to4, Teredo, NAT64) are judged by that address too, since they can lead to it."""
    ip = (
        address if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address) else ipaddress.ip_address(address)
    )
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    kinds = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("shared (carrier-grade NAT)", ip.version == 4 and ip in SHARED),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("site-local", ip.version == 6 and ip.is_site_local),
    )
    for kind, hit in kinds:
        if hit:
            return f"a {kind} address"
    if ip.version == 6:
        embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        embedded += [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) for net in NAT64 if ip in net]
        for inner in embedded:
            if inner is not None and (why := address_refusal(inner)):
                return f"{why} ({inner}) inside an IPv6 address"
    if not ip.is_global:
        return "not a public address"
    return None


def _split(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a URL the studio may call at all; raises UnsafeTarget otherwise."""
    allowed = ("https", "http") if settings.AIGC["WEBHOOK_ALLOW_HTTP"] else ("https",)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget(f"Not a valid URL: {exc}.") from None
    if parts.scheme not in allowed:
        raise UnsafeTarget(
            "Only https URLs are called." if allowed == ("https",) else "Only http and https URLs are called."
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeTarget("The URL has no host.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path


def _checked_addresses(host: str, port: int, resolve) -> list[tuple]:
    """Resolve `host` once and refuse it unless every address is public (or AIGC_WEBHOOK_ALLOW_PRIVATE is on):
    one private address among public ones is enough for an attacker, so one refuses the host."""
    if not settings.AIGC["WEBHOOK_ALLOW_PRIVATE"]:
        if host.lower() in LOCAL_NAMES or host.lower().endswith(".localhost"):
            raise UnsafeTarget(f"{host} is this server: callbacks go to public addresses only.")
        if "%" in host:  # an IPv6 zone ("fe80::1%eth0"): only link-local addresses have one
            raise UnsafeTarget(f"{host} is a scoped (link-local) address: callbacks go to public addresses only.")
    addresses = (resolve or getaddrinfo)(host, port)
    if not addresses:
        raise UnsafeTarget(f"{host} has no address.")
    if not settings.AIGC["WEBHOOK_ALLOW_PRIVATE"]:
        for _family, sockaddr in addresses:
            ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])  # an IPv6 scope ("fe80::1%eth0") is link-local
            if why := address_refusal(ip):
                named = f"{host} is" if host == str(ip) else f"{host} resolves to {ip}, which is"
                raise UnsafeTarget(f"{named} {why}: callbacks go to public addresses only.")
    return addresses


def callback_url_check(url: str, *, resolve=None) -> None:
    """At creation: refuse a callback_url that is plainly internal (a private or loopback literal, localhost, a
    name resolving to such addresses) or not https (http where AIGC_WEBHOOK_ALLOW_HTTP). Raises ValidationError
    naming `callback_url`. A name that does not resolve yet is let through: the check at send time is the one
    that counts, since what a name resolves to can change after this."""
    try:
        _scheme, host, port, _path = _split(url)
        with contextlib.suppress(OSError):  # unknown today; checked again, address by address, at each attempt
            _checked_addresses(host, port, resolve)
    except UnsafeTarget as exc:
        raise ValidationError({"callback_url": [str(exc)]}) from None


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """HMAC-SHA256 of `<timestamp>.<body>`, hex: the timestamp is signed too, so an old request cannot be replayed
    with a fresh one."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


class _Pinned:
    """Connects to one checked (family, sockaddr) while `host` stays the URL's name, so http.client sends it as
    the Host header (and HTTPS verifies the certificate for it). Never a second DNS lookup."""

    address: tuple
    deadline: float

    def _open(self) -> socket.socket:
        family, sockaddr = self.address
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(0.001, min(self.timeout, self.deadline - time.monotonic())))
            sock.connect(sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            sock.close()
            raise
        # The TLS handshake (which CPython bounds as a whole by the socket's timeout) gets what is left.
        sock.settimeout(max(0.001, self.deadline - time.monotonic()))
        return sock


class _PinnedHTTPConnection(_Pinned, http.client.HTTPConnection):
    def connect(self):
        self.sock = self._open()
        self.sock.settimeout(self.timeout)


class _PinnedHTTPSConnection(_Pinned, http.client.HTTPSConnection):
    def connect(self):
        self.sock = self._context.wrap_socket(self._open(), server_hostname=self.host)
        self.sock.settimeout(self.timeout)


def _error_text(exc: BaseException) -> str:
    return (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:ERROR_MAX_CHARS]


def _post(
    scheme: str, host: str, port: int, path: str, addresses: list[tuple], body: bytes, headers: dict
) -> tuple[int | None, str]:
    """One POST to the checked addresses, in turn until one connects: (status code or None, error text or "").
    Never raises for the network or the receiver.

    http.client rather than urllib: the headers go out spelled as documented (urllib title-cases them), and a 3xx
    is an answer like any other, never followed: following it would send the signed body to a URL the key holder
    never gave (and that nobody checked). HTTPS certificates are verified for the URL's host name.

    The deadline is wall-clock: a watchdog shuts the socket down when it passes, whatever the receiver is doing
    (a per-read timeout alone lets one byte a second go on forever)."""
    limit = settings.AIGC["WEBHOOK_DEADLINE_S"]
    deadline = time.monotonic() + limit
    context = ssl.create_default_context() if scheme == "https" else None
    current: dict = {}
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        connection = current.get("connection")
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):  # wakes a blocked read; TLS state is left alone
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    watchdog = threading.Timer(limit, cut)
    watchdog.daemon = True
    watchdog.start()
    response, answer, error = None, b"", ""
    try:
        for address in addresses:
            if time.monotonic() >= deadline:
                break
            kwargs = {"context": context} if context is not None else {}
            cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
            connection = cls(host, port, timeout=settings.AIGC["WEBHOOK_TIMEOUT_S"], **kwargs)
            connection.address, connection.deadline = address, deadline
            current["connection"] = connection
            try:
                try:
                    connection.connect()
                except OSError as exc:  # refused or unreachable: the next checked address, if any
                    error = _error_text(exc)
                    continue
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read(64 * 1024)  # let the receiver finish; only the start of an error is kept
                break
            except (OSError, http.client.HTTPException, ValueError) as exc:  # TLS, timeout, bad answer, cut
                response, error = None, _error_text(exc)
                break
            finally:
                connection.close()
    finally:
        watchdog.cancel()
    if expired.is_set():
        return None, f"No complete answer within the deadline of {limit:g} s (AIGC_WEBHOOK_DEADLINE_S); cut."
    if response is None:
        return None, error or "No address to connect to."
    if 200 <= response.status < 300:
        return response.status, ""
    error = f"HTTP {response.status} {response.reason}"
    location = response.getheader("Location") if 300 <= response.status < 400 else None
    error += f" (a redirect to {location}, not followed)" if location else ""
    detail = answer[:300].decode("utf-8", "replace").strip()
    error += f": {detail}" if detail else ""
    return response.status, error[:ERROR_MAX_CHARS]


# --- The outbox ---------------------------------------------------------------------------------------------


def webhook_enqueue(job_id, event: str = EVENT) -> WebhookOutbox | None:
    """Called inside the transaction that ends a job (finish, fail, cancel), or that approves it (APPROVED_EVENT):
    write the callback it owes, if it asked for one, so that the callback commits or rolls back with that state.
    Once committed, a kick asks a webhooks worker to send it now; losing the kick (a broker down, a process
    killed at that instant) only leaves the row for the sweeper. One delivery per job and event: a job approved
    again after a reopen is not called back again (the approved feed has it).

    (A job's own run_job message needs no outbox: the job row is its own record, and the reconciler sends again
    any queued job whose message was never sent or was lost: see enqueued_at in services.reconcile_jobs.)"""
    jobs = Job.objects.filter(pk=job_id, status__in=FINAL).exclude(callback_url="")
    if event == APPROVED_EVENT:
        jobs = jobs.filter(review_state=ReviewState.APPROVED)
    job = jobs.values("api_key_id").first()
    if job is None:
        return None
    if job["api_key_id"] is None:  # the API only takes a callback_url from a key; its key was deleted since
        log.warning("job %s: callback_url without an API key to sign it; not delivered", job_id)
        return None
    row, created = WebhookOutbox.objects.get_or_create(
        job_id=job_id, event=event, defaults={"api_key_id": job["api_key_id"]}
    )
    if created:
        transaction.on_commit(lambda: _kick(row.pk))
    return row


def _kick(delivery_id) -> None:
    """Best effort, after commit: never raises, so a broker that is down cannot fail the job."""
    try:
        dispatch.send(dispatch.SEND_WEBHOOK, [str(delivery_id)], queue=WEBHOOK_QUEUE)
    except Exception:
        log.exception("could not send webhook %s to the broker; the sweeper will send it", delivery_id)


def _claim(now, pk=None) -> WebhookOutbox | None:
    """Take one due row (or the row `pk` if it is due) for this sender: a lease, and one more attempt counted.
    Rows locked by another sender are skipped, not waited for. A row whose key already has
    AIGC_WEBHOOK_MAX_IN_FLIGHT_PER_KEY sends in flight is left for later: deferred, never dropped. The key's row is
    locked while its sends are counted, so two senders cannot both take the last place."""
    cap = settings.AIGC["WEBHOOK_MAX_IN_FLIGHT_PER_KEY"]
    lease = timedelta(seconds=settings.AIGC["WEBHOOK_DEADLINE_S"] + LEASE_MARGIN_S)
    with transaction.atomic():
        due = (
            WebhookOutbox.objects.select_for_update(skip_locked=True)
            .filter(state=WebhookOutboxState.PENDING, next_attempt_at__lte=now)
            .filter(Q(leased_until__isnull=True) | Q(leased_until__lte=now))
            .order_by("next_attempt_at")
        )
        if pk is not None:
            due = due.filter(pk=pk)
        full = set()
        for row in due[:CLAIM_SCAN]:
            if cap and row.api_key_id is not None:
                if row.api_key_id in full:
                    continue
                list(ApiKey.objects.select_for_update().filter(pk=row.api_key_id).values_list("pk", flat=True))
                in_flight = WebhookOutbox.objects.filter(
                    api_key_id=row.api_key_id, state=WebhookOutboxState.PENDING, leased_until__gt=now
                ).count()
                if in_flight >= cap:
                    full.add(row.api_key_id)
                    continue
            row.attempts += 1
            row.leased_until = now + lease
            row.save(update_fields=["attempts", "leased_until"])
            return row
    if full:
        log.info("webhooks of %d API key(s) deferred: %d in flight per key at most", len(full), cap)
    return None


def _attempt(row: WebhookOutbox, render, resolve) -> tuple[bool, bool]:
    """Send a claimed row once and record the attempt. Returns (delivered, final): final when there is nothing
    more to try (delivered, refused, undeliverable, or the last attempt)."""
    job = (
        Job.objects.select_related("api_key", "template", "template_version")
        .prefetch_related("outputs")
        .filter(pk=row.job_id)
        .first()
    )
    attempt, url = row.attempts, job.callback_url if job else ""
    key = ApiKey.objects.filter(pk=row.api_key_id).first() if row.api_key_id else None

    def record(error: str, status_code=None, ok=False, duration_ms=None) -> None:
        WebhookDelivery.objects.create(
            job=job, url=url, attempt=attempt, status_code=status_code, ok=ok, error=error, duration_ms=duration_ms
        )

    if job is None or not url or job.status not in FINAL:
        log.info("webhook %s: job %s has no callback to deliver", row.pk, row.job_id)
        return False, True
    if key is None:
        log.warning("job %s: its API key was deleted, nothing to sign the callback with; not delivered", job.pk)
        record("The API key that created the job was deleted: nothing to sign the callback with.")
        return False, True
    started = time.monotonic()
    try:
        scheme, host, port, path = _split(url)
        addresses = _checked_addresses(host, port, resolve)
    except UnsafeTarget as exc:
        log.warning("job %s: callback to %s refused: %s", job.pk, url, exc)
        record(f"Refused: {exc}")
        return False, True
    except OSError as exc:  # the name does not resolve (now): retried like a refused connection
        status_code, error = None, f"Could not resolve {host}: {_error_text(exc)}"
    else:
        body = render(job)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-AIGC-Event": row.event,
            "X-AIGC-Delivery": str(row.pk),
            "X-AIGC-Timestamp": str(timestamp),
            "X-AIGC-Signature": f"sha256={sign(key.webhook_secret, timestamp, body)}",
        }
        status_code, error = _post(scheme, host, port, path, addresses, body, headers)
    ok = status_code is not None and 200 <= status_code < 300
    record(error, status_code, ok, round((time.monotonic() - started) * 1000))
    if ok:
        log.info("job %s: webhook delivered (attempt %d, HTTP %s)", job.pk, attempt, status_code)
        return True, True
    if attempt >= settings.AIGC["WEBHOOK_ATTEMPTS"]:
        log.warning("job %s: webhook not delivered after %d attempts, giving up: %s", job.pk, attempt, error)
        return False, True
    log.info("job %s: webhook attempt %d failed (%s)", job.pk, attempt, error)
    return False, False


def _send(row: WebhookOutbox, render, resolve) -> bool:
    """Attempt a claimed row, then settle it: delivered, failed, or due again after the doubling backoff. The
    update is fenced on the attempt number, so a sender whose lease ran out (and whose row another took) cannot
    overwrite the newer outcome."""
    delivered, final = _attempt(row, render, resolve)
    now = timezone.now()
    if final:
        fields = {"state": WebhookOutboxState.DELIVERED if delivered else WebhookOutboxState.FAILED, "finished_at": now}
    else:
        delay = settings.AIGC["WEBHOOK_BACKOFF_S"] * 2 ** (row.attempts - 1)
        fields = {"next_attempt_at": now + timedelta(seconds=delay)}
    WebhookOutbox.objects.filter(pk=row.pk, attempts=row.attempts, state=WebhookOutboxState.PENDING).update(
        leased_until=None, **fields
    )
    return delivered


def webhook_send(delivery_id, *, render, now=None, resolve=None) -> bool:
    """The kick: send this delivery now if it is due and its key is under its cap (otherwise the sweeper will).
    `render(job)` gives the body (the API's shape of the job: api/webhooks.py). Returns whether it was delivered."""
    row = _claim(now or timezone.now(), pk=delivery_id)
    return row is not None and _send(row, render, resolve)


def webhook_sweep(*, render, now=None, resolve=None, limit: int = SWEEP_MAX_ROWS) -> int:
    """Send due deliveries one after another until none is left (or `limit`): never sent, due for a retry, or
    abandoned by a sender that died. Several sweeps run side by side, each on rows of its own. Returns how many
    were attempted."""
    attempted = 0
    while attempted < limit and (row := _claim(now or timezone.now())) is not None:
        _send(row, render, resolve)
        attempted += 1
    return attempted
