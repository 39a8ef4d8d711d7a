"""A training run on the training queue, trained by a real Celery worker process on the bundled SmolLM2: its
progress is live in the database while it trains, and a worker killed mid-run (SIGKILL) loses nothing but the
steps since its last checkpoint: the reconciler sends the run again and another worker resumes it there. The
experiment the run starts is served by a worker of the adapter alias, base and adapter in its batches."""

import json
import signal
import time

import pytest

from generation import services
from generation.models import Experiment, Job, JobStatus, TrainingRun, TrainingStatus
from tests.integration.conftest import log_tail
from tests.integration.test_training import EDITS, PARAMS
from tests.support.training import approved

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _wait(run_id, test, what: str, timeout: float, *procs) -> TrainingRun:
    deadline = time.monotonic() + timeout
    while not test(run := TrainingRun.objects.get(pk=run_id)):
        assert time.monotonic() < deadline, f"the run never {what}: {run.status} {run.progress}\n" + log_tail(*procs)
        time.sleep(0.3)
    return run


def test_a_trainer_killed_mid_run_is_resumed_from_its_checkpoint(
    cluster, settings, tmp_path, user, reviewer, curator, fast_headline
):
    models = {"default": {}, "tuned": {"backend": "transformers", "max_rows": 8}}
    queue, cache = f"{cluster.queue}-training", str(tmp_path / "models")
    settings.AIGC = {**settings.AIGC, "MODELS": models, "MODEL_CACHE_DIR": cache, "TRAINING_QUEUE": queue}
    env = {"AIGC_MODELS": json.dumps(models), "AIGC_MODEL_CACHE_DIR": cache, "AIGC_TRAINING_QUEUE": queue}
    for i, (story, headline) in enumerate(EDITS):
        approved(user, reviewer, story, wrote=headline.title() + ".", edit=headline, seed=100 + i)
    run = services.training_start(template=fast_headline, user=curator, params={**PARAMS, "checkpoint_every": 4})

    first = cluster.worker("trainer-1", queue=queue, concurrency=1, **env)
    run = _wait(run.pk, lambda r: r.progress.get("step", 0) >= 6, "passed step 6", 600, first)
    assert run.status == TrainingStatus.RUNNING and run.progress["total_steps"] >= 12
    assert run.progress["eta_s"] > 0 and run.progress["tokens_per_s"] > 0  # what the page and the API show
    first.send_signal(signal.SIGKILL)
    first.wait()

    second = cluster.worker("trainer-2", queue=queue, concurrency=1, **env)
    time.sleep(3.5)  # the dead worker's heartbeat is now older than AIGC_STALE_AFTER_S
    assert services.reconcile_jobs()["training_runs"] == 1  # what beat does every AIGC_RECONCILE_EVERY_S
    run = _wait(run.pk, lambda r: r.is_final, "ended", 900, second)
    assert run.status == TrainingStatus.SUCCEEDED, run.error + log_tail(second)
    assert run.attempts == 2 and run.progress["resumed_from"] in (4, 8) and run.version.adapter_sha256
    assert len(run.losses) == run.progress["total_steps"]

    cluster.worker("tuned", queue=f"{cluster.queue}.tuned", **env)  # hosts the adapter alias: it serves the cases
    deadline = time.monotonic() + 600
    while (experiment := Experiment.objects.get(pk=run.experiment_id)).finished_at is None:
        assert time.monotonic() < deadline, "the experiment never finished"
        time.sleep(0.5)
    jobs = Job.objects.filter(evaluation__run__in=[experiment.candidate, experiment.baseline])
    assert {(j.status, j.backend) for j in jobs} == {(JobStatus.SUCCEEDED, "transformers")}
    adapters = {j.evaluation.run_id: j.adapter_sha256 for j in jobs}
    assert adapters[experiment.candidate_id] == run.adapter_sha256 and adapters[experiment.baseline_id] == ""
