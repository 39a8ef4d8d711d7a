"""The sandbox contains what code nobody reviewed tries: reading the worker's secrets, reaching the network,
writing outside its own /tmp, outliving its deadline, taking the machine's memory, processes or disk. Each is
contained, reported, and leaves no process behind. These run the real bubblewrap, as CI does (make test installs
it); where none can start, the refusal is what is tested (tests/content/test_contracts.py)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from generation import sandbox

pytestmark = pytest.mark.usefixtures("sandbox_ready")


@pytest.fixture
def sandbox_ready():
    ready, detail = sandbox.availability()
    assert ready, f"the sandbox must start on this machine (make test installs bubblewrap): {detail}"


@pytest.fixture(autouse=True)
def no_process_left_behind():
    """After every run: no child of this test process (bwrap or anything it started) is still alive."""
    yield
    deadline = time.monotonic() + 2
    while _children(os.getpid()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _children(os.getpid()) == []


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_code_gets_an_empty_environment_not_the_workers(monkeypatch):
    monkeypatch.setenv("DJANGO_SECRET_KEY", "the-workers-secret")
    monkeypatch.setenv("DATABASE_URL", "postgres://keys@db/prod")
    outcome = sandbox.run_python(
        "import json, os\nprint(json.dumps(sorted(os.environ)))\nprint(os.environ.get('DJANGO_SECRET_KEY'))"
    )
    assert outcome.status == "passed"
    names, secret = outcome.stdout.splitlines()
    assert secret == "None"
    assert set(json.loads(names)) <= {"PATH", "HOME", "PWD", "LC_CTYPE"}


def test_code_reaches_no_network_not_even_the_hosts_loopback():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(3)
    port = listener.getsockname()[1]
    accepted = []
    thread = threading.Thread(target=lambda: _accept(listener, accepted))
    thread.start()
    outcome = sandbox.run_python(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)")
    thread.join()
    listener.close()
    assert outcome.status == "failed"
    assert "ConnectionRefusedError" in outcome.reason or "unreachable" in outcome.reason
    assert accepted == []  # the listener never saw a connection


def _accept(listener, accepted):
    with contextlib.suppress(OSError):
        accepted.append(listener.accept())


def test_code_sees_nothing_of_the_project_and_writes_only_its_own_tmp(tmp_path, settings):
    target = tmp_path / "written-from-the-sandbox"
    program = (
        "import os\n"
        f"print(os.path.exists({str(settings.BASE_DIR)!r}), os.path.exists({str(tmp_path)!r}))\n"
        "open('/tmp/mine', 'w').write('ok')\n"
        "for path in ('/usr/evil', '/evil', " + repr(str(target)) + "):\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        print('wrote', path)\n"
        "    except OSError as exc:\n"
        "        print('refused', path, type(exc).__name__)\n"
    )
    outcome = sandbox.run_python(program)
    assert outcome.status == "passed", outcome
    lines = outcome.stdout.splitlines()
    assert lines[0] == "False False"  # neither the project nor the host's folders exist in there
    assert all(line.startswith("refused") for line in lines[1:]) and len(lines) == 4
    assert not target.exists()


def test_a_forked_child_sleeping_past_the_deadline_dies_with_the_tree():
    marker = f"{time.time_ns() % 10_000_000}.{uuid.uuid4().int % 1000}"
    program = f"import subprocess, time\nsubprocess.Popen(['/bin/sleep', '{marker}'])\ntime.sleep(60)"
    started = time.monotonic()
    outcome = sandbox.run_python(program, limits=replace(sandbox.current().limits, deadline_s=2))
    assert outcome.status == "timeout"
    assert "2 s deadline" in outcome.reason
    assert time.monotonic() - started < 10
    time.sleep(0.3)
    assert _processes_with(marker) == []


def test_a_detached_grandchild_does_not_outlive_a_program_that_ended():
    marker = f"{time.time_ns() % 10_000_000}.{uuid.uuid4().int % 1000}"
    program = (
        f"import os, subprocess\nsubprocess.Popen(['/bin/sleep', '{marker}'], start_new_session=True)\nprint('done')"
    )
    outcome = sandbox.run_python(program)
    assert outcome.status == "passed" and outcome.stdout.strip() == "done"
    time.sleep(0.3)
    assert _processes_with(marker) == []


def test_memory_processes_cpu_and_file_size_are_bounded():
    limits = replace(sandbox.current().limits, memory_mb=256, processes=16, cpu_s=1, file_mb=1, deadline_s=8)
    memory = sandbox.run_python("x = bytearray(1024 ** 3)", limits=limits)
    assert memory.status == "failed" and memory.reason == "MemoryError"
    forks = sandbox.run_python("import os\nwhile True:\n    os.fork()", limits=limits)
    assert forks.status == "failed" and "Resource temporarily unavailable" in forks.reason
    spin = sandbox.run_python("while True:\n    pass", limits=limits)
    assert spin.status == "failed" and spin.reason == "stopped by the sandbox: CPU-time limit (1 s)"
    disk = sandbox.run_python("open('/tmp/big', 'wb').write(b'x' * (4 * 1024 * 1024))", limits=limits)
    assert disk.status == "failed" and "File too large" in disk.reason


def test_a_failing_program_is_reported_with_its_last_line():
    outcome = sandbox.run_python("raise ValueError('bad input')")
    assert outcome.status == "failed" and outcome.reason == "ValueError: bad input"
    # Whatever the program writes, it cannot pass itself off as the sandbox failing to start.
    spoof = sandbox.run_python("import sys\nsys.stderr.write('bwrap: no namespaces\\n')\nsys.exit(1)")
    assert spoof.status == "failed"


@pytest.mark.parametrize("bwrap", ["/nonexistent/bwrap", "/bin/false"])
def test_where_no_sandbox_starts_nothing_runs(tmp_path, bwrap, sandbox_config):
    """Missing bubblewrap, or one that cannot make namespaces (a locked-down container): refused, never bare."""
    sandbox_config(bwrap=bwrap)
    marker = tmp_path / "ran"
    outcome = sandbox.run_python(f"open({str(marker)!r}, 'w').write('ran bare')")
    assert outcome.status == "unavailable"
    assert outcome.reason.startswith(("bubblewrap is not installed", "bubblewrap could not start a sandbox"))
    assert not marker.exists()
    assert sandbox.availability() == (False, outcome.reason)
