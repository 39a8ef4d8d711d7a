"""The Celery app.

Process model: the worker runs the threads pool (`--pool threads`). The model is loaded once per worker
process, in the main process, before it consumes any job (see generation/worker.py): no fork happens after
the weights are in memory (forked children break CUDA), and the load is not cut short by prefork's 4 s
limit on `worker_process_init`. The engine serialises access to the model, so threads only queue on it.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aigc_site.settings")

app = Celery("aigc_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
