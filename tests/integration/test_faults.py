"""Faults injected for real: a worker killed with SIGKILL mid-generation. Its job is not lost and not stuck:
the heartbeat stops, the reconciler sends it again, another worker finishes it, once."""

import signal
import time
import uuid

import pytest

from generation import processes, services
from generation.models import Job, JobStatus
from tests.integration.test_full_path import NEWS, wait_final
from tests.support.live import WORKER_START_TIMEOUT, server_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

LIVENESS = {"AIGC_HEARTBEAT_S": "0.5", "AIGC_STALE_AFTER_S": "3"}


@pytest.fixture
def start_worker(broker_url, live_database_url, tmp_path, settings):
    """Starts workers on a queue of this test's own (with fast heartbeats); kills what is left at the end."""
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    settings.AIGC = {**settings.AIGC, "STALE_AFTER_S": 3.0}
    started = []

    def start(name: str):
        env = server_env(DATABASE_URL=live_database_url, REDIS_URL=broker_url, CELERY_BROKER_URL=broker_url,
                         AIGC_QUEUE=queue, **LIVENESS)  # fmt: skip
        log_path = tmp_path / f"{name}.log"
        proc = processes.start_worker(env, queue, log_path, concurrency=4)
        processes.wait_for_worker(proc, log_path, WORKER_START_TIMEOUT)
        proc.log_path = log_path
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_worker_killed_mid_generation_loses_nothing(start_worker, user):
    first = start_worker("first")
    job = services.job_create(user=user, kind="writing", inputs={"topic": NEWS, "words": 250}, params={"seed": 3})
    deadline = time.monotonic() + 120
    while Job.objects.get(pk=job.pk).status != JobStatus.RUNNING:
        assert time.monotonic() < deadline, first.log_path.read_text()[-3000:]
        time.sleep(0.2)
    time.sleep(2)  # mid-generation
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING  # what the dead worker left behind

    second = start_worker("second")
    time.sleep(3.5)  # the heartbeat is now older than AIGC_STALE_AFTER_S
    assert services.reconcile_jobs()["requeued_running"] == 1  # what beat does every AIGC_RECONCILE_EVERY_S
    job = wait_final(job.pk, timeout=300)
    assert job.status == JobStatus.SUCCEEDED, job.error + second.log_path.read_text()[-3000:]
    assert job.attempts == 2 and job.outputs.count() == 1 and job.outputs.get().text.strip()
    assert services.reconcile_jobs() == {"requeued_running": 0, "resent_queued": 0}  # nothing stuck


def test_queued_jobs_survive_the_broker_losing_their_messages(start_worker, user, settings):
    """Jobs queued while no worker runs; then the broker loses every message (the queue emptied, as after a
    Redis restart without persistence). The reconciler sends them again and a worker runs each, once."""
    from generation import events

    settings.AIGC = {**settings.AIGC, "RESEND_QUEUED_AFTER_S": 1.0}
    jobs = [services.job_create(user=user, kind="summary", inputs={"text": NEWS}, params={"max_new_tokens": 16, "seed": i})
            for i in range(3)]  # fmt: skip
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    assert events.client().llen(queue) == 3
    events.client().delete(queue)  # the broker lost them
    worker = start_worker("after-loss")
    time.sleep(3)
    assert all(j.status == JobStatus.QUEUED for j in Job.objects.filter(pk__in=[j.pk for j in jobs]))  # stuck, so far
    assert services.reconcile_jobs()["resent_queued"] == 3
    done = [wait_final(j.pk, timeout=300) for j in jobs]
    assert [j.status for j in done] == [JobStatus.SUCCEEDED] * 3, worker.log_path.read_text()[-3000:]
    assert all(j.attempts == 1 and j.outputs.count() == 1 for j in done)
