"""Real processes for the tests that need them (tests/integration, tests/browser): a Redis broker and a Celery
worker running the bundled model, all on the pytest test database. Registered in tests/conftest.py."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.db import connection

from generation.infra import processes

WORKER_START_TIMEOUT = 600  # generous: a transformers worker's first start converts the bundled GGUF (about a minute)
PUBLISH_TIMEOUT = 120  # a llama.cpp worker's first start converts its tokenizer for the web tier (some seconds)


def server_env(**overrides) -> dict:
    """The environment for a server process: tests/browser sets DJANGO_ALLOW_ASYNC_UNSAFE for the test process
    only; the servers keep Django's async-safety checks."""
    env = processes.process_env(**overrides)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return env


@pytest.fixture(scope="session")
def broker_url():
    """The configured Redis (CI's, via REDIS_URL), or an embedded one when none answers."""
    from aigc_site.celery import app

    url = settings.CELERY_BROKER_URL
    if processes.redis_answers(url):
        yield url
        return
    server, url = processes.embedded_redis()
    app.conf.broker_url = url
    yield url
    server.shutdown()


@pytest.fixture(scope="session")
def live_database_url(django_db_setup, django_db_blocker) -> str:
    """The test database as a URL, so processes started by tests open the very database the tests write."""
    with django_db_blocker.unblock():
        db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="module")
def celery_worker_process(broker_url, live_database_url, django_db_blocker, tmp_path_factory):
    """A real `celery worker` process (threads pool, as in production) on a queue of its own."""
    queue = f"itest-{uuid.uuid4().hex[:8]}"
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    env = server_env(
        DATABASE_URL=live_database_url, REDIS_URL=broker_url, CELERY_BROKER_URL=broker_url, AIGC_QUEUE=queue
    )
    started = time.time()
    proc = processes.start_worker(env, queue, log_path, concurrency=4)
    try:
        processes.wait_for_worker(proc, log_path, WORKER_START_TIMEOUT)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    proc.queue = queue
    proc.log_path = log_path
    with django_db_blocker.unblock():
        from generation.models import ModelInfo

        # The worker takes jobs as soon as its engine is loaded and publishes its tokenizer just after.
        since, deadline = datetime.fromtimestamp(started, tz=UTC), time.monotonic() + PUBLISH_TIMEOUT
        while not ModelInfo.objects.filter(updated_at__gte=since).exists():
            if time.monotonic() > deadline:
                pytest.fail(f"the worker did not publish its model within {PUBLISH_TIMEOUT} s; see {log_path}")
            time.sleep(0.2)

        # What the worker published at start; tests that flush the database put it back (see worker_queue).
        proc.model_infos = list(ModelInfo.objects.values())
    yield proc
    processes.stop(proc)


@pytest.fixture
def worker_queue(celery_worker_process, settings):
    """Route jobs created in this test to the test worker's queue."""
    from generation.models import ModelInfo

    settings.CELERY_TASK_DEFAULT_QUEUE = celery_worker_process.queue
    for row in celery_worker_process.model_infos:
        ModelInfo.objects.update_or_create(
            alias=row["alias"], defaults={k: v for k, v in row.items() if k not in ("id", "alias")}
        )
    return celery_worker_process


@pytest.fixture(scope="module")
def live_server_url(celery_worker_process, broker_url, live_database_url, tmp_path_factory):
    """The site as production serves it (uvicorn, DEBUG off, collected static files), sending jobs to the test
    worker's queue."""
    env = server_env(
        DATABASE_URL=live_database_url,
        REDIS_URL=broker_url,
        CELERY_BROKER_URL=broker_url,
        AIGC_QUEUE=celery_worker_process.queue,
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",  # whatever a developer's .env says
    )
    # With DEBUG off static files come from collectstatic's manifest, as in the Dockerfile.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=settings.BASE_DIR,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    proc, url, _ = start_web_server(env, tmp_path_factory, "/accounts/login/")
    yield url
    processes.stop(proc)


def start_web_server(env: dict, tmp_path_factory, probe: str):
    """uvicorn on a free port with `env`, once `probe` answers: (process, base URL, log path)."""
    port = processes.free_port()
    log_path = tmp_path_factory.mktemp("web") / "web.log"
    proc = processes.start_web(env, port, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_for_web(proc, f"{url}{probe}", log_path)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    return proc, url, log_path
