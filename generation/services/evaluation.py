"""Evaluation: datasets of cases per template, runs of a version over a dataset as real jobs through the normal
queue, and experiments that compare a candidate run with a baseline run (content/evaluation.py measures,
content/gating.py judges).

A run sends its cases IN_FLIGHT at a time as evaluation jobs (never in a history, review or quota), and is
advanced each time one of its jobs ends (job_run calls `run_advance_for_job`) and by the reconciler, so a lost
message or a dead worker leaves nothing stuck. Each case's seed is fixed in the dataset: a rerun of the same
version on the same engine writes the same text.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import Counter

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone

from ..content import checks, evaluation, formats, gating, prompts, safeparse
from ..infra import registry
from ..models import (
    FINAL_STATUSES,
    Dataset,
    DatasetItem,
    DatasetOrigin,
    EvaluationItem,
    EvaluationRun,
    Experiment,
    Job,
    JobOutput,
    JobPurpose,
    JobStatus,
    PromptTemplate,
    ReviewState,
    RunStatus,
    TemplateLabel,
    TemplateVersion,
    TrainingRun,
)
from ..selectors.training import source_desk, source_settle
from . import budgets
from .errors import error_line
from .intake import evaluation_desk, job_create
from .limits import LimitExceeded
from .review import job_cancel
from .templates import resolve_version

log = logging.getLogger("generation.evaluation")

# Evaluation jobs of one run in flight at once: the worker batches them beside users' jobs, and a user's job
# queued behind a run waits for at most this many of its jobs.
IN_FLIGHT = 2
# Over every run together at most AIGC_EVALUATION_IN_FLIGHT: sends are serialised under this advisory lock key
# (PostgreSQL; SQLite takes its write lock at BEGIN), so two runs advancing at once never both take the last place.
SEND_LOCK_KEY = 0x6576616C
MAX_ITEMS = 500
CASE_FIELDS = ("inputs", "reference", "checks", "seed")


# --- datasets --------------------------------------------------------------------------------------------------


def _next_version(template: PromptTemplate, name: str) -> int:
    return (Dataset.objects.filter(template=template, name=name).aggregate(n=Max("version"))["n"] or 0) + 1


def case_clean(template: PromptTemplate, case, where: str) -> dict:
    """One case, validated against the inputs the template's production version declares (a case another
    version cannot take still fails there, as a case: that is a finding, not bad data)."""
    if not isinstance(case, dict):
        raise ValidationError({where: ["An object with inputs, and optionally reference, checks and seed."]})
    unknown = sorted(set(case) - set(CASE_FIELDS))
    if unknown:
        raise ValidationError({f"{where}.{unknown[0]}": [f"Unknown field; a case has {', '.join(CASE_FIELDS)}."]})
    version = resolve_version(template)
    try:
        inputs = prompts.clean_inputs(version.variables, case.get("inputs") or {})
    except prompts.InvalidInput as exc:
        raise ValidationError({f"{where}.{k}": v for k, v in exc.errors.items()}) from None
    reference = case.get("reference") or ""
    if not isinstance(reference, str):
        raise ValidationError({f"{where}.reference": ["Text."]})
    case_checks = case.get("checks") or {}
    if not isinstance(case_checks, dict) or set(case_checks) - {"required", "forbidden", "test"}:
        raise ValidationError({f"{where}.checks": ['{"required": [facts], "forbidden": [facts], "test": "code"}.']})
    for key in ("required", "forbidden"):
        facts = case_checks.get(key, [])
        if not isinstance(facts, list) or not all(isinstance(f, str) and f.strip() for f in facts):
            raise ValidationError({f"{where}.checks.{key}": ["A list of non-empty texts."]})
    if not isinstance(case_checks.get("test", ""), str):
        raise ValidationError({f"{where}.checks.test": ["Python code (asserts) as text."]})
    seed = case.get("seed")
    if seed is None:
        seed = secrets.randbelow(prompts.MAX_SEED)
    elif isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < prompts.MAX_SEED:
        raise ValidationError({f"{where}.seed": [f"A whole number from 0 to {prompts.MAX_SEED - 1}."]})
    return {"inputs": inputs, "reference": reference, "checks": case_checks, "seed": seed}


def dataset_create(
    *,
    template: PromptTemplate,
    name: str,
    cases: list,
    user=None,
    description: str = "",
    origin=DatasetOrigin.ADMIN,
    source_jobs: list | None = None,
) -> Dataset:
    """A dataset from cases ({inputs, reference, checks, seed}); an existing name gets its next version. Every
    case is checked first: a bad one names its place ("items.3.inputs.text") and nothing is written."""
    if not isinstance(name, str) or not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ValidationError({"name": ["A dataset name is letters, digits, '-' and '_'."]})
    if not isinstance(cases, list) or not cases:
        raise ValidationError({"items": ["At least one case."]})
    if len(cases) > MAX_ITEMS:
        raise ValidationError({"items": [f"At most {MAX_ITEMS} cases."]})
    cleaned = [case_clean(template, case, f"items.{i}") for i, case in enumerate(cases)]
    sources = source_jobs or [None] * len(cleaned)
    with transaction.atomic():
        PromptTemplate.objects.select_for_update().filter(pk=template.pk).first()  # serialise numbering
        dataset = Dataset.objects.create(
            template=template,
            name=name,
            version=_next_version(template, name),
            description=description,
            origin=origin,
            created_by=user,
        )
        DatasetItem.objects.bulk_create(
            DatasetItem(dataset=dataset, index=i, source_job=source, **case)
            for i, (case, source) in enumerate(zip(cleaned, sources, strict=True))
        )
    return dataset


def dataset_from_approved_jobs(
    *,
    template: PromptTemplate,
    name: str,
    user,
    limit: int = 20,
    job_ids=None,
    description: str = "",
    desk=None,
    all_desks: bool = False,
) -> Dataset:
    """One action: the template's approved jobs (the newest `limit`, or those named) become cases. Each keeps its
    inputs and seed, and the approved final text of its chosen candidate (the first chosen, where several were)
    becomes the case's reference; a job with nothing chosen approved no text and is left out. The jobs are
    one desk's (the template's own desk, `desk`, or the only desk with approved jobs) unless the curator chose
    `all_desks`; the dataset records how many cases each desk gave (desk_cases)."""
    reading = source_desk(template, desk=desk, all_desks=all_desks)
    jobs = Job.objects.filter(
        Exists(JobOutput.objects.filter(job=OuterRef("pk"), chosen=True)),
        template=template,
        purpose=JobPurpose.USER,
        review_state=ReviewState.APPROVED,
    )
    if reading is not None:
        jobs = jobs.filter(desk=reading)
    if job_ids is not None:
        jobs = jobs.filter(pk__in=list(job_ids))
    jobs = list(jobs.select_related("desk").prefetch_related("outputs").order_by("-created_at")[:limit])
    if not jobs:
        on = f" on the {reading.slug} desk" if reading is not None else ""
        raise ValidationError(
            {"jobs": [f"Template {template.slug!r} has no approved jobs{on} to build a dataset from."]}
        )
    shares = dict(sorted(Counter(job.desk.slug for job in jobs).items()))
    source_settle(template, shares, desk=reading, all_desks=all_desks)
    jobs.reverse()  # oldest first: the cases keep the order the work was done in
    cases = []
    for job in jobs:
        chosen = next((o for o in job.outputs.all() if o.chosen), None)
        case = {"inputs": job.inputs, "reference": chosen.current_text if chosen else ""}
        if isinstance(job.params.get("seed"), int):
            case["seed"] = job.params["seed"]
        cases.append(case)
    with transaction.atomic():
        dataset = dataset_create(
            template=template,
            name=name,
            cases=cases,
            user=user,
            description=description or f"{len(cases)} approved jobs",
            origin=DatasetOrigin.APPROVED_JOBS,
            source_jobs=jobs,
        )
        dataset.desk_cases = shares
        Dataset.objects.filter(pk=dataset.pk).update(desk_cases=shares)
    return dataset


def parse_upload(filename: str, data: bytes) -> list[dict]:
    """Cases from a CSV (a column per input, plus reference, required and forbidden as '|'-separated facts,
    test and seed) or JSONL file (one case object per line). Errors name the line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError({"file": ["Not UTF-8 text."]}) from None
    if filename.lower().endswith(".jsonl"):
        cases = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                cases.append(safeparse.loads(line))  # refuses NaN, nesting past reason, NUL (naming where)
            except json.JSONDecodeError as exc:
                raise ValidationError({"file": [f"Line {number}: not JSON ({exc})."]}) from None
        return cases
    if not filename.lower().endswith(".csv"):
        raise ValidationError({"file": ["A .csv or .jsonl file."]})
    cases = []
    for number, row in enumerate(safeparse.csv_dicts(text, error=lambda m: ValidationError({"file": [m]})), 2):
        case: dict = {"inputs": {}, "checks": {}}
        for column, value in row.items():
            if column is None:
                raise ValidationError({"file": [f"Line {number}: more values than columns."]})
            value = value or ""
            if column == "reference":
                case["reference"] = value
            elif column in ("required", "forbidden"):
                facts = [f.strip() for f in value.split("|") if f.strip()]
                if facts:
                    case["checks"][column] = facts
            elif column == "test":
                if value:
                    case["checks"]["test"] = value
            elif column == "seed":
                if value.strip():
                    try:
                        case["seed"] = int(value)
                    except ValueError:
                        raise ValidationError({"file": [f"Line {number}: seed {value!r} is not a number."]}) from None
            elif value != "":
                case["inputs"][column] = value
        cases.append(case)
    return cases


@transaction.atomic
def dataset_copy(dataset: Dataset, *, user=None) -> Dataset:
    """The next version of a dataset with the same cases, to edit: a frozen one is never changed."""
    PromptTemplate.objects.select_for_update().filter(pk=dataset.template_id).first()
    copy = Dataset.objects.create(
        template=dataset.template,
        name=dataset.name,
        version=_next_version(dataset.template, dataset.name),
        description=dataset.description,
        origin=dataset.origin,
        created_by=user,
    )
    DatasetItem.objects.bulk_create(
        DatasetItem(dataset=copy, index=i.index, source_job=i.source_job, **{f: getattr(i, f) for f in CASE_FIELDS})
        for i in dataset.items.all()
    )
    return copy


def _latest(template: PromptTemplate, name: str) -> Dataset | None:
    return Dataset.objects.filter(template=template, name=name).order_by("-version").first()


def dataset_latest(template: PromptTemplate, name: str) -> Dataset:
    found = _latest(template, name)
    if found is None:
        names = sorted(set(template.datasets.values_list("name", flat=True))) or ["none"]
        raise ValidationError(
            {"dataset": [f"Template {template.slug!r} has no dataset {name!r}; its datasets: {', '.join(names)}."]}
        )
    return found


# --- runs ------------------------------------------------------------------------------------------------------


@transaction.atomic
def run_start(
    *,
    version: TemplateVersion,
    dataset: Dataset,
    user,
    model_alias: str | None = None,
    judge: TemplateVersion | None = None,
) -> EvaluationRun:
    """A run of `version` over `dataset`: one pending case each, then the first IN_FLIGHT are sent. From now on
    the dataset is frozen. `judge`: the version whose checks judge the outputs (an experiment's baseline, for its
    candidate); by default the run's own."""
    if dataset.template_id != version.template_id:
        raise ValidationError({"dataset": [f"{dataset} belongs to another template."]})
    alias = model_alias or version.model_alias
    if alias not in registry.aliases():
        raise ValidationError({"model": [f"Unknown model {alias!r}; configured: {', '.join(registry.aliases())}."]})
    items = list(dataset.items.all())
    if not items:
        raise ValidationError({"dataset": [f"{dataset} has no cases."]})
    run = EvaluationRun.objects.create(
        template=version.template,
        version=version,
        dataset=dataset,
        model_alias=alias,
        judge_version=judge if judge is not None and judge.pk != version.pk else None,
        created_by=user,
    )
    EvaluationItem.objects.bulk_create(EvaluationItem(run=run, item=item) for item in items)
    transaction.on_commit(lambda: run_advance(run.pk), robust=True)  # a failure is logged; the sweep goes on
    return run


def run_advance(run_id) -> EvaluationRun | None:
    """Measure the cases whose job has ended, send the next ones (IN_FLIGHT at a time, and no more than
    AIGC_EVALUATION_IN_FLIGHT over every run), and once every case is measured, finish the run and the
    experiments waiting on it. A case that cannot be sent now (a spent pool, every place taken) waits, and the
    run says why (`waiting`). Safe to call any number of times, from anywhere: the run's row is locked while it
    advances."""
    with transaction.atomic():
        run = EvaluationRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != RunStatus.RUNNING:
            return run
        cases = list(run.items.select_related("item", "job").order_by("item__index"))
        for case in cases:
            if case.measured_at is None and case.job is not None and case.job.status in FINAL_STATUSES:
                _measure(run, case)
        in_flight = sum(c.job is not None and c.measured_at is None for c in cases)
        pending = [c for c in cases if c.job is None and c.measured_at is None]
        waiting = ""
        if pending and in_flight < IN_FLIGHT:
            room, full = _room()
            for case in pending:
                if in_flight >= IN_FLIGHT:
                    break
                if room <= 0:
                    waiting = full
                    break
                sent, waiting = _send(run, case)
                if waiting:
                    break
                in_flight, room = in_flight + sent, room - sent
        if waiting != run.waiting:
            run.waiting = waiting
            run.save(update_fields=["waiting"])
        if all(c.measured_at is not None for c in cases):
            run.summary = evaluation.summarise([c.metrics for c in cases])
            run.status, run.finished_at = RunStatus.FINISHED, timezone.now()
            run.save(update_fields=["summary", "status", "finished_at"])
            on_it = Experiment.objects.filter(candidate=run) | Experiment.objects.filter(baseline=run)
            for experiment in on_it.order_by("pk"):  # one lock order for every advance: no deadlock
                _experiment_finish(experiment)
    return run


def _room() -> tuple[int, str]:
    """How many more evaluation jobs may be sent now over every run (AIGC_EVALUATION_IN_FLIGHT; 0: no cap), and
    what a case that finds no room waits for. Holds the send lock until the advancing transaction ends."""
    cap = settings.AIGC["EVALUATION_IN_FLIGHT"]
    if cap <= 0:
        return IN_FLIGHT, ""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEND_LOCK_KEY])
    busy = Job.objects.filter(purpose=JobPurpose.EVALUATION).exclude(status__in=FINAL_STATUSES).count()
    full = (
        f"{cap} evaluation jobs are queued or running, the most AIGC_EVALUATION_IN_FLIGHT allows at once over every "
        "run: the next case is sent when one of them ends."
    )
    return cap - busy, full


def _send(run: EvaluationRun, case: EvaluationItem) -> tuple[bool, str]:
    """Create the case's evaluation job (queued once committed): (True, "") when a job is in flight. A spent
    evaluation pool leaves the case waiting: (False, the refusal, naming the pool and when it resets). A case
    that cannot be sent for any other reason (an input the version no longer declares, a prompt too long, a desk
    style that does not layer under the version's rules) is measured at once as failed, the reason named:
    (False, ""). One case never stops its run, nor a run the others."""
    try:
        with transaction.atomic():  # a savepoint: whatever job_create wrote before failing is undone
            job = job_create(
                user=run.created_by,
                template=run.template.slug,
                version=run.version.number,
                inputs=case.item.inputs,
                params={"seed": case.item.seed},
                model_alias=run.model_alias,
                purpose=JobPurpose.EVALUATION,
            )
    except LimitExceeded as exc:
        return False, exc.message
    except ValidationError as exc:
        _not_accepted(run, case, error_line(exc))
        return False, ""
    except prompts.InvalidInput as exc:
        _not_accepted(run, case, error_line(exc.errors))
        return False, ""
    except DatabaseError:
        raise  # the database, not the case: the next advance tries again
    except Exception as exc:
        log.exception("evaluation run %s: case %s could not be sent", run.pk, case.item.index)
        _not_accepted(run, case, f"{type(exc).__name__}: {exc}")
        return False, ""
    case.job = job
    case.save(update_fields=["job"])
    return True, ""


def _not_accepted(run: EvaluationRun, case: EvaluationItem, reason: str) -> None:
    """A case that could not be sent, measured as failed with the reason (naming the field at fault)."""
    case.metrics = evaluation.measure(**_case_spec(run, case), outputs=[], error=f"not accepted: {reason}")
    case.measured_at = timezone.now()
    case.save(update_fields=["metrics", "measured_at"])


def _judge(run: EvaluationRun) -> checks.Checks:
    """The checks a run's outputs are judged under: its judge version's (an experiment's baseline, for the
    candidate) or its own, alone. No desk's house style is layered under them: the evaluation's house style is
    the version's own rules, fixed, so a desk changing its style between two runs moves no number, and a
    candidate that drops its own checks is still held to its baseline's."""
    return checks.parse((run.judge_version or run.version).checks)


def _case_spec(run: EvaluationRun, case: EvaluationItem, judge: checks.Checks | None = None) -> dict:
    version, inputs = run.version, case.item.inputs
    source = checks.source_of(judge or _judge(run), run.template.kind, inputs)
    return {
        "fmt": formats.spec(version.output_format),
        "rule": formats.kind_rule(run.template.kind),
        "n": int((case.job.params if case.job else version.default_params).get("n", 1) or 1),
        "budget": formats.word_budget(version, inputs),
        "source": source,
        "grounding_applies": source is not None,
        "reference": case.item.reference,
        "case_checks": case.item.checks or {},
        "language": str(inputs.get("language", "python")),
    }


def _written_under(job: Job) -> checks.Checks | None:
    """The checks the worker reviewed the job's outputs under (its version's, with the desk's house style it was
    created with); None if they no longer parse."""
    try:
        return checks.parse(checks.with_house_style(job.template_version.checks, job.house_style))
    except prompts.InvalidInput:
        return None


def _measure(run: EvaluationRun, case: EvaluationItem) -> None:
    """A case's metrics from its ended job. The outputs' findings are the ones the worker stored when they were
    reviewed under the judge's checks; otherwise each output is reviewed again under them (content/evaluation.py
    `judged_findings` keeps the unsupported claims the worker dropped from the text)."""
    job = case.job
    judge = _judge(run)
    spec = _case_spec(run, case, judge)
    error = "" if job.status == JobStatus.SUCCEEDED else (job.error or job.status)
    outputs = [{"text": o.text, "checks": o.checks} for o in job.outputs.all()] if not error else []
    written = _written_under(job)
    if outputs and (written is None or written.as_json() != judge.as_json()):
        kind, inputs = run.template.kind, job.inputs
        same_source = written is not None and checks.source_of(written, kind, inputs) == spec["source"]
        outputs = [
            {
                "text": o["text"],
                "checks": evaluation.judged_findings(
                    o["checks"],
                    [f.as_json() for f in checks.review(judge, spec["fmt"], kind, o["text"], inputs).findings],
                    same_source=same_source,
                ),
            }
            for o in outputs
        ]
    case.metrics = evaluation.measure(
        **spec,
        outputs=outputs,
        tokens=job.completion_tokens,
        latency_s=job.timings.get("total_s"),
        error=error,
    )
    case.measured_at = timezone.now()
    case.save(update_fields=["metrics", "measured_at"])


def run_advance_for_job(job_id) -> None:
    """Called when a job ends: the run of an evaluation job goes on, and the place its job held goes to the run
    that has waited longest for one (else the reconciler's sweep would send it). Never raises: the job itself is
    done."""
    try:
        run_id = EvaluationItem.objects.filter(job_id=job_id).values_list("run_id", flat=True).first()
        if run_id is None:
            return
        run_advance(run_id)
        waiting = EvaluationRun.objects.filter(status=RunStatus.RUNNING).exclude(waiting="").exclude(pk=run_id)
        oldest = waiting.order_by("created_at").values_list("pk", flat=True).first()
        if oldest is not None:
            run_advance(oldest)
    except Exception:
        log.exception("could not advance the evaluation runs after job %s", job_id)


def runs_advance_all() -> int:
    """The reconciler's sweep: every running run is advanced (a message lost, a worker that died mid-advance, a
    pool that reset), and an experiment whose runs have both ended is finished (its last advance died before it
    could be). Each in its own guard: a run that cannot advance is logged and tried again next sweep, and never
    stops the others, nor what the reconciler does after this sweep (training runs)."""
    ids = list(EvaluationRun.objects.filter(status=RunStatus.RUNNING).values_list("pk", flat=True))
    for run_id in ids:
        try:
            run_advance(run_id)
        except Exception:
            log.exception("could not advance evaluation run %s", run_id)
    ended = Experiment.objects.filter(finished_at__isnull=True).exclude(candidate__status=RunStatus.RUNNING)
    for experiment in ended.exclude(baseline__status=RunStatus.RUNNING):
        try:
            with transaction.atomic():
                _experiment_finish(experiment)
        except Exception:
            log.exception("could not finish experiment %s", experiment.pk)
    return len(ids)


def experiment_run_here(experiment: Experiment, *, engine_for, progress=None) -> None:
    """Run an experiment's pending cases in this process, as a worker would (job_run, then the run advances),
    on `engine_for(alias)`'s engine: `manage.py evaluate --in-process`, where no worker is running."""
    from .running import job_run

    for run in dict.fromkeys([experiment.candidate, experiment.baseline]):
        while True:
            run = run_advance(run.pk)
            pending = list(
                run.items.filter(job__isnull=False, measured_at__isnull=True)
                .exclude(job__status__in=FINAL_STATUSES)
                .values_list("job_id", flat=True)
            )
            if run.status != RunStatus.RUNNING or not pending:
                break
            for job_id in pending:
                if progress is not None:
                    progress(run, job_id)
                job_run(job_id, engine_for=engine_for)


def run_cancel(run: EvaluationRun, *, user) -> None:
    """Stop a run: its queued jobs are cancelled, and it is never finished (an experiment on it cannot gate)."""
    with transaction.atomic():
        locked = EvaluationRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != RunStatus.RUNNING:
            return
        locked.status, locked.finished_at = RunStatus.CANCELLED, timezone.now()
        locked.save(update_fields=["status", "finished_at"])
    for job in Job.objects.filter(evaluation__run=run).exclude(status__in=FINAL_STATUSES):
        job_cancel(job, user=job.owner)


# --- experiments -----------------------------------------------------------------------------------------------


def _reusable_run(version: TemplateVersion, dataset: Dataset, alias: str) -> EvaluationRun | None:
    """A finished run of the same version, dataset version and model, judged under its own checks: its outputs are
    what a rerun would write (fixed seeds), so a baseline is not run again for every candidate."""
    return (
        EvaluationRun.objects.filter(
            version=version,
            dataset=dataset,
            model_alias=alias,
            status=RunStatus.FINISHED,
            judge_version__isnull=True,
        )
        .order_by("-finished_at")
        .first()
    )


def _pool_check(user) -> None:
    """Refuses (LimitExceeded, a 429 naming the pool) an experiment whose evaluation pool is spent, before anything
    is written. A pool with room left lets it start: a case it cannot take later waits, and the run says so."""
    budgets.check(evaluation_desk(user), user, 1, JobPurpose.EVALUATION)


@transaction.atomic
def experiment_start(
    *,
    template: PromptTemplate,
    user,
    version: int | None = None,
    label: str | None = None,
    dataset: str | None = None,
    baseline: str = TemplateLabel.PRODUCTION,
    model_alias: str | None = None,
    reuse_baseline: bool = True,
    wait_for_pool: bool = False,
) -> Experiment:
    """An experiment: the candidate (a version number or label) against `baseline` (a label, or "vN"), both over
    the latest version of `dataset` (by default the template's gate dataset). The candidate always runs, judged
    under the baseline's checks; the baseline reuses a finished run of the same version, dataset and model unless
    `reuse_baseline` is off. A spent evaluation pool refuses it (LimitExceeded) before anything is written,
    unless `wait_for_pool` (a training run's own experiment: the adapter is trained already), when its cases wait
    for the pool as any run's do."""
    candidate_version = resolve_version(template, version=version, label=label)
    if baseline.startswith("v") and baseline[1:].isdigit():
        baseline_version = resolve_version(template, version=int(baseline[1:]))
    else:
        baseline_version = resolve_version(template, label=baseline)
    name = dataset or template.gate_dataset
    if not name:
        raise ValidationError({"dataset": [f"Name a dataset: template {template.slug!r} has no gate dataset."]})
    found = dataset_latest(template, name)
    alias = model_alias or candidate_version.model_alias
    if not wait_for_pool:
        _pool_check(user)
    candidate_run = run_start(
        version=candidate_version, dataset=found, user=user, model_alias=alias, judge=baseline_version
    )
    baseline_run = _reusable_run(baseline_version, found, alias) if reuse_baseline else None
    if baseline_run is None:
        baseline_run = run_start(version=baseline_version, dataset=found, user=user, model_alias=alias)
    experiment = Experiment.objects.create(
        template=template, candidate=candidate_run, baseline=baseline_run, baseline_label=baseline, created_by=user
    )
    return experiment


def _experiment_finish(experiment: Experiment) -> None:
    """Once both runs have finished: the side by side and the gate's verdict, kept with the experiment.

    The candidate's and the baseline's last cases often end at the same moment, each advancing its own run
    under that run's lock, and neither would see the other's run finished yet. So the experiment's row is
    locked, and the runs read again under it: whichever comes second waits for the first to commit, and then
    sees both runs finished. Call it inside a transaction."""
    experiment = Experiment.objects.select_for_update().select_related("template").get(pk=experiment.pk)
    candidate = EvaluationRun.objects.get(pk=experiment.candidate_id)
    baseline = EvaluationRun.objects.get(pk=experiment.baseline_id)
    if experiment.finished_at or RunStatus.RUNNING in (candidate.status, baseline.status):
        return
    if RunStatus.CANCELLED in (candidate.status, baseline.status):
        return
    by_item = {c.item_id: c for c in baseline.items.all()}
    cases = [
        (c.item.index, c.item.inputs, by_item[c.item_id].metrics, c.metrics)
        for c in candidate.items.select_related("item").order_by("item__index")
        if c.item_id in by_item
    ]
    experiment.comparison = evaluation.compare(baseline.summary, candidate.summary, cases)
    gate = gating.parse(experiment.template.gate)
    failures = gate.failures(experiment.comparison["metrics"])
    experiment.gate = {"passed": not failures, "failures": failures, "thresholds": gate.as_json()}
    experiment.finished_at = timezone.now()
    experiment.save(update_fields=["comparison", "gate", "finished_at"])


def experiment_cancel(experiment: Experiment, *, user) -> None:
    """Stop an experiment's candidate run (a reused baseline run is shared, and left alone)."""
    run_cancel(experiment.candidate, user=user)


def _held_out_of(version: TemplateVersion) -> str:
    """A version that runs with a trained adapter is gated even where the template names no gate dataset: on
    the held-out approved edits of the run that trained it."""
    if not version.adapter_sha256:
        return ""
    run = TrainingRun.objects.filter(version=version, dataset__isnull=False).select_related("dataset").first()
    return run.dataset.name if run else ""


def gate_judge(
    template: PromptTemplate, label: str, version: TemplateVersion, current: TemplateVersion | None
) -> tuple[Experiment | None, list[str]]:
    """Whether `label` may move from `current` to `version`: (the experiment that allows it, []) or (None or the
    best try, the reasons with their numbers). A label the gate does not protect, or a template without a gate
    dataset (unless the version runs with a trained adapter: then its held-out dataset), always may: (None, [])."""
    gate = gating.parse(template.gate)
    name = template.gate_dataset or _held_out_of(version)
    if not name or not gate.protects(label):
        return None, []
    if current is None or current.pk == version.pk:
        return None, []  # a label's first placing (a new template, an import) has no baseline to be judged against
    dataset = _latest(template, name)
    if dataset is None:
        return None, [f"The gate dataset {name!r} does not exist yet: build it first."]
    baseline_version = current
    # Both runs on the model the label will serve (the version's alias), and the candidate judged under the
    # checks of what the label points at now: an experiment on another model, or under the candidate's own
    # (perhaps fewer) checks, says nothing about this move.
    alias = version.model_alias
    tried = (
        Experiment.objects.filter(
            template=template,
            candidate__version=version,
            candidate__dataset=dataset,
            candidate__model_alias=alias,
            candidate__judge_version=baseline_version,
            baseline__version=baseline_version,
            baseline__model_alias=alias,
        )
        .select_related("candidate", "baseline")
        .order_by("-created_at")
    )
    tried = list(tried)
    finished = [e for e in tried if e.finished_at]
    against = f" against v{baseline_version.number} (what {label} points at now)"
    if not finished:
        running = " one is still running;" if tried else ""
        return None, [
            f"No finished experiment of v{version.number} on {dataset}, model {alias!r},{against}:{running} run "
            f"`manage.py evaluate {template.slug} --version {version.number} --baseline {label} --model {alias}`."
        ]
    # The thresholds are read as configured now: a gate changed since applies to the experiments already run.
    for experiment in finished:
        if not gate.failures(experiment.comparison.get("metrics", [])):
            return experiment, []
    return finished[0], gate.failures(finished[0].comparison.get("metrics", []))
