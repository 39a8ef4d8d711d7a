import json
import logging
import time

from django.core.management.base import BaseCommand

from generation.workers.engines import engine_config


class Command(BaseCommand):
    help = "Load the configured model once (as a worker does at start, warm-up included) and report the time."

    def add_arguments(self, parser):
        parser.add_argument("--cache-dir", help="Use this cache directory instead of AIGC_MODEL_CACHE_DIR.")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the figures as JSON.")
        parser.add_argument(
            "--backend", choices=["llamacpp", "transformers"], help="Serve the alias with this backend."
        )

    def handle(self, cache_dir, as_json: bool, backend=None, **options):
        import dataclasses

        from generation.engine import load_engine

        logging.getLogger("generation").setLevel(logging.INFO)
        config = engine_config()
        if cache_dir:
            config = dataclasses.replace(config, cache_dir=cache_dir)
        if backend:
            config = dataclasses.replace(config, backend=backend)
        started = time.monotonic()
        engine = load_engine(config)
        engine.warmup()
        seconds = time.monotonic() - started
        from generation.tasks import publish_model_info

        if not as_json:  # a timing run (bench) leaves the published description alone
            publish_model_info("default", engine)
        if as_json:
            self.stdout.write(
                json.dumps({"model": engine.model_name, "device": str(engine.device), "load_s": round(seconds, 2)})
            )
        else:
            self.stdout.write(
                f"{engine.model_name} ready on {engine.device} in {seconds:.1f} s "
                f"(context {engine.context_length} tokens, weights sha256 {engine.weights_sha256[:12]})"
            )
