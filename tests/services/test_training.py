"""Training runs on the tiny random Llama: started on frozen pairs (one desk's, unless a curator mixes desks;
the newest AIGC_TRAINING_MAX_PAIRS), trained by training_execute as a worker of the training queue would,
cancelled, resumed after a worker's death from the last checkpoint, stopped at their deadline, leaving no
checkpoint once ended; a run that succeeds leaves its adapter, a version that names it (curators run it by number
until a label releases it; jobs on it record and run with the adapter), the held-out pairs as a dataset and the
experiment against the base version."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from generation import services
from generation.engine import lora
from generation.models import (
    Adapter,
    DeskLabel,
    DeskRole,
    EvaluationRun,
    JobStatus,
    Membership,
    PromptTemplate,
    RunStatus,
    TemplateLabel,
    TrainingRun,
    TrainingStatus,
)
from generation.services.intake import evaluation_desk
from tests.support.desks import desk, join
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

    with pytest.raises(ValidationError) as unreleased:  # no label points at it: not for users yet
        services.job_create(user=user, template="headline", version=version.number, inputs={"text": STORIES[0]})
    assert "no label points at" in unreleased.value.message_dict["version"][0]
    job = services.job_create(user=curator, template="headline", version=version.number, inputs={"text": STORIES[0]})
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
    assert not (services.training.adapters_dir() / str(run.pk) / "checkpoint").exists()  # it ends: no checkpoint

    # As a worker that died right after a checkpoint at its first step would leave it: running, its heartbeat
    # stopped, the checkpoint on disk.
    with django_capture_on_commit_callbacks(execute=False):
        run = services.training_start(template=edits, user=curator, params=FAST)
    examples = [lora.Example(d["messages"], d["answer"]) for d in run.data if d["split"] == "train"]
    with pytest.raises(lora.TrainingCancelled):
        lora.train(
            engine,
            examples,
            lora.LoraParams.from_dict(run.params),
            out_dir=services.training.adapters_dir() / str(run.pk),
            base_sha256=engine.weights_sha256,
            progress=lambda p: p.step < 1,
        )
    stale = timezone.now() - timedelta(hours=1)
    TrainingRun.objects.filter(pk=run.pk).update(
        status=TrainingStatus.RUNNING, heartbeat_at=stale, started_at=stale, attempts=1
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


# --- whose edits, and the bounds on a run ----------------------------------------------------------------------


@pytest.fixture
def two_desks(user, other_user, reviewer):
    """Approved edits of the headline template from two desks: five of the sport desk's, three of the default's."""
    sport = desk("sport")
    join(user, sport)
    Membership.objects.create(desk=sport, user=reviewer, role=DeskRole.REVIEWER)  # and still on the default desk
    for i, story in enumerate(STORIES[:5]):
        approved(user, reviewer, story, wrote=f"Sport {i}.", edit=f"Sport headline {i}")
    for i, story in enumerate(STORIES[5:]):
        approved(other_user, reviewer, story, wrote=f"News {i}.", edit=f"News headline {i}")
    return sport


def test_a_run_learns_from_one_desk_s_edits_unless_a_curator_mixes_desks(
    tuned, two_desks, curator, other_user, django_capture_on_commit_callbacks
):
    """An adapter trained on every desk's edits would carry one desk's style into another's jobs: naming no desk
    where two have edits is refused with each desk's share, and mixing is the curator's explicit choice."""
    headline = PromptTemplate.objects.get(slug="headline")
    with pytest.raises(ValidationError) as mixed:
        services.training_start(template=headline, user=curator, params=FAST)
    assert "sport: 5" in mixed.value.message_dict["desk"][0] and "all desks" in mixed.value.message_dict["desk"][0]
    assert not TrainingRun.objects.exists()

    with django_capture_on_commit_callbacks(execute=False):
        sport = services.training_start(template=headline, user=curator, desk=two_desks, params=FAST)
    assert (sport.desk, sport.all_desks, sport.desk_pairs) == (two_desks, False, {"sport": 5})
    assert {d["desk"] for d in sport.data} == {"sport"} and sport.train_pairs + sport.heldout_pairs == 5

    with django_capture_on_commit_callbacks(execute=False):
        every = services.training_start(template=headline, user=curator, all_desks=True, params=FAST)
    default = Membership.objects.get(user=other_user).desk.slug
    assert (every.desk, every.all_desks) == (None, True)
    assert every.desk_pairs == {default: 3, "sport": 5} and every.train_pairs + every.heldout_pairs == 8
    with pytest.raises(ValidationError) as both:
        services.training_start(template=headline, user=curator, desk=two_desks, all_desks=True, params=FAST)
    assert "all_desks" in both.value.message_dict


def test_a_dataset_from_approved_jobs_is_one_desk_s_unless_a_curator_mixes_desks(two_desks, curator):
    headline = PromptTemplate.objects.get(slug="headline")
    with pytest.raises(ValidationError) as mixed:
        services.dataset_from_approved_jobs(template=headline, name="approved", user=curator)
    assert "sport: 5" in mixed.value.message_dict["desk"][0]
    sport = services.dataset_from_approved_jobs(template=headline, name="sport", user=curator, desk=two_desks)
    assert sport.desk_cases == {"sport": 5} and sport.items.count() == 5
    assert {i.source_job.desk for i in sport.items.select_related("source_job__desk")} == {two_desks}
    every = services.dataset_from_approved_jobs(template=headline, name="every", user=curator, all_desks=True)
    every.refresh_from_db()
    assert sum(every.desk_cases.values()) == 8 and every.desk_cases["sport"] == 5 and len(every.desk_cases) == 2


def adapter_version(template, curator):
    """A version running with an adapter (its row only: nothing is served here), as a training run leaves one."""
    adapter = Adapter.objects.create(sha256="a" * 64, path="adapters/x/adapter", base_sha256="b" * 64, data_sha256="c")
    base = services.resolve_version(template)
    version, _ = services.template_version_create(
        template=template,
        user=curator,
        note="adapter",
        **{**base.content(), "adapter_sha256": adapter.sha256, "model_alias": "tuned"},
    )
    return version


def test_an_adapter_version_runs_by_number_only_once_a_label_points_at_it(tuned, user, curator):
    """An adapter nobody released (no label points at it) is for curators to try; a label, the template's or the
    user's desk's own, releases it to users."""
    headline = PromptTemplate.objects.get(slug="headline")
    version = adapter_version(headline, curator)

    def run_it(who):
        return services.job_create(user=who, template="headline", version=version.number, inputs={"text": STORIES[0]})

    with pytest.raises(ValidationError) as refused:
        run_it(user)
    assert "only template curators" in refused.value.message_dict["version"][0]
    assert run_it(curator).adapter_sha256 == version.adapter_sha256

    own_desk = Membership.objects.get(user=user).desk
    DeskLabel.objects.create(desk=own_desk, template=headline, name="sport-trial", version=version)
    assert run_it(user).template_version == version  # the user's desk pinned it
    DeskLabel.objects.all().delete()
    with pytest.raises(ValidationError):
        run_it(user)
    TemplateLabel.objects.create(template=headline, name="trial", version=version)
    assert run_it(user).template_version == version


def test_a_run_takes_the_newest_pairs_up_to_the_bound(tuned, edits, curator, settings):
    settings.AIGC = {**settings.AIGC, "TRAINING_MAX_PAIRS": 4}
    run = services.training_start(template=edits, user=curator, params=FAST)
    answers = {d["answer"] for d in run.data}
    assert run.train_pairs + run.heldout_pairs == 4 == len(run.data)
    assert answers == {f"Council votes on day {i}" for i in range(4, 8)}  # the newest four


def test_a_run_past_its_deadline_fails_saying_so_and_leaves_no_checkpoint(
    tuned, edits, curator, engine, settings, django_capture_on_commit_callbacks
):
    settings.AIGC = {**settings.AIGC, "TRAINING_MAX_S": 60.0}
    with django_capture_on_commit_callbacks(execute=False):
        run = services.training_start(template=edits, user=curator, params={**FAST, "checkpoint_every": 1})

    def time_runs_out(alias):  # its model loaded, the run's time is up (as if loading took 60 s)
        settings.AIGC = {**settings.AIGC, "TRAINING_MAX_S": 0.0}
        return engine

    services.training_execute(run.pk, engine_for=time_runs_out)
    run.refresh_from_db()
    assert run.status == TrainingStatus.FAILED and "deadline" in run.error and "AIGC_TRAINING_MAX_S" in run.error
    assert run.progress["step"] == 1 and run.version is None  # stopped at its next step
    folder = services.training.adapters_dir() / str(run.pk)
    assert not (folder / "checkpoint").exists() and not list(folder.glob(".checkpoint-*"))

    # A run whose trainer died and whose time is up is failed by the reconciler, not sent again.
    settings.AIGC = {**settings.AIGC, "TRAINING_MAX_S": 60.0}
    with django_capture_on_commit_callbacks(execute=False):
        lost = services.training_start(template=edits, user=curator, params=FAST)
    stale = timezone.now() - timedelta(hours=2)
    TrainingRun.objects.filter(pk=lost.pk).update(status=TrainingStatus.RUNNING, heartbeat_at=stale, started_at=stale)
    (folder := services.training.adapters_dir() / str(lost.pk) / "checkpoint").mkdir(parents=True)
    assert services.training.training_reconcile() == 0
    lost.refresh_from_db()
    assert lost.status == TrainingStatus.FAILED and "deadline" in lost.error and not folder.exists()


def test_a_run_s_own_experiment_waits_for_a_spent_pool_and_the_run_still_succeeds(
    tuned, edits, curator, engine, django_capture_on_commit_callbacks
):
    """The adapter is trained already: a spent evaluation pool makes its experiment's cases wait, as any run's do,
    rather than failing the run or raising after it ended."""
    organisation = evaluation_desk(curator).organisation
    organisation.evaluation_tokens_per_day = 0
    organisation.save()
    with django_capture_on_commit_callbacks(execute=False):
        run = services.training_start(template=edits, user=curator, params=FAST)
    with django_capture_on_commit_callbacks(execute=True):
        services.training_execute(run.pk, engine_for=lambda alias: engine)
    run.refresh_from_db()
    assert run.status == TrainingStatus.SUCCEEDED, run.error
    candidate = EvaluationRun.objects.get(pk=run.experiment.candidate_id)
    assert candidate.status == RunStatus.RUNNING and not candidate.items.filter(job__isnull=False).exists()
    assert candidate.waiting.startswith(f"Token budget evaluation:{organisation.slug} daily reached")
