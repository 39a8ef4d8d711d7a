"""Datasets, evaluation runs, experiments and the promotion gate, on the bundled SmolLM2 (llama.cpp) with small
datasets and few tokens: cases run as real jobs through job_run, in this process."""

import pytest
from django.core.exceptions import ValidationError

from generation import selectors, services
from generation.models import (
    DatasetItem,
    DatasetOrigin,
    Experiment,
    ImmutableError,
    Job,
    JobPurpose,
    JobStatus,
    LabelMove,
    PromptTemplate,
    RunStatus,
    UserQuota,
)
from generation.services import limits
from tests.support.evaluation import STORIES, approved_job, equal_version, run_here, small_dataset, worse_version

pytestmark = pytest.mark.django_db


def test_a_dataset_from_approved_jobs_keeps_inputs_seeds_and_the_approved_text(
    user, reviewer, curator, gguf_engine, fast_headline
):
    edited = approved_job(user, reviewer, gguf_engine, STORIES[0], edit="Council backs Elm River bridge")
    plain = approved_job(user, reviewer, gguf_engine, STORIES[1])
    draft = services.job_create(user=user, template="headline", inputs={"text": STORIES[2]})  # not approved

    dataset = services.dataset_from_approved_jobs(template=fast_headline, name="approved", user=curator)
    items = list(dataset.items.order_by("index"))
    assert (dataset.version, dataset.origin, len(items)) == (1, DatasetOrigin.APPROVED_JOBS, 2)
    assert [i.source_job_id for i in items] == [edited.pk, plain.pk]  # oldest first; the draft is left out
    assert draft.pk not in {i.source_job_id for i in items}
    assert items[0].inputs == {"text": STORIES[0]} and items[0].seed == edited.params["seed"]
    assert items[0].reference == "Council backs Elm River bridge"  # the editor's final text
    assert items[1].reference == plain.outputs.get(index=0).text

    again = services.dataset_from_approved_jobs(template=fast_headline, name="approved", user=curator)
    assert again.version == 2  # the same name: its next version, the first left as it was
    with pytest.raises(ValidationError) as err:
        services.dataset_from_approved_jobs(template=PromptTemplate.objects.get(slug="code"), name="x", user=curator)
    assert "jobs" in err.value.message_dict


def test_uploaded_cases_are_checked_and_a_bad_one_writes_nothing(curator, fast_headline):
    rows = services.parse_upload(
        "cases.csv",
        b"text,reference,required,seed\nA storm hit the coast.,Storm hits coast,storm|coast,5\nRain fell.,,,\n",
    )
    dataset = services.dataset_create(template=fast_headline, name="upload", cases=rows, user=curator)
    first, second = dataset.items.order_by("index")
    assert (
        first.checks == {"required": ["storm", "coast"]} and first.seed == 5 and first.reference == "Storm hits coast"
    )
    assert second.inputs == {"text": "Rain fell."} and isinstance(second.seed, int)

    bad = services.parse_upload("cases.jsonl", b'{"inputs": {"text": "ok"}}\n{"inputs": {}, "seed": 3}\n')
    with pytest.raises(ValidationError) as err:
        services.dataset_create(template=fast_headline, name="bad", cases=bad, user=curator)
    assert list(err.value.message_dict) == ["items.1.inputs.text"]
    assert not fast_headline.datasets.filter(name="bad").exists()
    with pytest.raises(ValidationError) as err:
        services.parse_upload("cases.jsonl", b'{"inputs": \n')
    assert "Line 1" in err.value.message_dict["file"][0]


def test_a_dataset_used_by_a_run_is_frozen_and_edits_make_a_new_version(curator, fast_headline, gguf_engine):
    dataset = small_dataset(fast_headline, curator, n=1)
    item = dataset.items.get()
    item.reference = "Editable before any run"
    item.save()
    services.run_start(version=services.resolve_version(fast_headline), dataset=dataset, user=curator)
    item.refresh_from_db()
    item.reference = "Changed after a run"
    with pytest.raises(ImmutableError):
        item.save()
    with pytest.raises(ImmutableError):
        item.delete()
    assert DatasetItem.objects.get(pk=item.pk).reference == "Editable before any run"
    copy = services.dataset_copy(dataset, user=curator)
    edited = copy.items.get()
    edited.reference = "Changed in version 2"
    edited.save()
    assert (copy.version, edited.inputs, edited.seed) == (2, item.inputs, item.seed)


def test_a_rerun_reproduces_its_outputs_and_the_side_by_side_shows_no_change(curator, fast_headline, gguf_engine):
    small_dataset(fast_headline, curator)
    experiment = services.experiment_start(
        template=fast_headline, user=curator, label="production", dataset="gate", reuse_baseline=False
    )
    assert experiment.candidate_id != experiment.baseline_id  # both ran
    experiment = run_here(experiment, gguf_engine)
    report = selectors.experiment_report(experiment)
    assert report["status"] == RunStatus.FINISHED and report["gate"]["passed"], report["gate"]
    comparison = report["comparison"]
    assert comparison["identical_cases"] == 2 and comparison["regressed_cases"] == 0  # fixed seeds: same text
    rows = {r["key"]: r for r in comparison["metrics"]}
    assert rows["contract_rate"]["baseline"] == rows["contract_rate"]["candidate"] is not None
    assert rows["tokens"]["delta"] == 0  # latency aside (wall time), nothing moved
    assert not any(r["regressed"] or r["improved"] for k, r in rows.items() if k != "latency_s")
    case = comparison["cases"][0]
    assert case["baseline"]["outputs"] == case["candidate"]["outputs"] and len(case["candidate"]["outputs"]) == 2
    assert case["candidate"]["grounding"]["applies"] and case["candidate"]["tokens"] > 0

    reused = services.experiment_start(template=fast_headline, user=curator, label="production", dataset="gate")
    assert reused.baseline_id in (experiment.candidate_id, experiment.baseline_id)  # a finished run, not run again


def test_an_experiment_whose_runs_both_ended_unfinished_is_finished_by_the_sweep(curator, fast_headline, gguf_engine):
    """Both runs' last cases end at once on a worker and each advance sees the other run still running: the
    experiment's row lock settles that, and the reconciler's sweep finishes whatever an advance left behind."""
    small_dataset(fast_headline, curator)
    experiment = services.experiment_start(
        template=fast_headline, user=curator, label="production", dataset="gate", reuse_baseline=False
    )
    experiment = run_here(experiment, gguf_engine)
    Experiment.objects.filter(pk=experiment.pk).update(finished_at=None)  # as an advance that died would leave it
    assert services.reconcile_jobs()["evaluation_runs"] == 0  # no run is running
    experiment.refresh_from_db()
    assert experiment.finished_at is not None and experiment.gate["passed"]


def test_the_gate_refuses_a_worse_version_with_the_numbers_and_allows_an_equal_one(curator, fast_headline, gguf_engine):
    PromptTemplate.objects.filter(pk=fast_headline.pk).update(gate_dataset="gate")
    fast_headline.refresh_from_db()
    small_dataset(fast_headline, curator)
    worse = worse_version(fast_headline, curator)

    with pytest.raises(services.GateRefused) as refused:  # no experiment yet
        services.template_label_move(template=fast_headline, label="production", version=worse, user=curator)
    assert f"No finished experiment of v{worse.number}" in refused.value.failures[0]

    experiment = run_here(
        services.experiment_start(template=fast_headline, user=curator, version=worse.number), gguf_engine
    )
    comparison = experiment.comparison
    assert comparison["metrics"][0]["key"] == "contract_rate" and comparison["metrics"][0]["regressed"]  # first
    assert comparison["metrics"][0]["candidate"] == 0.0 and comparison["regressed_cases"] == 2
    assert not experiment.gate["passed"] and "contract_rate" in experiment.gate["failures"][0]
    with pytest.raises(services.GateRefused) as refused:
        services.template_label_move(template=fast_headline, label="production", version=worse, user=curator)
    assert "0% against the baseline's" in refused.value.failures[0]
    assert services.resolve_version(fast_headline).number == worse.number - 1
    # Other labels are not protected by default.
    services.template_label_move(template=fast_headline, label="staging", version=worse, user=curator)

    equal = equal_version(fast_headline, curator)
    passed = run_here(
        services.experiment_start(template=fast_headline, user=curator, version=equal.number), gguf_engine
    )
    assert passed.gate["passed"], passed.gate
    services.template_label_move(template=fast_headline, label="production", version=equal, user=curator)
    move = LabelMove.objects.filter(label__name="production").first()
    assert (move.to_version, move.experiment, move.overridden, move.moved_by) == (equal, passed, False, curator)


def test_staff_may_override_the_gate_only_with_a_reason_and_the_move_keeps_it(curator, user, fast_headline):
    PromptTemplate.objects.filter(pk=fast_headline.pk).update(gate_dataset="gate")
    fast_headline.refresh_from_db()
    small_dataset(fast_headline, curator)
    worse = worse_version(fast_headline, curator)
    with pytest.raises(ValidationError) as err:
        services.template_label_move(
            template=fast_headline, label="production", version=worse, user=curator, override=True
        )
    assert "reason" in err.value.message_dict
    with pytest.raises(ValidationError) as err:
        services.template_label_move(
            template=fast_headline, label="production", version=worse, user=user, override=True, reason="Because"
        )
    assert "override" in err.value.message_dict
    services.template_label_move(
        template=fast_headline,
        label="production",
        version=worse,
        user=curator,
        override=True,
        reason="Hotfix for a rule",
    )
    move = LabelMove.objects.filter(label__name="production").first()
    assert (move.overridden, move.reason, move.moved_by, move.to_version) == (True, "Hotfix for a rule", curator, worse)


def test_evaluation_jobs_stay_out_of_histories_reviews_and_quotas(user, reviewer, fast_headline, gguf_engine):
    UserQuota.objects.create(user=user, tokens_per_day=50)  # far less than one headline job reserves
    small_dataset(fast_headline, user)
    experiment = run_here(
        services.experiment_start(template=fast_headline, user=user, label="production", dataset="gate"), gguf_engine
    )
    jobs = Job.objects.filter(evaluation__run__in=[experiment.candidate, experiment.baseline])
    assert jobs.count() == 4 and set(jobs.values_list("purpose", flat=True)) == {JobPurpose.EVALUATION}
    assert all(j.status == JobStatus.SUCCEEDED and j.completion_tokens for j in jobs)
    assert not selectors.jobs_visible_to(user).exists() and not selectors.jobs_for_review(reviewer).exists()
    assert limits.tokens_used_today(user) == 0 and selectors.usage_by_day(user, 7) == []
    with pytest.raises(limits.LimitExceeded):  # the user's own job still meets the quota
        services.job_create(user=user, template="headline", inputs={"text": STORIES[0]})


def test_an_import_moving_a_protected_label_goes_through_the_gate_and_the_gate_travels(curator, fast_headline):
    small_dataset(fast_headline, curator)
    exported = services.templates_export(["headline"])
    spec = exported["templates"][0]
    assert (spec["gate_dataset"], spec["gate"]) == ("", {})
    top = max(v["number"] for v in spec["versions"])
    spec["versions"].append({**spec["versions"][-1], "number": top + 1, "system_prompt": "Write tabloid headlines."})
    spec["labels"]["production"] = top + 1
    spec["gate_dataset"], spec["gate"] = "gate", {"max_drop": {"chrf": 5}}
    with pytest.raises(ValidationError) as err:
        services.templates_import(exported, user=curator)
    assert list(err.value.message_dict) == ["templates.0.labels.production"]
    assert "No finished experiment" in err.value.message_dict["templates.0.labels.production"][0]
    fast_headline.refresh_from_db()
    assert (
        fast_headline.gate_dataset == "" and not fast_headline.versions.filter(number=top + 1).exists()
    )  # all or nothing

    del spec["labels"]["production"]
    services.templates_import(exported, user=curator)
    fast_headline.refresh_from_db()
    assert (fast_headline.gate_dataset, fast_headline.gate) == ("gate", {"max_drop": {"chrf": 5}})
    spec["gate"] = {"max_drop": {"tokens": 1}}
    with pytest.raises(ValidationError) as err:
        services.templates_import(exported, user=curator)
    assert list(err.value.message_dict) == ["templates.0.gate.max_drop.tokens"]
