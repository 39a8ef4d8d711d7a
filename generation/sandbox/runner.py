"""The one runner for code that nobody reviewed (a model's code, a dataset's test): bubblewrap namespaces around a
bare Python, or nothing at all.

What the code gets: new user, PID, IPC, network, UTS and cgroup namespaces (no network at all: not even the
host's loopback, so neither Redis nor the database nor a local web server can be reached); an empty environment
(nothing of the worker's secret key or URLs); a read-only view of the system's /usr and of the interpreter's own
prefix, nothing of the project's folders, the models or the adapters; a private, size-bounded /tmp on a
read-only root; rlimits on CPU seconds, address space, processes and file size, set inside the sandbox before
the code starts; and a deadline at which the whole tree dies (bwrap's monitor is killed, its reaper in the PID
namespace dies with it, and the kernel kills every process left in that namespace).

Where no sandbox can start (bubblewrap missing, namespaces refused in a locked-down container) the code is not run
and the outcome says why: nothing ever falls back to running code bare. No Django here: the composition root
(apps.py) hands in the settings with `configure`."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

# Runs first inside the sandbox, as the sandbox's own user: sets the limits, then replaces itself with the
# interpreter that reads the untrusted program from stdin. Limits in argv: the environment is empty.
_LAUNCHER = (
    "import os, resource, sys\n"
    "cpu, mem, nproc, fsize = (int(v) for v in sys.argv[1:5])\n"
    "resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU first: the outcome can name the limit\n"
    "for limit, value in ((resource.RLIMIT_AS, mem), (resource.RLIMIT_NPROC, nproc),\n"
    "                     (resource.RLIMIT_FSIZE, fsize), (resource.RLIMIT_CORE, 0)):\n"
    "    resource.setrlimit(limit, (value, value))\n"
    "sys.stderr.write('sandbox:started\\n'); sys.stderr.flush()\n"
    "os.execv(sys.executable, [sys.executable, '-I', '-S', '-'])\n"
)
STARTED = "sandbox:started\n"  # the launcher's first line on stderr: the sandbox stood up before the code ran

OUTPUT_KEPT = 16_384  # characters of stdout and of stderr kept in an outcome (the end of each)
MAX_PROGRAM = 1_000_000  # characters of program accepted at all


@dataclass(frozen=True)
class Limits:
    """What one run may use. `deadline_s` is wall-clock time for the whole tree; `cpu_s` CPU seconds per process."""

    deadline_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 512
    processes: int = 32
    file_mb: int = 16
    tmpfs_mb: int = 64


@dataclass(frozen=True)
class Config:
    """Where bubblewrap and the sandbox's Python are, and whom the code runs as when the worker is root (root is
    exempt from the process limit, so a root worker hands the code to an unprivileged user)."""

    bwrap: str = "bwrap"
    python: str = ""  # empty: the worker's own interpreter where the sandbox user can read it, else /usr/bin/python3
    uid: int = 65534
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class Outcome:
    """How a run ended: `passed` (exit 0), `failed` (another exit, or a signal), `timeout` (killed at the
    deadline), `unavailable` (no sandbox could start: nothing was run). `reason` says it in a line."""

    status: Literal["passed", "failed", "timeout", "unavailable"]
    reason: str = ""
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""


_config = Config()


def configure(config: Config) -> None:
    """Set once at start-up by the composition root (and by tests forcing a state); forgets the last probe."""
    global _config
    _config = config
    availability.cache_clear()
    _plan.cache_clear()


def current() -> Config:
    return _config


def _readable_by_others(path: Path) -> bool:
    """Whether a user other than the file's owner can reach and run `path` (every folder above it searchable)."""
    try:
        if path.stat().st_mode & 0o005 != 0o005:
            return False
        return all(p.stat().st_mode & 0o001 for p in path.parents)
    except OSError:
        return False


@dataclass(frozen=True)
class _Plan:
    bwrap: str
    python: Path
    prefix: Path  # bound read-only when outside /usr
    uid: int | None  # set: drop to this user before bwrap starts (the worker is root)


@functools.cache
def _plan() -> _Plan | str:
    """What a run will execute, or why none can: resolved once per configuration."""
    if not sys.platform.startswith("linux"):
        return "the sandbox needs Linux namespaces (bubblewrap)"
    bwrap = shutil.which(_config.bwrap)
    if not bwrap:
        return f"bubblewrap is not installed ({_config.bwrap!r} not found)"
    as_root = os.geteuid() == 0
    uid = _config.uid if as_root else None
    if _config.python:
        python = Path(_config.python).resolve()
    else:
        python = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
        if as_root and not _readable_by_others(python):
            python = Path("/usr/bin/python3").resolve()
    if not python.is_file():
        return f"no Python for the sandbox ({python} not found)"
    return _Plan(bwrap=bwrap, python=python, prefix=python.parent.parent, uid=uid)


def _command(plan: _Plan, limits: Limits) -> list[str]:
    prefix = [] if plan.prefix.is_relative_to("/usr") else ["--ro-bind", str(plan.prefix), str(plan.prefix)]
    links = [
        arg
        for name in ("bin", "lib", "lib32", "lib64", "sbin")
        if Path("/", name).is_symlink()
        for arg in ("--symlink", os.readlink(Path("/", name)), f"/{name}")
    ]
    return [
        plan.bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/usr",
        "/usr",
        *links,
        *prefix,
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(limits.tmpfs_mb * 1024 * 1024),
        "--tmpfs",
        "/tmp",
        "--remount-ro",
        "/",
        "--chdir",
        "/tmp",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "HOME",
        "/tmp",
        "--",
        str(plan.python),
        "-I",
        "-S",
        "-c",
        _LAUNCHER,
        str(limits.cpu_s),
        str(limits.memory_mb * 1024 * 1024),
        str(limits.processes),
        str(limits.file_mb * 1024 * 1024),
    ]


def _tail(handle) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - OUTPUT_KEPT * 4))
    return handle.read().decode("utf-8", "replace")[-OUTPUT_KEPT:]


def _start(plan: _Plan, limits: Limits, stdout, stderr) -> subprocess.Popen:
    # user/group/extra_groups and start_new_session are applied by subprocess in C after fork: safe beside the
    # worker's threads, unlike a preexec_fn. The environment is empty from the first process on.
    drop = {} if plan.uid is None else {"user": plan.uid, "group": plan.uid, "extra_groups": []}
    return subprocess.Popen(
        _command(plan, limits),
        stdin=subprocess.PIPE,
        stdout=stdout,
        stderr=stderr,
        env={},
        cwd="/",
        start_new_session=True,
        close_fds=True,
        **drop,
    )


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL bwrap's process group; its reaper dies with it (--die-with-parent), and with the reaper, every
    process left in the sandbox's PID namespace."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_python(program: str, *, limits: Limits | None = None) -> Outcome:
    """Run `program` (Python source, read from stdin inside the sandbox) and say how it ended."""
    plan = _plan()
    if isinstance(plan, str):
        return Outcome("unavailable", reason=plan)
    limits = limits or _config.limits
    if len(program) > MAX_PROGRAM:
        return Outcome("failed", reason=f"the program is over {MAX_PROGRAM:,} characters")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = _start(plan, limits, out, err)
        except OSError as exc:
            return Outcome("unavailable", reason=f"bubblewrap could not start: {exc}")
        started = time.monotonic()
        try:
            proc.communicate(program.encode("utf-8", "replace"), timeout=limits.deadline_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            timed_out = True
        except BrokenPipeError:  # the program ended (or could not start) before reading all of its source
            proc.wait(timeout=max(0.1, limits.deadline_s - (time.monotonic() - started)))
            timed_out = False
        err.seek(0)
        started_up = err.read(len(STARTED)) == STARTED.encode()
        stdout, stderr = _tail(out), _tail(err).removeprefix(STARTED)
    if timed_out:
        return Outcome(
            "timeout", reason=f"killed at the {limits.deadline_s:g} s deadline", stdout=stdout, stderr=stderr
        )
    code = proc.returncode
    if code == 0:
        return Outcome("passed", returncode=0, stdout=stdout, stderr=stderr)
    if not started_up:
        why = _last_line(stderr) or f"exit status {code}"
        return Outcome("unavailable", reason=f"bubblewrap could not start a sandbox: {why}")
    return Outcome("failed", reason=_failure(code, stderr, limits), returncode=code, stdout=stdout, stderr=stderr)


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[-1][:200]


_SIGNALS = {
    signal.SIGXCPU: "CPU-time limit ({cpu_s} s)",
    signal.SIGKILL: "killed (a limit was reached)",
    signal.SIGXFSZ: "file-size limit ({file_mb} MiB)",
    signal.SIGSEGV: "crashed (segmentation fault)",
}


def _failure(code: int, stderr: str, limits: Limits) -> str:
    # bwrap reports a child killed by signal N as exit status 128 + N.
    number = -code if code < 0 else code - 128 if code > 128 else 0
    if number in _SIGNALS:
        return "stopped by the sandbox: " + _SIGNALS[number].format(cpu_s=limits.cpu_s, file_mb=limits.file_mb)
    return _last_line(stderr) or f"exit status {code}"


@functools.cache
def availability() -> tuple[bool, str]:
    """Whether a sandbox starts here, proven by running a trivial program in one (cached until `configure`):
    for /healthz, the admin and the worker's start-up line."""
    outcome = run_python("print('ok')", limits=replace(_config.limits, deadline_s=max(_config.limits.deadline_s, 10)))
    if outcome.status == "passed" and outcome.stdout.strip() == "ok":
        return True, "bubblewrap sandbox ready"
    return False, outcome.reason or _last_line(outcome.stderr) or "the sandbox did not run a trivial program"
