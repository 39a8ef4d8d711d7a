"""Reads of datasets, evaluation runs and experiments: for curators (the admin, the API, `manage.py evaluate`)."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from ..models import Dataset, EvaluationRun, Experiment, PromptTemplate


def experiments_for_template(template: PromptTemplate) -> QuerySet[Experiment]:
    return (
        Experiment.objects.filter(template=template)
        .select_related(
            "candidate__version", "baseline__version", "candidate__dataset", "baseline__dataset", "created_by"
        )
        .order_by("-created_at")
    )


def experiment_detail(experiment_id, template: PromptTemplate | None = None) -> Experiment | None:
    found = Experiment.objects.select_related(
        "template",
        "candidate__version",
        "candidate__judge_version",
        "baseline__version",
        "baseline__judge_version",
        "candidate__dataset",
        "created_by",
    ).filter(pk=experiment_id)
    if template is not None:
        found = found.filter(template=template)
    return found.first()


def datasets_for_template(template: PromptTemplate) -> QuerySet[Dataset]:
    return template.datasets.annotate(n_items=Count("items", distinct=True), n_runs=Count("runs", distinct=True))


def run_progress(run: EvaluationRun) -> tuple[int, int]:
    """(cases measured, cases) of a run."""
    counts = run.items.aggregate(done=Count("pk", filter=Q(measured_at__isnull=False)), total=Count("pk"))
    return counts["done"], counts["total"]


def _run_json(run: EvaluationRun) -> dict:
    done, total = run_progress(run)
    return {
        "id": str(run.pk),
        "version": run.version.number,
        "status": run.status,
        "cases": total,
        "measured": done,
        "summary": run.summary or None,
        "waiting": run.waiting,
        "judged_by": (run.judge_version or run.version).number,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
    }


def experiment_report(experiment: Experiment) -> dict:
    """An experiment as the API, the admin and the CLI show it: both runs' status and aggregates, the side by
    side (regressions first) and the gate's verdict, once finished."""
    dataset = experiment.candidate.dataset
    return {
        "id": str(experiment.pk),
        "template": experiment.template.slug,
        "status": experiment.status,
        "dataset": f"{dataset.name} v{dataset.version}",
        "model_alias": experiment.candidate.model_alias,
        "baseline_label": experiment.baseline_label,
        "candidate": _run_json(experiment.candidate),
        "baseline": _run_json(experiment.baseline),
        "comparison": experiment.comparison or {"metrics": [], "cases": [], "regressed_cases": 0, "identical_cases": 0},
        "gate": experiment.gate or {"passed": False, "failures": ["The experiment has not finished."]},
        "created_by": experiment.created_by.get_username(),
        "created_at": experiment.created_at,
        "finished_at": experiment.finished_at,
    }
