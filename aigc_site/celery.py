"""The Celery app.

Process model: the worker runs the threads pool (`--pool threads --concurrency 64` in the Procfile). The model
is loaded once per worker process, in the main process, before it consumes any job (generation/tasks.py):
no fork happens after the weights are in memory (forked children break CUDA), and the load is not cut short
by prefork's 4 s limit on `worker_process_init`. Each thread runs one job; all of them hand their requests to
the one engine, whose scheduler thread batches them into shared forward passes (generation/engine/batching.py).
Concurrency is how many jobs can be in one batch at once; prefetch 1 keeps the rest in Redis for other workers.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aigc_site.settings")

app = Celery("aigc_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
