"""Webhooks with real processes: a process killed between the commit and the send loses no callback, and webhook
workers stuck on receivers that trickle one byte a second neither outlive the deadline nor delay the reconciler,
which runs on a queue (and a Procfile process) of its own."""

from __future__ import annotations

import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings
from django.utils import timezone

from generation import services
from generation.api.webhooks import job_body
from generation.infra import processes
from generation.models import Job, JobStatus, WebhookDelivery, WebhookOutbox
from generation.services import dispatch
from tests.support.live import WORKER_START_TIMEOUT, server_env
from tests.support.receivers import Receiver, Trickler

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

STORY = "The city council voted on Tuesday to build a new bridge over the Elm River."
LOCAL_RECEIVERS = {"AIGC_WEBHOOK_ALLOW_PRIVATE": "1", "AIGC_WEBHOOK_ALLOW_HTTP": "1"}
PROCFILE = Path(settings.BASE_DIR) / "Procfile"


@pytest.fixture
def local_receivers(settings, monkeypatch):
    settings.AIGC = {**settings.AIGC, "WEBHOOK_ALLOW_PRIVATE": True, "WEBHOOK_ALLOW_HTTP": True}
    monkeypatch.setattr(
        dispatch, "job_enqueue", lambda job_id, alias: None
    )  # these jobs never run: no message for them


def finished_job(user, key, callback_url, status=JobStatus.SUCCEEDED) -> Job:
    job = services.job_create(user=user, kind="headline", inputs={"text": STORY})
    Job.objects.filter(pk=job.pk).update(
        callback_url=callback_url,
        api_key=key,
        status=status,
        finished_at=None if status == JobStatus.QUEUED else timezone.now(),
    )
    return Job.objects.get(pk=job.pk)


CANCEL_THEN_DIE = """
import sys, time
import django
django.setup()
from generation import services
from generation.models import Job
from generation.services import webhooks

def die_here(delivery_id):  # the kick that would send it: the process is killed with SIGKILL right here
    print("committed", delivery_id, flush=True)
    time.sleep(600)

webhooks._kick = die_here
job = Job.objects.select_related("owner").get(pk=sys.argv[1])
services.job_cancel(job, user=job.owner)
"""

SWEEP = "import django; django.setup(); from generation.api.webhooks import job_body; from generation import services; print(services.webhook_sweep(render=job_body))"


def python(code: str, env: dict, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=settings.BASE_DIR,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_process_killed_between_commit_and_send_loses_no_callback_and_it_arrives_once(
    user, api_key, live_database_url, broker_url, local_receivers
):
    receiver = Receiver()
    env = server_env(
        DATABASE_URL=live_database_url,
        REDIS_URL=broker_url,
        CELERY_BROKER_URL=broker_url,
        DJANGO_SETTINGS_MODULE="aigc_site.settings",
        **LOCAL_RECEIVERS,
    )
    try:
        job = finished_job(user, user.api_keys.get(), receiver.url, status=JobStatus.QUEUED)
        child = python(CANCEL_THEN_DIE, env, str(job.pk))
        ready, _, _ = select.select([child.stdout], [], [], 60)
        assert ready, child.stderr.read() if child.poll() is not None else "the cancel never committed"
        line = child.stdout.readline().split()
        assert line[:1] == ["committed"], (line, child.stderr.read() if child.poll() is not None else "")
        # Committed: the job is cancelled and its callback is owed, and nothing was sent.
        row = WebhookOutbox.objects.get(job=job)
        assert str(row.pk) == line[1] and (row.state, row.attempts) == ("pending", 0)
        assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED and receiver.connections == 0
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL

        # Two fresh sweepers at once: SKIP LOCKED gives the row to one of them.
        sweepers = [python(SWEEP, env) for _ in range(2)]
        outputs = [s.communicate(timeout=120) for s in sweepers]
        assert [s.returncode for s in sweepers] == [0, 0], outputs
        assert sorted(int(out.strip().splitlines()[-1]) for out, _ in outputs) == [0, 1], outputs
        assert services.webhook_sweep(render=job_body) == 0  # and nothing is owed any more
        [request] = receiver.requests
        assert request["headers"]["X-AIGC-Delivery"] == str(row.pk)
        assert '"status":"cancelled"' in request["body"].decode()
        row.refresh_from_db()
        assert row.state == "delivered" and WebhookDelivery.objects.filter(job=job, ok=True).count() == 1
    finally:
        receiver.close()


def procfile_command(name: str, env: dict) -> list[str]:
    """The Procfile's command for `name`, as honcho runs it (`${VAR:-default}` expanded), with this Python."""
    line = next(line for line in PROCFILE.read_text().splitlines() if line.startswith(f"{name}:"))
    command = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m[1], m[2]), line.split(":", 1)[1])
    args = shlex.split(command)
    assert args[0] == "celery", line
    return [sys.executable, "-m", "celery", *args[1:]]


def queues_of(args: list[str]) -> list[str]:
    return args[args.index("--queues") + 1].split(",")


def test_stuck_webhook_workers_are_cut_at_the_deadline_and_never_delay_the_reconciler(
    user, api_key, live_database_url, tmp_path, local_receivers
):
    """Every thread of the Procfile's webhooks worker held by a receiver trickling one byte a second; meanwhile the
    Procfile's maintenance worker (which consumes no webhooks) recovers a job whose worker died, and each stuck
    attempt ends at AIGC_WEBHOOK_DEADLINE_S."""
    deadline_s, threads = 8, 8
    port = processes.free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    started: list[subprocess.Popen] = [processes.start_redis(port, tmp_path / "redis.log")]
    env = server_env(
        DATABASE_URL=live_database_url,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        AIGC_QUEUE=f"outbox-{uuid.uuid4().hex[:8]}",
        AIGC_WEBHOOK_DEADLINE_S=str(deadline_s),
        AIGC_WEBHOOK_TIMEOUT_S="5",
        AIGC_WEBHOOK_MAX_IN_FLIGHT_PER_KEY="0",
        **LOCAL_RECEIVERS,
    )
    trickler = Trickler()
    try:
        workers = {}
        for name in ("webhooks", "maintenance"):
            args = procfile_command(name, env)
            log_path = tmp_path / f"{name}.log"
            with open(log_path, "w") as log:
                proc = subprocess.Popen(args, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
            started.append(proc)
            workers[name] = (args, proc, log_path)
        assert queues_of(workers["maintenance"][0]) == ["maintenance"]  # it shares nothing with the webhooks worker
        assert queues_of(workers["webhooks"][0]) == ["webhooks"]
        assert workers["webhooks"][0][workers["webhooks"][0].index("--concurrency") + 1] == str(threads)
        for _args, proc, log_path in workers.values():
            processes.wait_for_worker(proc, log_path, WORKER_START_TIMEOUT)

        key = user.api_keys.get()
        rows = [
            WebhookOutbox.objects.create(job=finished_job(user, key, trickler.url), api_key=key)
            for _ in range(threads + 2)
        ]
        probe = Celery("probe", broker=redis_url, set_as_current=False)  # the kicks, as web and workers send them
        for row in rows:
            probe.send_task("generation.send_webhook", args=[str(row.pk)], queue="webhooks")
        wait_until(lambda: trickler.open == threads, 30, "the webhooks worker never had every thread stuck")
        stuck_at = time.monotonic()

        # A running job whose worker died (its heartbeat stopped an hour ago): what the reconciler is for.
        lost = finished_job(user, None, "", status=JobStatus.QUEUED)
        Job.objects.filter(pk=lost.pk).update(
            status=JobStatus.RUNNING,
            attempts=1,
            started_at=timezone.now(),
            heartbeat_at=timezone.now() - timedelta(hours=1),
        )
        probe.send_task(
            "generation.reconcile_jobs", queue=settings.CELERY_BEAT_SCHEDULE["reconcile-jobs"]["options"]["queue"]
        )
        wait_until(lambda: Job.objects.get(pk=lost.pk).status == JobStatus.QUEUED, 10, "the reconciler never ran")
        recovered_in = time.monotonic() - stuck_at
        assert recovered_in < deadline_s - 2 and trickler.open == threads, (recovered_in, trickler.open)
        assert Job.objects.get(pk=lost.pk).enqueued_at is not None  # sent again to its model's queue

        wait_until(lambda: WebhookDelivery.objects.count() >= threads, 3 * deadline_s, "the stuck attempts never ended")
        cut = list(WebhookDelivery.objects.order_by("created_at")[:threads])
        assert all(f"deadline of {deadline_s} s" in d.error for d in cut), [d.error for d in cut]
        durations = sorted(d.duration_ms for d in cut)
        assert deadline_s * 1000 - 100 <= durations[0] and durations[-1] < deadline_s * 1000 + 1500, durations
    finally:
        trickler.close()
        for proc in reversed(started):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def wait_until(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.1)
