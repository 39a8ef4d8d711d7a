"""Datasets, evaluation runs, experiments and the promotion gate, on the bundled SmolLM2 (llama.cpp) with small
datasets and few tokens: cases run as real jobs through job_run, in this process."""

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from generation import selectors, services
from generation.content import checks, evaluation, formats
from generation.models import (
    FINAL_STATUSES,
    DatasetItem,
    DatasetOrigin,
    Desk,
    EvaluationItem,
    EvaluationRun,
    Experiment,
    ImmutableError,
    Job,
    JobOutput,
    JobPurpose,
    JobStatus,
    LabelMove,
    PromptTemplate,
    RunStatus,
    TemplateVersion,
    UserQuota,
)
from generation.services import limits
from generation.services.intake import evaluation_desk
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


def test_a_dataset_from_approved_jobs_takes_the_chosen_candidate_s_edited_text(user, reviewer, curator):
    """The reference is what the newsroom approved (the chosen candidate as edited), not the first candidate."""
    from tests.support.training import approved_choosing

    headline = PromptTemplate.objects.get(slug="headline")
    invented = "Amber Ruiz, Mayor of Riverton, Opens Bridge"
    job = approved_choosing(
        user, reviewer, STORIES[0], wrote=[invented, "Council backs bridge"], choose=1, edit="Council backs Elm bridge"
    )
    dataset = services.dataset_from_approved_jobs(template=headline, name="chosen", user=curator)
    (item,) = dataset.items.all()
    assert (item.source_job_id, item.reference) == (job.pk, "Council backs Elm bridge")
    JobOutput.objects.filter(job=job).update(chosen=False)  # approved with nothing chosen: nothing to take
    with pytest.raises(ValidationError) as err:
        services.dataset_from_approved_jobs(template=headline, name="none", user=curator)
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
    change = fast_headline.gate_changes.get()  # kept, as a change in the admin is
    assert (change.from_dataset, change.to_dataset, change.via, change.changed_by) == ("", "gate", "import", curator)
    spec["gate"] = {"max_drop": {"tokens": 1}}
    with pytest.raises(ValidationError) as err:
        services.templates_import(exported, user=curator)
    assert list(err.value.message_dict) == ["templates.0.gate.max_drop.tokens"]


def test_an_upload_that_would_break_the_parsers_names_its_line(curator, fast_headline):
    """A CSV value past csv's own field limit (131,072 characters) and a JSONL line nested past the stack are
    ValidationErrors naming the file's row or line and the field, never csv.Error or RecursionError."""
    long = b"text,reference\nfine,ok\n" + b"a" * 200_000 + b",ok\n"
    with pytest.raises(ValidationError) as err:
        services.parse_upload("cases.csv", long)
    assert "Row 3, column text: 200,000 characters" in err.value.message_dict["file"][0]
    deep = b'{"inputs": {"text": "ok"}}\n{"inputs": {"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}\n"
    with pytest.raises(ValidationError) as err:
        services.parse_upload("cases.jsonl", deep)
    message = err.value.message_dict["file"][0]
    assert message.startswith("Line 2") and "inputs.text" in message and "Nested deeper than 32" in message


# --- guards: a case that cannot be sent, the pool, the global cap ----------------------------------------------


def in_flight() -> int:
    return Job.objects.filter(purpose=JobPurpose.EVALUATION).exclude(status__in=FINAL_STATUSES).count()


def test_a_spent_pool_leaves_cases_waiting_named_and_they_go_once_it_has_room(curator, fast_headline):
    """The pool runs out between the start and a send: the case waits, the run says for what, and the sweep goes
    on (training runs included) instead of raising every time; with room again the cases go."""
    small_dataset(fast_headline, curator)
    organisation = evaluation_desk(curator).organisation
    organisation.evaluation_tokens_per_day = 10  # room left, but less than any case reserves
    organisation.save()
    experiment = services.experiment_start(
        template=fast_headline, user=curator, label="production", dataset="gate", reuse_baseline=False
    )
    run = services.run_advance(experiment.candidate_id)
    assert run.status == RunStatus.RUNNING and in_flight() == 0
    assert run.waiting.startswith(f"Token budget evaluation:{organisation.slug} daily reached")
    report = selectors.experiment_report(selectors.experiment_detail(experiment.pk))
    assert report["candidate"]["waiting"] == run.waiting and report["candidate"]["measured"] == 0
    swept = services.reconcile_jobs()
    assert swept["evaluation_runs"] == 2 and "training_runs" in swept

    organisation.evaluation_tokens_per_day = None  # the default pool: room enough
    organisation.save()
    services.reconcile_jobs()
    assert in_flight() == 4  # two per run
    assert set(EvaluationRun.objects.values_list("waiting", flat=True)) == {""}


def test_a_case_a_desk_style_breaks_is_measured_as_failed_naming_the_field(curator, fast_headline):
    """A house style that cannot be layered under the version's rules fails each case, with the reason, and the
    run finishes: it is never retried forever."""
    small_dataset(fast_headline, curator)
    Desk.objects.filter(pk=evaluation_desk(curator).pk).update(style={"colour": "red"})  # as no service saves it
    experiment = services.experiment_start(template=fast_headline, user=curator, label="production", dataset="gate")
    run = services.run_advance(experiment.candidate_id)
    assert run.status == RunStatus.FINISHED and run.summary["failed"] == 2 and in_flight() == 0
    errors = {c.metrics["error"] for c in run.items.all()}
    assert len(errors) == 1
    error = errors.pop()
    assert error.startswith("not accepted: ") and "checks.style.colour: Unknown rule" in error


def test_a_run_that_cannot_advance_never_stops_the_sweep_for_the_others(curator, fast_headline, caplog):
    data = small_dataset(fast_headline, curator)
    healthy = services.run_start(version=services.resolve_version(fast_headline), dataset=data, user=curator)
    broken_version = equal_version(fast_headline, curator)
    TemplateVersion.objects.filter(pk=broken_version.pk).update(checks={"bogus": True})  # no service saves it
    broken = services.run_start(version=broken_version, dataset=data, user=curator)  # swept first: the newest

    swept = services.reconcile_jobs()
    assert swept["evaluation_runs"] == 2 and "training_runs" in swept
    assert Job.objects.filter(evaluation__run=healthy).count() == 2  # the other run went on
    assert not Job.objects.filter(evaluation__run=broken).exists()
    assert f"could not advance evaluation run {broken.pk}" in caplog.text


def test_evaluation_jobs_in_flight_are_capped_over_every_run(curator, fast_headline, settings):
    settings.AIGC = {**settings.AIGC, "EVALUATION_IN_FLIGHT": 3}
    data = small_dataset(fast_headline, curator)
    version = services.resolve_version(fast_headline)
    first = services.run_start(version=version, dataset=data, user=curator)
    second = services.run_start(version=version, dataset=data, user=curator)
    services.run_advance(first.pk)
    second = services.run_advance(second.pk)
    assert in_flight() == 3 and Job.objects.filter(evaluation__run=second).count() == 1
    assert "AIGC_EVALUATION_IN_FLIGHT" in second.waiting

    ended = Job.objects.filter(evaluation__run=first).first()
    Job.objects.filter(pk=ended.pk).update(status=JobStatus.FAILED, error="worker lost")
    services.reconcile_jobs()  # the sweep: the first run measures its ended case, the second sends its next
    second.refresh_from_db()
    assert in_flight() == 3 and Job.objects.filter(evaluation__run=second).count() == 2 and second.waiting == ""


def test_an_organisation_without_a_pool_of_its_own_has_the_default_one(curator, fast_headline, settings):
    settings.AIGC = {**settings.AIGC, "EVALUATION_TOKENS_PER_DAY": 10}
    organisation = evaluation_desk(curator).organisation
    assert organisation.evaluation_tokens_per_day is None
    with pytest.raises(limits.LimitExceeded) as refused:
        services.job_create(
            user=curator, template="headline", inputs={"text": STORIES[0]}, purpose=JobPurpose.EVALUATION
        )
    assert refused.value.budget == f"evaluation:{organisation.slug} daily"
    small_dataset(fast_headline, curator)
    settings.AIGC = {**settings.AIGC, "EVALUATION_TOKENS_PER_DAY": 0}  # 0: no default pool
    services.experiment_start(template=fast_headline, user=curator, label="production", dataset="gate")


# --- judging: the baseline's checks, no desk's style; the gate's model ------------------------------------------


def written(job: Job, texts: list[str]) -> None:
    """The job ended as a worker ends it: each text reviewed under the job's own checks (its version's, with the
    desk's house style it was created with), the findings stored with it."""
    version = job.template_version
    wanted = checks.parse(checks.with_house_style(version.checks, job.house_style))
    fmt = formats.spec(version.output_format)
    for index, text in enumerate(texts):
        verdict = checks.review(wanted, fmt, job.kind, text, job.inputs)
        JobOutput.objects.create(
            job=job, index=index, text=verdict.text, checks=[f.as_json() for f in verdict.findings]
        )
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, completion_tokens=8)


def test_a_candidate_is_judged_under_its_baseline_s_checks_and_no_desk_s_style(curator, fast_headline):
    """A candidate that drops the baseline's style rule is held to it anyway; a desk's house style (which its
    admin may change between two runs) moves no number."""
    base = services.resolve_version(fast_headline)
    own_style = base.checks.get("style", {})
    strict, _ = services.template_version_create(
        template=fast_headline,
        user=curator,
        note="no bridges",
        **{**base.content(), "checks": {**base.checks, "style": {**own_style, "banned": [{"phrase": "bridge"}]}}},
    )
    services.template_label_move(template=fast_headline, label="production", version=strict)
    loose, _ = services.template_version_create(
        template=fast_headline, user=curator, note="rule gone", **base.content()
    )
    Desk.objects.filter(pk=evaluation_desk(curator).pk).update(style={"banned": [{"phrase": "crossing"}]})
    small_dataset(fast_headline, curator, n=1)
    experiment = services.experiment_start(
        template=fast_headline, user=curator, version=loose.number, dataset="gate", reuse_baseline=False
    )
    for run_id, text in (
        (experiment.candidate_id, "Council backs bridge"),
        (experiment.baseline_id, "Council backs crossing"),
    ):
        services.run_advance(run_id)
        written(Job.objects.get(evaluation__run_id=run_id), [text, f"{text} plan"])
        services.run_advance(run_id)
    experiment.refresh_from_db()
    candidate = experiment.candidate.items.get().metrics
    baseline = experiment.baseline.items.get().metrics
    assert candidate["style"] == {"ok": False, "findings": 2}  # "bridge", by the baseline's rule
    assert baseline["style"] == {"ok": True, "findings": 0}  # "crossing" is banned by the desk only
    assert experiment.candidate.judge_version == strict and experiment.baseline.judge_version is None
    assert not experiment.gate["passed"] and "style_clean_rate" in experiment.gate["failures"][0]
    report = selectors.experiment_report(experiment)
    assert (report["candidate"]["judged_by"], report["baseline"]["judged_by"]) == (strict.number, strict.number)


def finished_experiment(template, candidate, baseline, dataset, user, *, alias: str, judged: bool = True):
    """A finished experiment that passes every threshold, as rows: `candidate` against `baseline` on `alias`."""
    metrics = [
        {"outputs": ["Council backs bridge"], "error": "", "contract": {"ok": True, "problems": []}, "chrf": 60.0}
        for _ in dataset.items.all()
    ]
    runs = []
    for version, judge in ((candidate, baseline if judged else None), (baseline, None)):
        run = EvaluationRun.objects.create(
            template=template,
            version=version,
            dataset=dataset,
            model_alias=alias,
            judge_version=judge,
            status=RunStatus.FINISHED,
            summary=evaluation.summarise(metrics),
            created_by=user,
            finished_at=timezone.now(),
        )
        for item, m in zip(dataset.items.order_by("index"), metrics, strict=True):
            EvaluationItem.objects.create(run=run, item=item, metrics=m, measured_at=timezone.now())
        runs.append(run)
    comparison = evaluation.compare(runs[1].summary, runs[0].summary, [])
    return Experiment.objects.create(
        template=template,
        candidate=runs[0],
        baseline=runs[1],
        baseline_label="production",
        comparison=comparison,
        gate={"passed": True, "failures": []},
        created_by=user,
        finished_at=timezone.now(),
    )


def test_the_gate_counts_only_an_experiment_on_the_model_the_label_serves_judged_by_the_baseline(
    curator, fast_headline
):
    PromptTemplate.objects.filter(pk=fast_headline.pk).update(gate_dataset="gate")
    fast_headline.refresh_from_db()
    data = small_dataset(fast_headline, curator)
    current = services.resolve_version(fast_headline)
    candidate = equal_version(fast_headline, curator)
    finished_experiment(fast_headline, candidate, current, data, curator, alias="other")
    finished_experiment(fast_headline, candidate, current, data, curator, alias="default", judged=False)
    with pytest.raises(services.GateRefused) as refused:
        services.template_label_move(template=fast_headline, label="production", version=candidate, user=curator)
    assert "model 'default'" in refused.value.failures[0] and "--model default" in refused.value.failures[0]

    allowed = finished_experiment(fast_headline, candidate, current, data, curator, alias="default")
    services.template_label_move(template=fast_headline, label="production", version=candidate, user=curator)
    assert LabelMove.objects.filter(label__name="production").first().experiment == allowed
