"""Liveness: a job whose worker died is claimed again, a job with a live worker never twice; the reconciler
sends lost jobs again, through the real broker (a queue of the test's own)."""

import base64
import json
import threading
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from generation import selectors, services
from generation.infra import events, redis_client
from generation.models import Job, JobStatus
from generation.services import limits, running
from generation.workers.engines import Heartbeat

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue(settings):
    """Jobs sent in this test go to a queue of its own in the real Redis; the fixture reads and clears it."""
    name = f"test-reconcile-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = name

    def sent() -> list[str]:
        """The job ids of the run_job messages waiting in the queue (kombu: JSON, body base64 of [args, ...])."""
        messages = [json.loads(raw) for raw in redis_client.client().lrange(name, 0, -1)]
        return [json.loads(base64.b64decode(m["body"]))[0][0] for m in messages]

    yield sent
    redis_client.client().delete(name)


def make_job(user, **fields):
    job = services.job_create(user=user, kind="headline", inputs={"text": "A council votes for a bridge."})
    Job.objects.filter(pk=job.pk).update(**fields)
    return Job.objects.get(pk=job.pk)


def test_a_running_job_with_a_live_heartbeat_is_never_claimed_twice(user, tiny_engine):
    job = make_job(user, status=JobStatus.RUNNING, heartbeat_at=timezone.now(), attempts=1)
    services.job_run(job.pk, engine=tiny_engine)  # a duplicate message
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.attempts == 1 and not job.outputs.exists()


def test_a_job_whose_worker_died_is_claimed_and_finishes(user, tiny_engine):
    job = make_job(user, status=JobStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=5), attempts=1)
    services.job_run(job.pk, engine=tiny_engine)  # the message redelivered, or sent again by the reconciler
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2 and job.outputs.exists()


def test_the_reconciler_sends_lost_jobs_again_and_leaves_live_ones(user, queue):
    now = timezone.now()
    dead = make_job(user, status=JobStatus.RUNNING, heartbeat_at=now - timedelta(minutes=5), attempts=1)
    alive = make_job(user, status=JobStatus.RUNNING, heartbeat_at=now, attempts=1)
    lost_message = make_job(user, enqueued_at=now - timedelta(hours=1))
    never_sent = make_job(user, enqueued_at=None)
    Job.objects.filter(pk=never_sent.pk).update(created_at=now - timedelta(hours=1))
    waiting = make_job(user, enqueued_at=now)
    finished = make_job(user, status=JobStatus.SUCCEEDED, heartbeat_at=now - timedelta(hours=1))

    assert services.reconcile_jobs() == {
        "requeued_running": 1,
        "resent_queued": 2,
        "evaluation_runs": 0,
        "training_runs": 0,
    }
    assert sorted(queue()) == sorted(str(j.pk) for j in (dead, lost_message, never_sent))
    statuses = dict(Job.objects.values_list("pk", "status"))
    assert statuses[dead.pk] == JobStatus.QUEUED and statuses[alive.pk] == JobStatus.RUNNING
    assert statuses[waiting.pk] == JobStatus.QUEUED and statuses[finished.pk] == JobStatus.SUCCEEDED
    assert services.reconcile_jobs() == {
        "requeued_running": 0,
        "resent_queued": 0,
        "evaluation_runs": 0,
        "training_runs": 0,
    }  # just sent: not again yet


def test_heartbeat_touches_only_running_jobs_of_this_process(user):
    now = timezone.now()
    running = make_job(user, status=JobStatus.RUNNING, heartbeat_at=now - timedelta(minutes=5))
    other = make_job(user, status=JobStatus.RUNNING, heartbeat_at=now - timedelta(minutes=5))
    beat = Heartbeat()
    beat._jobs[running.pk] = running.attempts  # as job_run registers it, without starting the thread
    assert beat.beat() == 1
    assert Job.objects.get(pk=running.pk).heartbeat_at > now - timedelta(seconds=5)
    assert Job.objects.get(pk=other.pk).heartbeat_at < now - timedelta(minutes=4)


def test_a_stale_claim_s_heartbeat_does_not_keep_a_re_claimed_job_alive(user):
    job = make_job(user, status=JobStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=5), attempts=2)
    beat = Heartbeat()
    beat._jobs[job.pk] = 1  # this process claimed attempt 1; another worker holds attempt 2 now
    assert beat.beat() == 0


class Stalled:
    """The real tiny engine, whose first call waits until released: a worker stuck (swapping, paused, cut off)
    for longer than its heartbeat may be missed, then waking up to write its result."""

    model_name = "stalled-worker"

    def __init__(self, engine, release: threading.Event) -> None:
        self.engine, self.release, self.entered = engine, release, threading.Event()

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def generate(self, request, on_delta=None):
        self.entered.set()
        assert self.release.wait(60)
        return self.engine.generate(request, on_delta)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_stale_worker_cannot_overwrite_a_job_claimed_again(user, tiny_engine):
    job = make_job(user)
    release = threading.Event()
    stalled = Stalled(tiny_engine, release)
    first = threading.Thread(target=services.job_run, args=(job.pk,), kwargs={"engine": stalled})
    first.start()
    assert stalled.entered.wait(60)
    # Its heartbeat went quiet long enough for the job to count as lost; another worker claims and finishes it.
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    services.job_run(job.pk, engine=tiny_engine)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
    finished_at, outputs = job.finished_at, list(job.outputs.values_list("text", flat=True))
    release.set()  # the stale worker wakes up and tries to save its own result
    first.join(60)
    job.refresh_from_db()
    assert job.model_name == tiny_engine.model_name != stalled.model_name  # its write was refused
    assert job.finished_at == finished_at and list(job.outputs.values_list("text", flat=True)) == outputs
    assert job.attempts == 2 and job.status == JobStatus.SUCCEEDED


def test_a_lost_message_is_sent_again_within_a_minute_and_a_waiting_one_is_not(user, queue, settings):
    """A job whose message the broker lost (a Redis restarted without its data, a send that failed) is in
    neither its queue nor a worker's hands: it is sent again once AIGC_LOST_MESSAGE_AFTER_S (30 s) have passed,
    not AIGC_RESEND_QUEUED_AFTER_S (600 s). A message waiting its turn, or taken by a worker that has not
    started it yet, is left alone; so is a job sent a moment ago."""
    from celery import current_app

    from generation.services import dispatch

    name = settings.CELERY_TASK_DEFAULT_QUEUE
    lost, taken, waiting, fresh = (make_job(user) for _ in range(4))
    dispatch.job_enqueue(taken.pk, taken.model_alias)
    dispatch.job_enqueue(waiting.pk, waiting.model_alias)
    with current_app.connection_for_read() as connection:
        held = connection.default_channel.basic_get(name, no_ack=False)  # a worker reserves the oldest message
        try:
            assert held.payload[0] == [str(taken.pk)] and queue() == [str(waiting.pk)]
            sent_at = timezone.now() - timedelta(seconds=45)
            Job.objects.filter(pk__in=[lost.pk, taken.pk, waiting.pk]).update(enqueued_at=sent_at)
            Job.objects.filter(pk=fresh.pk).update(enqueued_at=timezone.now() - timedelta(seconds=10))

            assert services.reconcile_jobs()["resent_queued"] == 1
            assert sorted(queue()) == sorted([str(waiting.pk), str(lost.pk)])
            assert services.reconcile_jobs()["resent_queued"] == 0  # sent again just now: in its queue
        finally:
            held.ack()


def test_a_resend_bound_shorter_than_the_lost_message_one_still_resends(user, queue, settings):
    """AIGC_RESEND_QUEUED_AFTER_S set below AIGC_LOST_MESSAGE_AFTER_S: a queued job past it is sent again,
    whether or not its message is still waiting (the shorter bound of the two decides)."""
    from generation.services import dispatch

    settings.AIGC = {**settings.AIGC, "RESEND_QUEUED_AFTER_S": 1.0, "LOST_MESSAGE_AFTER_S": 30.0}
    lost, waiting = make_job(user), make_job(user)
    dispatch.job_enqueue(waiting.pk, waiting.model_alias)
    Job.objects.filter(pk__in=[lost.pk, waiting.pk]).update(enqueued_at=timezone.now() - timedelta(seconds=3))
    assert services.reconcile_jobs()["resent_queued"] == 2
    assert sorted(queue()) == sorted([str(waiting.pk), str(waiting.pk), str(lost.pk)])


def test_the_tokens_an_attempt_used_before_its_worker_died_are_charged(user, tiny_engine):
    """A worker that died mid-job had read the prompt and streamed text: the retry charges them, beside what it
    used itself, to the user's quota, the desk's usage and budgets, and the usage report."""
    job = make_job(user)
    assert running.job_claim(job.pk) == 1  # a worker took it
    events.publish_delta(job.pk, 0, "Council", tokens=3)  # the dead attempt's stream: two candidates begun
    events.publish_delta(job.pk, 0, " votes", tokens=5)
    events.publish_delta(job.pk, 1, "Bridge", tokens=2)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))  # its worker died
    services.job_run(job.pk, engine=tiny_engine)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
    own = job.prompt_tokens + job.completion_tokens
    lost = tiny_engine.count_tokens(job.messages) + 5 + 2
    assert limits.tokens_used_today(user) == own + lost
    assert sum(row["tokens"] for row in selectors.desk_usage(job.desk)) == own + lost
    (day,) = selectors.usage_by_day(user, 1)
    assert (day["lost_tokens"], day["total_tokens"]) == (lost, own + lost)
    assert job.lost_tokens == lost


def test_a_retry_with_nothing_streamed_charges_nothing_more(user, tiny_engine):
    job = make_job(user, status=JobStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=5), attempts=1)
    services.job_run(job.pk, engine=tiny_engine)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.lost_tokens == 0
