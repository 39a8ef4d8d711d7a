"""Real processes started per test for the fault and load tests: workers on a queue of the test's own, a web
server, celery beat, a private Redis. Everything left running is killed when the test ends."""

from __future__ import annotations

import time
import uuid

import pytest

from generation.infra import processes
from generation.models import Job
from tests.support.live import WORKER_START_TIMEOUT, server_env

# Fast heartbeats, so a dead worker's job is seen as abandoned within seconds.
LIVENESS = {"AIGC_HEARTBEAT_S": "0.5", "AIGC_STALE_AFTER_S": "3"}


class Cluster:
    def __init__(self, queue: str, broker_url: str, database_url: str, tmp_path):
        self.queue, self.broker_url, self.database_url, self.tmp_path = queue, broker_url, database_url, tmp_path
        self.started: list = []

    def env(self, redis_url: str | None = None, **extra) -> dict:
        redis_url = redis_url or self.broker_url
        return server_env(
            DATABASE_URL=self.database_url,
            REDIS_URL=redis_url,
            CELERY_BROKER_URL=redis_url,
            AIGC_QUEUE=self.queue,
            **LIVENESS,
            **extra,
        )

    def _keep(self, proc, name: str):
        proc.log_path = self.tmp_path / f"{name}.log"
        self.started.append(proc)
        return proc

    def worker(
        self,
        name: str,
        redis_url: str | None = None,
        also: tuple[str, ...] = (),
        concurrency: int = 4,
        queue: str | None = None,
        **extra,
    ):
        """A worker on the test's queue, or `queue` (and `also`), once it has loaded its models."""
        log_path = self.tmp_path / f"{name}.log"
        proc = processes.start_worker(
            self.env(redis_url, **extra),
            queue or self.queue,
            log_path,
            concurrency=concurrency,
            also=also,
            name=f"{self.queue}-{name}",
        )
        self._keep(proc, name)
        processes.wait_for_worker(proc, log_path, WORKER_START_TIMEOUT)
        return proc

    def web(
        self, redis_url: str | None = None, port: int | None = None, name: str = "web", **extra
    ) -> tuple[object, str]:
        """uvicorn as production runs it (DEBUG off), once it answers. Returns (process, base URL)."""
        port = port or processes.free_port()
        env = self.env(redis_url, DJANGO_DEBUG="0", DJANGO_ALLOWED_HOSTS="127.0.0.1", **extra)
        proc = self._keep(processes.start_web(env, port, self.tmp_path / f"{name}.log"), name)
        url = f"http://127.0.0.1:{port}"
        processes.wait_for_web(proc, f"{url}/api/v1/templates/", proc.log_path)
        return proc, url

    def beat(self, redis_url: str | None = None, **extra):
        return self._keep(processes.start_beat(self.env(redis_url, **extra), self.tmp_path / "beat.log"), "beat")

    def redis(self, port: int):
        """A private redis-server without persistence: killing and starting it again empties it."""
        return self._keep(processes.start_redis(port, self.tmp_path / "redis.log"), "redis")


@pytest.fixture
def cluster(broker_url, live_database_url, tmp_path, settings):
    queue = f"cluster-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue  # jobs created in the test process go to the test's workers
    settings.AIGC = {**settings.AIGC, "STALE_AFTER_S": float(LIVENESS["AIGC_STALE_AFTER_S"])}
    started = Cluster(queue, broker_url, live_database_url, tmp_path)
    yield started
    for proc in started.started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def log_tail(*procs) -> str:
    return "\n".join(f"--- {p.log_path.name}\n{p.log_path.read_text()[-2500:]}" for p in procs)


def wait_status(job_id, status, timeout=120, *procs):
    deadline = time.monotonic() + timeout
    while Job.objects.get(pk=job_id).status != status:
        assert time.monotonic() < deadline, f"job {job_id} never became {status}\n" + log_tail(*procs)
        time.sleep(0.2)
