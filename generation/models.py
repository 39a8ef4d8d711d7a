"""Data of the studio. The database is the source of truth for jobs, their outputs and usage."""

import secrets
import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .content import formats
from .content import style as style_rules


class Kind(models.TextChoices):
    WRITING = "writing", _("Writing")
    SUMMARY = "summary", _("Summary")
    HEADLINE = "headline", _("Headlines")
    CODE = "code", _("Code")


class Audience(models.TextChoices):
    """Who sees a template in the studio. The API serves any template its caller may use; the audience only
    decides where the studio offers it."""

    EVERYONE = "everyone", _("Everyone: a tab in the studio")
    STAFF = "staff", _("Staff only: a template being tried out")
    API = "api", _("API only: never a studio tab (the OpenAI-compatible chat, say)")


class PromptTemplate(models.Model):
    """A named task prompt. Its content lives in immutable versions; labels say which version is live.

    Editing a template creates a new version; moving the `production` label publishes it (or rolls back).
    Jobs pin the exact version they ran with, so yesterday's work never changes under anyone.
    """

    kind = models.CharField(max_length=16, choices=Kind.choices, db_index=True)
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    is_default = models.BooleanField(default=False, help_text="The template used for jobs that name only this kind.")
    audience = models.CharField(
        max_length=16,
        choices=Audience.choices,
        default=Audience.EVERYONE,
        help_text="Where the studio offers this template; the API serves it to whoever may use it.",
    )
    # {"zh-hans": {"name": "...", "description": "..."}}: shown in that language, the fields above otherwise.
    translations = models.JSONField(default=dict, blank=True)
    desk = models.ForeignKey(
        "Desk",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="templates",
        help_text="A desk's own template, shown to its members only; empty: shared by every desk.",
    )
    # The promotion gate (content/gating.py): moving a protected label needs an experiment on the latest version
    # of this dataset that meets `gate`'s thresholds. No gate dataset: labels move freely, as before.
    gate_dataset = models.SlugField(
        max_length=64, blank=True, help_text="The dataset (by name) an experiment must pass before a protected move."
    )
    gate = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"protected": ["production"], "max_drop": {"contract_rate": 0, "grounded_rate": 0, '
        '"required_rate": 0, "style_clean_rate": 0, "chrf": 2}}; empty: these defaults.',
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"], condition=models.Q(is_default=True), name="one_default_template_per_kind"
            )
        ]

    def __str__(self) -> str:
        return self.slug


class ImmutableError(Exception):
    pass


class TemplateVersion(models.Model):
    """One frozen state of a template. Never updated once saved: a change is a new version.

    `variables` declares the inputs: [{"name", "type": "text"|"number"|"choice", "label", "required", "default",
    "max_length", "min", "max", "choices", "multiline", "help"}]. `length_variable` names the number variable
    holding a word budget, which drives the token budget and the trimming of the output.
    """

    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    system_prompt = models.TextField(blank=True)
    user_template = models.TextField(help_text="The user message; {name} inserts the input called name.")
    variables = models.JSONField(default=list, blank=True)
    default_params = models.JSONField(default=dict, blank=True)
    length_variable = models.CharField(max_length=64, blank=True)
    output_format = models.CharField(
        max_length=16,
        choices=formats.CHOICES,
        default="text",
        help_text="How raw model text is shaped: prose, a list, one clean line per candidate, or code without fences.",
    )
    model_alias = models.CharField(max_length=64, default="default")
    checks = models.JSONField(
        default=dict,
        blank=True,
        help_text='What outputs are checked against: {"source": input, "grounding": true, "language": "en", '
        '"style": {house style}} (content/checks.py). Empty: headlines and summaries grounded in their text.',
    )
    # A LoRA adapter (Adapter.sha256) the model runs with for this version: trained on approved edits, served
    # beside the base model by a worker of `model_alias`. Empty: the base model alone.
    adapter_sha256 = models.CharField(max_length=64, blank=True)
    note = models.CharField(max_length=200, blank=True, help_text="What changed, for the history.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    CONTENT_FIELDS = (
        "system_prompt",
        "user_template",
        "variables",
        "default_params",
        "length_variable",
        "output_format",
        "model_alias",
        "checks",
        "adapter_sha256",
    )

    class Meta:
        ordering = ["template", "-number"]
        constraints = [models.UniqueConstraint(fields=["template", "number"], name="one_number_per_template_version")]

    def __str__(self) -> str:
        return f"{self.template.slug} v{self.number}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableError("Template versions are immutable: create a new version instead.")
        super().save(*args, **kwargs)

    def content(self) -> dict:
        return {f: getattr(self, f) for f in self.CONTENT_FIELDS}


class TemplateLabel(models.Model):
    """A movable pointer (production, staging, or any name) at one version of a template."""

    PRODUCTION = "production"
    STAGING = "staging"

    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="labels")
    name = models.SlugField(max_length=40)
    # RESTRICT: a labelled version cannot be deleted on its own, but goes with its template.
    version = models.ForeignKey(TemplateVersion, on_delete=models.RESTRICT, related_name="labels")
    moved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    moved_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["template", "name"]
        constraints = [models.UniqueConstraint(fields=["template", "name"], name="one_label_name_per_template")]

    def __str__(self) -> str:
        return f"{self.template.slug}@{self.name} -> v{self.version.number}"


class DeskLabel(models.Model):
    """A desk's own pointer on a shared template: the sport desk keeps `production` at v3 while the others move
    to v4. For the desk's jobs it wins over the template's label of the same name; moved by the desk's admins
    through the same promotion gate."""

    desk = models.ForeignKey("Desk", on_delete=models.CASCADE, related_name="labels")
    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="desk_labels")
    name = models.SlugField(max_length=40)
    # Empty: the desk follows the template's own label again (the row stays, for its history of moves).
    version = models.ForeignKey(
        TemplateVersion, null=True, blank=True, on_delete=models.RESTRICT, related_name="desk_labels"
    )
    moved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    moved_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["desk", "template", "name"]
        constraints = [
            models.UniqueConstraint(fields=["desk", "template", "name"], name="one_desk_label_name_per_template")
        ]

    def __str__(self) -> str:
        target = f"v{self.version.number}" if self.version_id else "the shared label"
        return f"{self.desk.slug}: {self.template.slug}@{self.name} -> {target}"


class LabelMove(models.Model):
    """History of label moves: who published or rolled back what, when, why, and the experiment that allowed a
    gated move (or `overridden`, by staff with a written reason)."""

    label = models.ForeignKey(TemplateLabel, null=True, blank=True, on_delete=models.CASCADE, related_name="moves")
    # A desk's label on a shared template keeps its history here too (then `label` is empty); `to_version` is
    # empty when the desk went back to following the shared label.
    desk_label = models.ForeignKey(DeskLabel, null=True, blank=True, on_delete=models.CASCADE, related_name="moves")
    from_version = models.ForeignKey(TemplateVersion, null=True, on_delete=models.RESTRICT, related_name="+")
    to_version = models.ForeignKey(TemplateVersion, null=True, on_delete=models.RESTRICT, related_name="+")
    moved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    moved_at = models.DateTimeField(auto_now_add=True)
    reason = models.TextField(blank=True, max_length=2000)
    experiment = models.ForeignKey(
        "Experiment", null=True, blank=True, on_delete=models.SET_NULL, related_name="label_moves"
    )
    overridden = models.BooleanField(default=False, help_text="Moved by staff although the gate refused.")

    class Meta:
        ordering = ["-moved_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(label__isnull=False, desk_label__isnull=True)
                | models.Q(label__isnull=True, desk_label__isnull=False),
                name="label_move_of_one_label",
            )
        ]


class GateChange(models.Model):
    """A change of a template's promotion gate (its dataset or thresholds), kept: who turned a gate off before a
    move and on again after it shows here beside the label moves."""

    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="gate_changes")
    from_dataset = models.CharField(max_length=64, blank=True)
    from_gate = models.JSONField(default=dict, blank=True)
    to_dataset = models.CharField(max_length=64, blank=True)
    to_gate = models.JSONField(default=dict, blank=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    changed_at = models.DateTimeField(auto_now_add=True)
    via = models.CharField(max_length=16, blank=True, help_text="Where it was changed: admin, import.")

    class Meta:
        ordering = ["-changed_at", "-pk"]


class ModelInfo(models.Model):
    """What the web tier needs to know about a served model without loading it (and without torch): the
    context size and the tokenizer with its chat template, to count prompt tokens and preview prompts.
    Published by each worker when its engine is ready."""

    alias = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    backend = models.CharField(max_length=32, blank=True)  # llamacpp | transformers
    weights_sha256 = models.CharField(max_length=64)
    context_length = models.PositiveIntegerField()
    chat_template = models.TextField()
    tokenizer_json = models.TextField()
    special_tokens = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.alias}: {self.name}"


class Organisation(models.Model):
    """The newsroom: its desks share its token budgets, and evaluation jobs spend its evaluation pool."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=64, unique=True)
    tokens_per_day = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no organisation budget.")
    tokens_per_month = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no organisation budget.")
    evaluation_tokens_per_day = models.PositiveIntegerField(
        null=True, blank=True, help_text="The pool of evaluation jobs (experiments), apart from the desks'."
    )

    def __str__(self) -> str:
        return self.slug


class Desk(models.Model):
    """A team (politics, sport): its members with their roles, its jobs, its budgets. Jobs belong to a desk."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="desks")
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=64, unique=True)
    is_default = models.BooleanField(
        default=False, help_text="New users join it, and work that names no desk (evaluation jobs) is filed here."
    )
    tokens_per_day = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no desk budget.")
    tokens_per_month = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no desk budget.")
    member_tokens_per_day = models.PositiveIntegerField(
        null=True, blank=True, help_text="Each member's share per day, unless their membership sets one."
    )
    member_tokens_per_month = models.PositiveIntegerField(
        null=True, blank=True, help_text="Each member's share per month, unless their membership sets one."
    )
    # Set by staff only (the admin); the desk's admins see them and budget within them: the desk's budgets and
    # member shares cannot exceed them, and every job is held against them as well.
    cap_tokens_per_day = models.PositiveIntegerField(
        null=True, blank=True, help_text="Staff's cap on the desk per day, over what its admins set. Empty: none."
    )
    cap_tokens_per_month = models.PositiveIntegerField(
        null=True, blank=True, help_text="Staff's cap on the desk per month, over what its admins set. Empty: none."
    )
    style = models.JSONField(
        default=dict,
        blank=True,
        help_text="The desk's house-style rules (the format of a template's checks.style), under every template's "
        "own: a template's rule wins where both set one; banned phrases and spellings add up.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=models.Q(is_default=True), name="one_default_desk")
        ]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        """The house style is checked as a template's is: each error under the rule it names."""
        from django.core.exceptions import ValidationError

        try:
            style_rules.parse(self.style or None)
        except style_rules.InvalidStyle as exc:
            raise ValidationError(
                {"style": [f"{k}: {' '.join(v)}" if k else " ".join(v) for k, v in exc.errors.items()]}
            ) from None


def default_desk_id() -> int | None:
    """Jobs written without a desk (the shell, fixtures, older code paths) are filed under the default desk;
    job_create always names one."""
    return Desk.objects.filter(is_default=True).values_list("pk", flat=True).first()


class DeskRole(models.TextChoices):
    EDITOR = "editor", _("Editor")
    REVIEWER = "reviewer", _("Reviewer")
    ADMIN = "admin", _("Desk admin")


class Membership(models.Model):
    """A user in a desk with a role: editors write, reviewers also review the desk's jobs, desk admins also
    manage its members and budgets (without being Django staff)."""

    desk = models.ForeignKey(Desk, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=DeskRole.choices, default=DeskRole.EDITOR)
    tokens_per_day = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: the desk's member share.")
    tokens_per_month = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: the desk's member share.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["desk__name", "user__username"]
        constraints = [models.UniqueConstraint(fields=["desk", "user"], name="one_membership_per_desk")]

    def __str__(self) -> str:
        return f"{self.user} in {self.desk} ({self.role})"


class JobStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


FINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class UnicodeJSONEncoder(DjangoJSONEncoder):
    """Stores non-ASCII text as itself (not \\u escapes), so searching inputs finds Chinese words on SQLite too."""

    def __init__(self, *args, **kwargs):
        kwargs["ensure_ascii"] = False
        super().__init__(*args, **kwargs)


class ReviewState(models.TextChoices):
    """Editorial review of a job's text: the owner edits and submits; a reviewer approves or sends it back."""

    DRAFT = "draft", _("Draft")
    IN_REVIEW = "in_review", _("In review")
    APPROVED = "approved", _("Approved")


class JobPurpose(models.TextChoices):
    """Users' own work, or a case of an evaluation run: those never show in a history or review, never count
    against a quota, and are sent a few at a time so that they never hold users' jobs back."""

    USER = "user", _("User")
    EVALUATION = "evaluation", _("Evaluation")


class Job(models.Model):
    """One request for content. Ids are UUIDs so they cannot be guessed or enumerated."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    template = models.ForeignKey(PromptTemplate, on_delete=models.PROTECT, related_name="jobs")
    template_version = models.ForeignKey(TemplateVersion, on_delete=models.PROTECT, related_name="jobs")
    inputs = models.JSONField(default=dict, encoder=UnicodeJSONEncoder)
    params = models.JSONField(default=dict, help_text="Sampling params as run, the seed included.")
    messages = models.JSONField(default=list, help_text="The chat messages the model received.")
    # The registry alias that runs it, and so its queue: the template version's, or the model an OpenAI client named.
    model_alias = models.CharField(max_length=64, default="default")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    # The engine that ran it (llamacpp | transformers | openai): a seeded job replays exactly on the same one.
    backend = models.CharField(max_length=32, blank=True)
    weights_sha256 = models.CharField(max_length=64, blank=True)
    # The LoRA adapter it ran with (its version's; empty: none), beside the base weights: replay stays exact.
    adapter_sha256 = models.CharField(max_length=64, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Tokens that earlier attempts used before their worker died (as far as known: the prompt read and the
    # deltas streamed), charged to budgets and usage beside what the attempt that ended used.
    lost_tokens = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The most tokens the job may still use, held against the owner's daily quota until its usage is settled.
    reserved_tokens = models.PositiveIntegerField(default=0)
    timings = models.JSONField(default=dict, blank=True)
    # Candidates re-sampled because a check refused them, by why: {"grounding": 3, "language": 1, "contract": 2}.
    rejections = models.JSONField(default=dict, blank=True)
    # Findings left on the served outputs (unsupported claims, style): the history can filter on them.
    findings = models.PositiveIntegerField(default=0, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    review_state = models.CharField(
        max_length=16, choices=ReviewState.choices, default=ReviewState.DRAFT, db_index=True
    )
    # When it was last approved (None unless approved): the approved feed a CMS polls reads from here.
    approved_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Liveness: the worker running a job touches heartbeat_at every few seconds; the reconciler re-sends a
    # running job whose heartbeat stopped (its worker died) and a queued job sent long ago (a lost message).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # Through the API: the key that created it (its webhook secret signs callbacks), where to POST the result,
    # the Idempotency-Key and a hash of the request body it came with, and the batch it belongs to.
    api_key = models.ForeignKey("ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs")
    callback_url = models.URLField(max_length=2000, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)
    batch = models.ForeignKey("JobBatch", on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs")
    # The job this one ran again (a replay with the same seed, or a regeneration with a new one).
    rerun_of = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="reruns")
    purpose = models.CharField(max_length=16, choices=JobPurpose.choices, default=JobPurpose.USER, db_index=True)
    desk = models.ForeignKey(Desk, on_delete=models.PROTECT, default=default_desk_id, related_name="jobs")
    house_style = models.JSONField(
        default=dict, blank=True, help_text="The desk's house-style rules as they were when the job was created."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["status", "model_alias"]),
            models.Index(fields=["desk", "created_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="one_job_per_idempotency_key",
            )
        ]
        permissions = [("review_job", "Can review jobs: see those in review, approve or send back")]

    def __str__(self) -> str:
        return f"{self.kind} job {self.id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def main_input(self) -> str:
        """The value of the template's first declared variable: what the job is about, for lists. (PostgreSQL
        stores JSON objects with their keys reordered, so the inputs' own order cannot be relied on.)"""
        for var in self.template_version.variables:
            if self.inputs.get(var["name"]) not in (None, ""):
                return str(self.inputs[var["name"]])
        return next((str(v) for v in self.inputs.values()), "")


class JobOutput(models.Model):
    """One candidate of a job (a headline job has several)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="outputs")
    index = models.PositiveSmallIntegerField()
    text = models.TextField(help_text="What the model wrote; never changed.")
    finish_reason = models.CharField(max_length=16, blank=True)
    final_text = models.TextField(blank=True, help_text="The editor's version; empty until edited.")
    edited_at = models.DateTimeField(null=True, blank=True)
    # The candidate(s) an editor chose (a reviewer may change the choice): what approval, exports, webhooks and
    # training take, never simply the first output.
    chosen = models.BooleanField(default=False)
    # The findings of the checks on `text` (content/findings.py, as JSON) and its rank score among siblings.
    checks = models.JSONField(default=list, blank=True)
    score = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="one_output_per_index")]

    @property
    def current_text(self) -> str:
        return self.final_text if self.edited_at else self.text


class Feedback(models.Model):
    """A user's rating of one output, kept with the template version that produced it."""

    output = models.ForeignKey(JobOutput, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="feedback")
    template_version = models.ForeignKey(TemplateVersion, on_delete=models.CASCADE, related_name="feedback")
    rating = models.SmallIntegerField(choices=[(1, _("Good")), (-1, _("Bad"))])
    comment = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [models.UniqueConstraint(fields=["output", "user"], name="one_feedback_per_user_and_output")]


class ReviewEvent(models.Model):
    """One move of a job through review, for the record: who, from which state to which, and why."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="review_events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    from_state = models.CharField(max_length=16, choices=ReviewState.choices)
    to_state = models.CharField(max_length=16, choices=ReviewState.choices)
    note = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]


class Notification(models.Model):
    """An in-app notice to one user about one job: submitted for their review, approved, sent back. Read once
    opened; the webhooks tell the tools, this tells the people."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="notifications")
    event = models.ForeignKey(ReviewEvent, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    verb = models.CharField(max_length=32)  # submitted | approved | sent_back | reopened | choice_changed | edited
    message = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "read_at"], name="notification_unread")]

    def __str__(self) -> str:
        return self.message


def _webhook_secret() -> str:
    return secrets.token_hex(32)


class ApiKey(models.Model):
    """A bearer key for the API. Only a SHA-256 of the secret is stored; the key is shown once.

    The key reads `aigc_<prefix>_<secret>`: the prefix finds the row, the secret's hash is compared in
    constant time. Keys are long random strings, so a plain (unsalted) SHA-256 is enough.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    webhook_secret = models.CharField(
        max_length=64, default=_webhook_secret, help_text="Signs this key's webhook callbacks (HMAC-SHA256)."
    )
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: the site's default (AIGC_REQUESTS_PER_MINUTE)."
    )
    desk = models.ForeignKey(
        Desk,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="api_keys",
        help_text="Jobs sent with this key that name no desk are filed here.",
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"aigc_{self.prefix}_… ({self.user})"


class JobBatch(models.Model):
    """Jobs submitted together (a JSON list, a CSV or a JSONL file); its status is the aggregate of theirs."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="job_batches")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "job batches"


class UserQuota(models.Model):
    """Per-user limits set in the admin; a user without a row gets the site's defaults."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota")
    tokens_per_day = models.PositiveIntegerField(
        null=True, blank=True, help_text="Prompt plus completion tokens per UTC day. Empty: AIGC_TOKENS_PER_DAY."
    )

    def __str__(self) -> str:
        return f"quota of {self.user}"


class WebhookDelivery(models.Model):
    """One attempt to POST a finished job to its callback_url: what was sent and what came back."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="webhook_deliveries")
    url = models.URLField(max_length=2000)
    attempt = models.PositiveSmallIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"


class WebhookOutboxState(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")


class WebhookOutbox(models.Model):
    """A callback the studio owes a receiver (the outbox). Written in the transaction that ends the job, so a
    process dying between that commit and the send loses nothing: the sweeper sends every row that is due. Its
    id is the X-AIGC-Delivery header, the same on every attempt, so receivers can deduplicate. Retries are this
    row's next_attempt_at (not countdown messages a broker can lose); leased_until marks a send in flight, and a
    sender that dies mid-send leaves a lease that runs out, after which the row is sent again."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="webhook_outbox")
    event = models.CharField(max_length=32, default="job.finished")
    # The key whose secret signs it, and whose cap on deliveries in flight applies (AIGC_WEBHOOK_MAX_IN_FLIGHT_PER_KEY).
    api_key = models.ForeignKey(
        "ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="webhook_outbox"
    )
    state = models.CharField(max_length=16, choices=WebhookOutboxState.choices, default=WebhookOutboxState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Attempts started (claimed by a sender).")
    next_attempt_at = models.DateTimeField(default=timezone.now)
    leased_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "webhook outbox entry"
        verbose_name_plural = "webhook outbox"
        constraints = [models.UniqueConstraint(fields=["job", "event"], name="one_webhook_per_job_event")]
        indexes = [
            # The sweeper's scan: pending rows by due time (delivered and failed ones are never scanned).
            models.Index(fields=["next_attempt_at"], condition=models.Q(state="pending"), name="webhook_outbox_due"),
            models.Index(
                fields=["api_key", "leased_until"], condition=models.Q(state="pending"), name="webhook_outbox_in_flight"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} of job {self.job_id} ({self.state})"


# --- evaluation: datasets of cases, runs of a version over them, experiments against a baseline ------------


class DatasetOrigin(models.TextChoices):
    APPROVED_JOBS = "approved_jobs", _("Approved jobs")
    UPLOAD = "upload", _("Upload")
    ADMIN = "admin", _("Admin")


class Dataset(models.Model):
    """Cases for one template. A dataset used by a run is frozen (its items never change); an edit is saved as
    the next version of the same name, so two runs of "the same dataset" compare like with like."""

    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="datasets")
    name = models.SlugField(max_length=64)
    version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True)
    origin = models.CharField(max_length=16, choices=DatasetOrigin.choices, default=DatasetOrigin.ADMIN)
    # Made of approved jobs (or a training run's held-out pairs): how many cases came from each desk (by slug).
    desk_cases = models.JSONField(default=dict, blank=True, help_text="Cases per desk, for one made of approved jobs.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template", "name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["template", "name", "version"], name="one_dataset_version_per_name")
        ]

    def __str__(self) -> str:
        return f"{self.template.slug}/{self.name} v{self.version}"

    @property
    def frozen(self) -> bool:
        return self.runs.exists()


class DatasetItem(models.Model):
    """One case: the inputs a job gets, the text a good answer is compared with (an approved job's final text),
    and its own checks: {"required": [facts the output must state], "forbidden": [...], "test": "python asserts"}.
    `seed` makes every run of a version over it sample the same text."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    index = models.PositiveIntegerField()
    inputs = models.JSONField(default=dict, encoder=UnicodeJSONEncoder)
    reference = models.TextField(blank=True)
    checks = models.JSONField(default=dict, blank=True, encoder=UnicodeJSONEncoder)
    seed = models.PositiveIntegerField()
    source_job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["dataset", "index"]
        constraints = [models.UniqueConstraint(fields=["dataset", "index"], name="one_item_per_index")]

    def __str__(self) -> str:
        return f"case {self.index} of {self.dataset}"

    def save(self, *args, **kwargs):
        if self.dataset.frozen:
            raise ImmutableError(f"{self.dataset} was used by a run: save the change as a new dataset version.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self.dataset.frozen:
            raise ImmutableError(f"{self.dataset} was used by a run: its items cannot be deleted.")
        return super().delete(*args, **kwargs)


class RunStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    FINISHED = "finished", _("Finished")
    CANCELLED = "cancelled", _("Cancelled")


class EvaluationRun(models.Model):
    """One template version with one model alias over one dataset: one evaluation job per item, a few in flight at
    a time. `summary` holds the aggregates (content/evaluation.py) once every item has ended."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="evaluation_runs")
    version = models.ForeignKey(TemplateVersion, on_delete=models.PROTECT, related_name="evaluation_runs")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="runs")
    model_alias = models.CharField(max_length=64)
    # The version whose checks judge the outputs: a candidate's run is judged under its baseline's checks, so that
    # a version cannot score better by dropping its own; empty: the run's own version.
    judge_version = models.ForeignKey(
        TemplateVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING, db_index=True)
    waiting = models.CharField(max_length=500, blank=True, help_text="Why its next case waits (a spent pool).")
    summary = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.version} on {self.dataset} ({self.status})"


class EvaluationItem(models.Model):
    """One case of a run: its job, and what was measured on the job's outputs (content/evaluation.py)."""

    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="items")
    item = models.ForeignKey(DatasetItem, on_delete=models.PROTECT, related_name="+")
    job = models.OneToOneField(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluation")
    metrics = models.JSONField(default=dict, blank=True, encoder=UnicodeJSONEncoder)
    measured_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "item__index"]
        constraints = [models.UniqueConstraint(fields=["run", "item"], name="one_result_per_run_item")]


class Experiment(models.Model):
    """A candidate version's run against a baseline's run over the same dataset version (by default the version
    `production` points at). `comparison` and `gate` are written once both runs have finished."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="experiments")
    candidate = models.ForeignKey(EvaluationRun, on_delete=models.PROTECT, related_name="+")
    baseline = models.ForeignKey(EvaluationRun, on_delete=models.PROTECT, related_name="+")
    baseline_label = models.CharField(max_length=64, blank=True, help_text="How the baseline was asked for.")
    comparison = models.JSONField(default=dict, blank=True, encoder=UnicodeJSONEncoder)
    gate = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.candidate.version} vs {self.baseline.version} on {self.candidate.dataset}"

    @property
    def status(self) -> str:
        states = {self.candidate.status, self.baseline.status}
        if RunStatus.CANCELLED in states:
            return RunStatus.CANCELLED
        return RunStatus.FINISHED if self.finished_at else RunStatus.RUNNING


class TrainingStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class TrainingRun(models.Model):
    """A LoRA adapter trained on a template's approved edits (of one desk, or all), on the `training` queue.

    Its progress is live (step, loss, tokens per second, time left); it can be cancelled, and a worker that
    restarts resumes it from its last checkpoint. A run that succeeds leaves an Adapter, a new version of the
    template that names it, the held-out pairs as a dataset, and an experiment of that version against
    `base_version` on them: the version reaches production only through the gate."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="training_runs")
    desk = models.ForeignKey(Desk, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs")
    base_version = models.ForeignKey(TemplateVersion, on_delete=models.PROTECT, related_name="+")
    model_alias = models.CharField(max_length=64, help_text="The alias whose worker serves the adapter.")
    params = models.JSONField(default=dict, help_text="LoRA rank, alpha, target modules, epochs, learning rate...")
    edited_only = models.BooleanField(default=True)
    # A run trains on one desk's approved work unless a curator chose to mix every desk's; `desk_pairs` says how
    # many of its pairs (train and held out) came from each desk (by slug).
    all_desks = models.BooleanField(default=False)
    desk_pairs = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=TrainingStatus.choices, default=TrainingStatus.QUEUED, db_index=True
    )
    cancel_requested = models.BooleanField(default=False)
    progress = models.JSONField(default=dict, blank=True, help_text="step, total_steps, epoch, loss, eta_s ...")
    losses = models.JSONField(default=list, blank=True, help_text="The loss of each step.")
    # The pairs as they were when the run started ({messages, answer, split, job}), and the held-out ones as
    # evaluation cases ({inputs, reference, seed}): approvals after the start do not move what it learns from.
    data = models.JSONField(default=list, blank=True, encoder=UnicodeJSONEncoder)
    held_out_cases = models.JSONField(default=list, blank=True, encoder=UnicodeJSONEncoder)
    train_pairs = models.PositiveIntegerField(default=0)
    heldout_pairs = models.PositiveIntegerField(default=0)
    data_sha256 = models.CharField(max_length=64, blank=True)
    base_sha256 = models.CharField(max_length=64, blank=True)
    adapter_sha256 = models.CharField(max_length=64, blank=True)
    version = models.ForeignKey(
        TemplateVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs"
    )
    dataset = models.ForeignKey("Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    experiment = models.ForeignKey("Experiment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    @property
    def is_final(self) -> bool:
        return self.status in (TrainingStatus.SUCCEEDED, TrainingStatus.FAILED, TrainingStatus.CANCELLED)


class Adapter(models.Model):
    """A trained LoRA adapter on disk (under the model cache), known by the sha256 of its folder's manifest (every
    file's name and sha256: weights, config, tokenizer), with the hashes of the base weights and its data."""

    sha256 = models.CharField(max_length=64, unique=True)
    path = models.CharField(max_length=500, help_text="The adapter's folder, relative to the model cache.")
    base_sha256 = models.CharField(max_length=64)
    data_sha256 = models.CharField(max_length=64)
    params = models.JSONField(default=dict)
    training_run = models.OneToOneField(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="adapter"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.sha256[:12]
