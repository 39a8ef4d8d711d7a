"""The verbs that change state. Views, API views, tasks and commands call these and nothing lower."""

from .api_jobs import IdempotencyConflict, job_create_idempotent
from .api_keys import api_key_authenticate, api_key_create, api_key_revoke
from .batches import batch_create, batch_status
from .desks import (
    desk_budgets_set,
    desk_for_job,
    desk_label_set,
    desk_style_set,
    desk_template_create,
    desk_template_edit,
    member_add,
    member_remove,
    member_update,
)
from .errors import error_line
from .evaluation import (
    case_clean,
    dataset_copy,
    dataset_create,
    dataset_from_approved_jobs,
    dataset_latest,
    experiment_cancel,
    experiment_run_here,
    experiment_start,
    parse_upload,
    run_advance,
    run_cancel,
    run_start,
)
from .intake import job_create, job_regenerate, job_rerun
from .notifications import notifications_read
from .reconcile import reconcile_jobs
from .review import feedback_set, is_reviewer, job_cancel, output_choose, output_edit, review_move, review_moves
from .running import job_run
from .templates import (
    GateRefused,
    desk_label_move,
    model_info_publish,
    resolve_version,
    template_create,
    template_gate_set,
    template_label_move,
    template_preview,
    template_version_create,
    templates_export,
    templates_import,
)
from .training import training_cancel, training_execute, training_start
from .webhooks import callback_url_check, webhook_enqueue, webhook_send, webhook_sweep

__all__ = [
    "GateRefused",
    "IdempotencyConflict",
    "api_key_authenticate",
    "api_key_create",
    "api_key_revoke",
    "batch_create",
    "batch_status",
    "callback_url_check",
    "case_clean",
    "dataset_copy",
    "dataset_create",
    "dataset_from_approved_jobs",
    "dataset_latest",
    "desk_budgets_set",
    "desk_for_job",
    "desk_label_move",
    "desk_label_set",
    "desk_style_set",
    "desk_template_create",
    "desk_template_edit",
    "error_line",
    "experiment_cancel",
    "experiment_run_here",
    "experiment_start",
    "feedback_set",
    "is_reviewer",
    "job_cancel",
    "job_create",
    "job_create_idempotent",
    "job_regenerate",
    "job_rerun",
    "job_run",
    "member_add",
    "member_remove",
    "member_update",
    "model_info_publish",
    "notifications_read",
    "output_choose",
    "output_edit",
    "parse_upload",
    "reconcile_jobs",
    "resolve_version",
    "review_move",
    "review_moves",
    "run_advance",
    "run_cancel",
    "run_start",
    "template_create",
    "template_gate_set",
    "template_label_move",
    "template_preview",
    "template_version_create",
    "templates_export",
    "templates_import",
    "training_cancel",
    "training_execute",
    "training_start",
    "webhook_enqueue",
    "webhook_send",
    "webhook_sweep",
]
