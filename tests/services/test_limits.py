"""Limits where the cost is: what a job reserves against the daily quota covers what it can really use, every
end settles what it used, requests count per key and per user (browser sessions too), keys are capped. Real
database, real Redis, the tiny real Llama engine."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.exceptions import ValidationError

from generation import services
from generation.content import formats
from generation.infra import events, redis_client
from generation.models import Job, JobStatus, UserQuota
from generation.services import limits

pytestmark = pytest.mark.django_db

STORY = "The city council voted on Tuesday to build a new bridge over the Elm River."
CODE = "\n\n".join(f"def f{i}(x):\n    return x + {i}" for i in range(6))


def create(user, **kw):
    return services.job_create(user=user, **{"kind": "headline", "inputs": {"text": STORY}, **kw})


def test_the_reservation_covers_every_re_sampling_round(user, settings):
    job = create(user, params={"n": 3, "max_new_tokens": 20})
    prompt = services.intake.tokens_at_most(job.messages)  # no tokenizer published in this test: the byte bound
    widest = min(2 * 3, settings.AIGC["MAX_CANDIDATES"])
    assert job.reserved_tokens == prompt + 20 * (3 + 4 * widest)  # headlines: 1 round + 4 re-sampling rounds
    assert limits.tokens_used_today(user) == job.reserved_tokens


def test_documenting_code_reserves_each_function_s_calls_and_caps_them(user, settings):
    job = services.job_create(user=user, template="code-docstrings", inputs={"code": CODE})
    assert job.reserved_tokens >= 6 * formats.DOCSTRING_TRIES * formats.DOCSTRING_MAX_TOKENS
    settings.AIGC = {**settings.AIGC, "MAX_FUNCTIONS_PER_JOB": 5}
    with pytest.raises(ValidationError) as info:
        services.job_create(user=user, template="code-docstrings", inputs={"code": CODE})
    assert "at most 5" in info.value.message_dict["inputs.code"][0]
    assert Job.objects.count() == 1


def test_a_quota_too_small_for_the_reservation_refuses_and_writes_nothing(user):
    probe = create(user)
    UserQuota.objects.create(user=user, tokens_per_day=probe.reserved_tokens + probe.reserved_tokens // 2)
    with pytest.raises(limits.LimitExceeded) as info:
        create(user)
    assert info.value.code == "quota_exceeded" and Job.objects.count() == 1
    # Settled at what it used, the first job frees the rest of its reservation.
    Job.objects.filter(pk=probe.pk).update(status=JobStatus.SUCCEEDED, prompt_tokens=50, completion_tokens=40)
    assert limits.tokens_used_today(user) == 90
    create(user)


def test_a_job_whose_usage_is_unknown_keeps_its_reservation(user):
    """A job that ran and ended without settling (its worker died each time) is charged what it reserved."""
    job = create(user)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, started_at=job.created_at)
    assert limits.tokens_used_today(user) == job.reserved_tokens
    Job.objects.filter(pk=job.pk).update(started_at=None, status=JobStatus.CANCELLED)  # cancelled while queued
    assert limits.tokens_used_today(user) == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_job_streamed_then_cancelled_pays_for_what_it_generated(user, gguf_engine):
    job = services.job_create(
        user=user,
        kind="writing",
        inputs={"topic": "the history of bridges", "words": 600},
        params={"max_new_tokens": 1024, "temperature": 1.0},
    )
    runner = threading.Thread(target=services.job_run, args=(job.pk,), kwargs={"engine": gguf_engine})
    runner.start()
    deadline = time.monotonic() + 60
    while not redis_client.client().xlen(events.stream_key(job.pk)):  # the first text has reached readers
        assert time.monotonic() < deadline and runner.is_alive(), "no delta was streamed"
        time.sleep(0.01)
    assert services.job_cancel(Job.objects.get(pk=job.pk), user=user)
    runner.join(60)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.prompt_tokens > 0 and 0 < job.completion_tokens < 1024
    assert limits.tokens_used_today(user) == job.prompt_tokens + job.completion_tokens


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_whole_job_deadline_bounds_documenting_code(user, tiny_engine, settings):
    """Each function's call had the full time limit of its own; now the job has one limit for all of them."""
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 0.3
    code = "\n\n".join(f"def f{i}(x):\n    return x * {i}" for i in range(40))
    job = services.job_create(
        user=user, template="code-docstrings", inputs={"code": code}, params={"max_new_tokens": 64, "temperature": 1.0}
    )
    started = time.monotonic()
    services.job_run(job.pk, engine=tiny_engine)
    elapsed = time.monotonic() - started
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "time limit of 0.3 s" in job.error
    assert elapsed < 3, elapsed
    assert job.completion_tokens > 0  # what ran before the deadline is paid for


def _api_as(user, key=None):
    from rest_framework.test import APIClient

    client = APIClient()
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    else:
        client.force_login(user)
    return client


def test_a_user_s_keys_share_one_per_user_rate(user, settings, fresh_minute):
    settings.AIGC = {**settings.AIGC, "USER_REQUESTS_PER_MINUTE": 3}
    first, second = (_api_as(user, services.api_key_create(user, name=n)[1]) for n in ("a", "b"))
    codes = [c.get("/api/v1/templates/").status_code for c in (first, second, first, second)]
    assert codes == [200, 200, 200, 429]
    body = second.get("/api/v1/templates/").json()["error"]
    assert body["code"] == "rate_limit_exceeded" and "your account may send 3 requests" in body["message"]


def test_browser_sessions_are_rate_limited_too(user, client, settings, fresh_minute):
    settings.AIGC = {**settings.AIGC, "USER_REQUESTS_PER_MINUTE": 2}
    session = _api_as(user)
    assert [session.get("/api/v1/templates/").status_code for _ in range(3)] == [200, 200, 429]
    client.force_login(user)  # the studio's form counts against the same minute
    response = client.post("/jobs/new/headline/", {"in_text": STORY})
    assert response.status_code == 200 and "2 requests a minute" in response.content.decode()
    assert Job.objects.count() == 0


def test_keys_per_user_are_capped(user, client, settings):
    settings.AIGC = {**settings.AIGC, "MAX_KEYS_PER_USER": 2}
    keys = [services.api_key_create(user, name=str(i))[0] for i in range(2)]
    with pytest.raises(ValidationError) as info:
        services.api_key_create(user, name="third")
    assert "2 live API keys" in info.value.message_dict["name"][0]
    client.force_login(user)
    response = client.post("/keys/", {"name": "third"})
    assert response.status_code == 200 and "2 live API keys" in response.content.decode()
    services.api_key_revoke(keys[0])  # a revoked key frees its place
    services.api_key_create(user, name="third")
    assert user.api_keys.count() == 3
