"""/healthz, /metrics and structured logs: what operators and their load balancers, scrapers and log stores read."""

import json
import logging
import subprocess
import sys
import uuid

import pytest
from django.conf import settings as django_settings
from prometheus_client.parser import text_string_to_metric_families

from generation import services
from generation.infra import logs, metrics, presence, redis_client
from generation.models import JobStatus

pytestmark = pytest.mark.django_db


TOKEN = "scrape-me"
SCRAPER = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def metrics_token(settings):
    """Production sets AIGC_METRICS_TOKEN: the scraper's token shows /metrics and the detailed /healthz."""
    settings.AIGC = {**settings.AIGC, "METRICS_TOKEN": TOKEN}


@pytest.fixture
def own_queues(settings):
    """Two aliases on queues of this test's own, so workers of other tests or a running site do not count."""
    settings.CELERY_TASK_DEFAULT_QUEUE = f"health-{uuid.uuid4().hex[:8]}"
    settings.AIGC = {**settings.AIGC, "MODELS": {"default": {}, "big": {}}}
    base = settings.CELERY_TASK_DEFAULT_QUEUE
    yield base, f"{base}.big"
    redis_client.client().delete(
        base, f"{base}.big", presence.KEY.format(queue=base), presence.KEY.format(queue=f"{base}.big")
    )


def queue_one(user, alias, capture):
    with capture(execute=True):  # sent to the broker, as on commit
        services.job_create(user=user, kind="summary", inputs={"text": "Some text to sum up."}, model_alias=alias)


def test_health_reports_each_alias_and_a_stranded_one(client, user, own_queues, django_capture_on_commit_callbacks):
    base, big = own_queues
    presence.announce("gpu-1@host", [base])
    queue_one(user, "big", django_capture_on_commit_callbacks)
    response = client.get("/healthz", **SCRAPER)
    report = response.json()
    assert response.status_code == 200 and report["status"] == "degraded"
    assert report["models"]["default"] == {
        "backend": "llamacpp",
        "queue": base,
        "live_workers": 1,
        "queue_depth": 0,
        "queued_jobs": 0,
        "stranded": False,
    }
    assert report["models"]["big"] == {
        "backend": "llamacpp",
        "queue": big,
        "live_workers": 0,
        "queue_depth": 1,
        "queued_jobs": 1,
        "stranded": True,
    }
    presence.announce("gpu-2@host", [big])
    assert client.get("/healthz", **SCRAPER).json()["status"] == "ok"


def test_a_worker_silent_past_the_stale_limit_no_longer_counts(own_queues, settings):
    base, _ = own_queues
    presence.announce("gpu-1@host", [base])
    assert presence.live_workers([base]) == {base: 1}
    settings.AIGC = {**settings.AIGC, "STALE_AFTER_S": -1.0}  # as if its last beat were older than the limit
    assert presence.live_workers([base]) == {base: 0}


def test_health_is_503_when_redis_does_not_answer(client, settings, monkeypatch):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    monkeypatch.setattr(redis_client, "_client", None)
    response = client.get("/healthz", **SCRAPER)
    assert response.status_code == 503
    assert response.json()["status"] == "down" and response.json()["redis"].startswith("error")
    assert response.json()["database"] == "ok"
    public = client.get("/healthz")  # the code says so; the body names no error
    assert public.status_code == 503 and public.json() == {"status": "down"}


def test_health_says_whether_code_checks_can_run_here(client, staff, sandbox_config):
    """Operators learn from /healthz, the staff health page and the admin that code checks are off, and why."""
    assert client.get("/healthz", **SCRAPER).json()["sandbox"] == {"ready": True, "detail": "bubblewrap sandbox ready"}
    assert "sandbox-notice" not in staff.get("/admin/").content.decode()
    sandbox_config(bwrap="/nonexistent/bwrap")
    response = client.get("/healthz", **SCRAPER)
    assert response.json()["sandbox"] == {
        "ready": False,
        "detail": "bubblewrap is not installed ('/nonexistent/bwrap' not found)",
    }
    assert response.status_code == 200  # generation goes on without code checks: not a reason to pull the site
    assert "not run: they need a sandbox" in staff.get("/health/").content.decode()
    assert "Code checks are not run on this host" in staff.get("/admin/").content.decode()


def samples(client, **headers) -> dict:
    text = client.get("/metrics", **(headers or SCRAPER)).content.decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_metrics_count_jobs_and_fill_the_histograms(client, user, own_queues, django_capture_on_commit_callbacks):
    queue_one(user, "big", django_capture_on_commit_callbacks)
    before = samples(client)
    metrics.record_job("big", first_token_s=0.3, completion_tokens=40, generation_s=2.0)  # 20 tokens/s
    after = samples(client)
    assert after[("aigc_jobs", (("alias", "big"), ("status", "queued")))] == 1
    assert after[("aigc_jobs", (("alias", "default"), ("status", "succeeded")))] == 0
    assert after[("aigc_queue_depth", (("alias", "big"), ("queue", own_queues[1])))] == 1

    def grew(name, **labels):
        key = (name, tuple(sorted({"alias": "big", **labels}.items())))
        return after[key] - before.get(key, 0)

    assert grew("aigc_generated_tokens_total") == 40
    assert grew("aigc_time_to_first_token_seconds_bucket", le="0.25") == 0
    assert grew("aigc_time_to_first_token_seconds_bucket", le="0.5") == 1  # cumulative from here on
    assert grew("aigc_time_to_first_token_seconds_bucket", le="+Inf") == 1
    assert (
        grew("aigc_tokens_per_second_bucket", le="10.0") == 0 and grew("aigc_tokens_per_second_bucket", le="25.0") == 1
    )
    assert grew("aigc_tokens_per_second_sum") == pytest.approx(20.0)


def test_metrics_ask_for_the_token_when_one_is_set(client, settings):
    response = client.get("/metrics")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200


def test_without_a_token_metrics_are_refused_unless_debug_is_on(client, settings):
    """An empty AIGC_METRICS_TOKEN used to serve the figures to anyone who reached the site."""
    settings.AIGC = {**settings.AIGC, "METRICS_TOKEN": ""}
    assert settings.DEBUG is False
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer "}, {"HTTP_AUTHORIZATION": "Bearer anything"}):
        response = client.get("/metrics", **headers)
        assert response.status_code == 403 and "set AIGC_METRICS_TOKEN" in response.content.decode()
        assert "aigc_jobs" not in response.content.decode()
    settings.DEBUG = True  # a developer's machine
    assert "aigc_jobs" in client.get("/metrics").content.decode()


def test_the_public_health_check_says_only_its_status(client, user, own_queues, django_user_model, settings):
    """Aliases, queues, workers and error texts are for operators: load balancers need the status and the code."""
    presence.announce("gpu-1@host", [own_queues[0]])
    for token in (TOKEN, ""):
        settings.AIGC = {**settings.AIGC, "METRICS_TOKEN": token}
        for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}):
            response = client.get("/healthz", **headers)
            assert response.status_code == 200 and response.json() == {"status": "degraded"}
    client.force_login(user)  # an editor is not an operator
    assert client.get("/healthz").json() == {"status": "degraded"}
    client.force_login(django_user_model.objects.create_user("ops", password="pw-ops-12345", is_staff=True))
    assert set(client.get("/healthz").json()) == {"status", "database", "redis", "models", "sandbox"}


def test_every_line_logged_while_a_job_runs_carries_its_id(
    user, tiny_engine, caplog, django_capture_on_commit_callbacks
):
    caplog.handler.addFilter(logs.JobIdFilter())
    with django_capture_on_commit_callbacks(execute=False):
        job = services.job_create(
            user=user, kind="summary", inputs={"text": "A text to sum up in a line."}, params={"max_new_tokens": 6}
        )
    with caplog.at_level(logging.INFO):
        services.job_run(job.pk, engine=tiny_engine)
        logging.getLogger("generation.test").info("after the job")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    during = [r for r in caplog.records if r.job_id == str(job.pk)]
    assert any("running" in r.getMessage() for r in during) and any("succeeded" in r.getMessage() for r in during)
    assert caplog.records[-1].job_id is None


def test_json_logs_are_one_object_per_line_with_the_job_id():
    code = (
        "import django, logging; django.setup(); from generation.infra import logs; logs.current_job.set('job-42'); "
        "logging.getLogger('generation.jobs').warning('saving %s', 'it')"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "aigc_site.settings",
        "DJANGO_SECRET_KEY": "x",
        "DJANGO_ENV_FILE": "",
        "LOG_FORMAT": "json",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=django_settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    line = json.loads(out.stderr.strip().splitlines()[-1])
    assert (line["level"], line["logger"], line["job_id"], line["message"]) == (
        "WARNING",
        "generation.jobs",
        "job-42",
        "saving it",
    )


def test_staff_see_the_health_page_and_editors_do_not(
    client, user, own_queues, django_user_model, django_capture_on_commit_callbacks
):
    queue_one(user, "big", django_capture_on_commit_callbacks)
    client.force_login(user)
    assert client.get("/health/").status_code == 404
    client.force_login(django_user_model.objects.create_user("ops", password="pw-ops-12345", is_staff=True))
    page = client.get("/health/").content.decode()
    assert own_queues[1] in page and "no worker serves this model" in page and "degraded" in page
