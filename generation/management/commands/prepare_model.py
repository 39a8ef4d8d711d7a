import logging
import time

from django.core.management.base import BaseCommand

from generation.worker import engine_config


class Command(BaseCommand):
    help = "Load the configured model once (converting the bundled GGUF into the cache on first use) and report times."

    def handle(self, **options):
        from generation.engine import load_engine

        logging.getLogger("generation").setLevel(logging.INFO)
        started = time.monotonic()
        engine = load_engine(engine_config())
        self.stdout.write(
            f"{engine.model_name} ready on {engine.device} in {time.monotonic() - started:.1f} s "
            f"(context {engine.context_length} tokens, weights sha256 {engine.weights_sha256[:12]})"
        )
