"""Training runs on the tiny random Llama: started on frozen pairs, trained by training_execute as a worker of
the training queue would, cancelled, resumed after a worker's death from the last checkpoint; a run that
succeeds leaves its adapter, a version that names it (jobs on it record and run with the adapter), the held-out
pairs as a dataset and the experiment against the base version."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from generation import services
from generation.engine import lora
from generation.models import Adapter, JobStatus, PromptTemplate, TrainingRun, TrainingStatus
from tests.support.training import approved

pytestmark = pytest.mark.django_db

STORIES = [f"Story {i}: the council met on day {i} and voted on the Elm River bridge plan." for i in range(8)]
FAST = {"rank": 4, "alpha": 8, "epochs": 2, "learning_rate": 5e-3, "batch_size": 2, "checkpoint_every": 2}


@pytest.fixture
def engine(tiny_model_dir, tmp_path):
    """A tiny engine of this test's own: attaching adapters changes an engine."""
    from generation.engine import EngineConfig, load_engine

    config = EngineConfig(model_path=str(tiny_model_dir), cache_dir=str(tmp_path / "c"), dtype="float32")
    return load_engine(config)


@pytest.fixture
def edits(user, reviewer):
    for i, story in enumerate(STORIES):
        approved(user, reviewer, story, wrote=f"Council Votes On Day {i}.", edit=f"Council votes on day {i}")
    return PromptTemplate.objects.get(slug="headline")


def test_a_run_trains_and_leaves_an_adapter_a_version_a_dataset_and_an_experiment(
    tuned, edits, curator, engine, user, reviewer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as sent:
        run = services.training_start(template=edits, user=curator, params=FAST)
    assert len(sent) == 1 and run.status == TrainingStatus.QUEUED
    assert run.train_pairs + run.heldout_pairs == len(STORIES) and run.heldout_pairs >= 1
    approved(user, reviewer, "A later story about the vote.", wrote="x", edit="Later")  # frozen: not in this run
    services.training_execute(run.pk, engine_for=lambda alias: engine)
    run.refresh_from_db()
    assert run.status == TrainingStatus.SUCCEEDED, run.error
    assert run.progress["step"] == run.progress["total_steps"] == 2 * -(-run.train_pairs // 2)
    assert len(run.losses) == run.progress["total_steps"] and run.progress["resumed_from"] == 0
    adapter = Adapter.objects.get(sha256=run.adapter_sha256)
    assert adapter.base_sha256 == engine.weights_sha256 == run.base_sha256 and adapter.training_run == run
    version = run.version
    assert (version.adapter_sha256, version.model_alias) == (adapter.sha256, "tuned")
    assert version.user_template == run.base_version.user_template and version.number > run.base_version.number
    assert run.dataset.items.count() == run.heldout_pairs
    assert {i.reference for i in run.dataset.items.all()} <= {f"Council votes on day {i}" for i in range(8)}
    experiment = run.experiment
    assert (experiment.candidate.version, experiment.baseline.version) == (version, run.base_version)
    assert experiment.candidate.model_alias == experiment.baseline.model_alias == "tuned"  # the adapter alone differs

    with pytest.raises(services.GateRefused) as refused:  # an adapter's version is gated, gate dataset or not
        services.template_label_move(template=edits, label="production", version=version, user=curator)
    assert f"No finished experiment of v{version.number} on {run.dataset}" in refused.value.failures[0]

    job = services.job_create(user=user, template="headline", version=version.number, inputs={"text": STORIES[0]})
    assert job.adapter_sha256 == adapter.sha256 and job.model_alias == "tuned"
    services.job_run(job.pk, engine=engine)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert adapter.sha256[:16] in lora.attached(engine)  # attached on the job's first use, by its sha256


def test_too_few_edits_or_bad_params_are_refused_naming_the_field(tuned, user, reviewer, curator):
    template = PromptTemplate.objects.get(slug="headline")
    approved(user, reviewer, STORIES[0], wrote="A", edit="a")
    with pytest.raises(ValidationError) as info:
        services.training_start(template=template, user=curator)
    assert "at least 3" in info.value.message_dict["template"][0]
    with pytest.raises(ValidationError) as info:
        services.training_start(template=template, user=curator, params={"rank": 0, "epochs": "many"})
    assert {"params.rank", "params.epochs"} <= set(info.value.message_dict)
    assert not TrainingRun.objects.exists()


def test_no_adapter_alias_is_a_clear_refusal(edits, curator):
    with pytest.raises(ValidationError) as info:
        services.training_start(template=edits, user=curator)
    assert "AIGC_ADAPTER_ALIAS" in info.value.message_dict["model"][0]


def test_a_cancelled_run_stops_and_a_dead_worker_s_run_resumes_from_its_checkpoint(
    tuned, edits, curator, engine, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        queued = services.training_start(template=edits, user=curator, params=FAST)
    services.training_cancel(queued, user=curator)
    queued.refresh_from_db()
    assert queued.status == TrainingStatus.CANCELLED
    services.training_execute(queued.pk, engine_for=lambda alias: engine)  # a message still on the queue: nothing
    assert TrainingRun.objects.get(pk=queued.pk).status == TrainingStatus.CANCELLED
    with pytest.raises(ValidationError):
        services.training_cancel(queued, user=curator)

    with django_capture_on_commit_callbacks(execute=False):
        run = services.training_start(template=edits, user=curator, params=FAST)

    def cancelled_as_it_starts(alias):
        TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)  # the curator presses Cancel
        return engine

    services.training_execute(run.pk, engine_for=cancelled_as_it_starts)
    run.refresh_from_db()
    assert run.status == TrainingStatus.CANCELLED and run.version is None  # stopped at its first step
    assert (services.training.adapters_dir() / str(run.pk) / "checkpoint").is_dir()  # its checkpoint is kept

    # As a worker that died right after that checkpoint would leave it: running, its heartbeat stopped.
    stale = timezone.now() - timedelta(hours=1)
    TrainingRun.objects.filter(pk=run.pk).update(
        status=TrainingStatus.RUNNING, cancel_requested=False, heartbeat_at=stale, finished_at=None
    )
    assert services.training.training_reconcile() == 1  # sent again to the training queue
    services.training_execute(run.pk, engine_for=lambda alias: engine)  # the message, on a restarted worker
    run.refresh_from_db()
    assert run.status == TrainingStatus.SUCCEEDED, run.error
    assert run.progress["resumed_from"] == 1 and run.attempts == 2 and len(run.losses) == run.progress["step"]


def test_a_run_whose_held_out_cases_cannot_be_measured_fails_saying_why(
    tuned, edits, curator, engine, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        run = services.training_start(template=edits, user=curator, params=FAST)
    TrainingRun.objects.filter(pk=run.pk).update(held_out_cases=[{"inputs": {}, "reference": "x"}])
    services.training_execute(run.pk, engine_for=lambda alias: engine)
    run.refresh_from_db()
    assert run.status == TrainingStatus.FAILED and run.error.startswith("Trained adapter ")
    assert "text" in run.error and run.version is None  # nothing half-written: no version, no dataset
    assert not edits.versions.filter(adapter_sha256__gt="").exists()
