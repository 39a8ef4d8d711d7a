"""Reads. Every query for jobs goes through here, scoped to the user who asks; one module per entity."""

from .budgets import budget_notices, budgets_of, desk_usage, standings, usage_gauges
from .burden import version_burden
from .desks import default_desk, desks_of, managed_desks, may_manage, may_review, review_desk_ids
from .evaluation import (
    datasets_for_template,
    experiment_detail,
    experiment_report,
    experiments_for_template,
    run_progress,
)
from .health import health_report, model_health
from .jobs import (
    api_jobs,
    approved_jobs,
    batch_for_user,
    chosen_outputs,
    job_for_page,
    job_for_user,
    job_notice,
    jobs_for_review,
    jobs_visible_to,
    outputs_for_export,
    queue_position,
    search_jobs,
    usage_by_day,
)
from .notifications import desk_reviewer_ids, notifications_for, review_count, unread_counts
from .prompts import prompt_counter
from .review import review_queue
from .studio import demo_model_serving
from .templates import (
    desk_templates,
    localized,
    offered_in_studio,
    template_by_slug,
    template_default_for_kind,
    templates_for_kind,
    templates_listed,
    templates_of_desk,
    templates_with_versions,
    versions_with_ratings,
)
from .training import HELD_OUT as TRAINING_HELD_OUT
from .training import SPLITS as TRAINING_SPLITS
from .training import TRAIN as TRAINING_TRAIN
from .training import (
    adapter_version_runnable,
    desk_shares,
    source_desk,
    source_settle,
    training_index,
    training_jsonl,
    training_lines,
    training_pairs,
    training_run,
    training_runs_for_template,
)

__all__ = [
    "TRAINING_HELD_OUT",
    "TRAINING_SPLITS",
    "TRAINING_TRAIN",
    "adapter_version_runnable",
    "api_jobs",
    "approved_jobs",
    "batch_for_user",
    "budget_notices",
    "budgets_of",
    "chosen_outputs",
    "datasets_for_template",
    "default_desk",
    "demo_model_serving",
    "desk_reviewer_ids",
    "desk_shares",
    "desk_templates",
    "desk_usage",
    "desks_of",
    "experiment_detail",
    "experiment_report",
    "experiments_for_template",
    "health_report",
    "job_for_page",
    "job_for_user",
    "job_notice",
    "jobs_for_review",
    "jobs_visible_to",
    "localized",
    "managed_desks",
    "may_manage",
    "may_review",
    "model_health",
    "notifications_for",
    "offered_in_studio",
    "outputs_for_export",
    "prompt_counter",
    "queue_position",
    "review_count",
    "review_desk_ids",
    "review_queue",
    "run_progress",
    "search_jobs",
    "source_desk",
    "source_settle",
    "standings",
    "template_by_slug",
    "template_default_for_kind",
    "templates_for_kind",
    "templates_listed",
    "templates_of_desk",
    "templates_with_versions",
    "training_index",
    "training_jsonl",
    "training_lines",
    "training_pairs",
    "training_run",
    "training_runs_for_template",
    "unread_counts",
    "usage_by_day",
    "usage_gauges",
    "version_burden",
    "versions_with_ratings",
]
