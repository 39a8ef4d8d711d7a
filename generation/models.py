"""Data of the studio. The database is the source of truth for jobs, their outputs and usage."""

import uuid

from django.conf import settings
from django.db import models


class Kind(models.TextChoices):
    WRITING = "writing", "Writing"
    SUMMARY = "summary", "Summary"
    HEADLINE = "headline", "Headlines"
    CODE = "code", "Code"


class PromptTemplate(models.Model):
    """How a task becomes a prompt: a system prompt and a user message with named `{variables}`.

    One template per kind is the default for jobs that name only a kind. Versions (immutable snapshots with
    labels) build on this model; a job keeps the rendered messages it ran with, so replay never depends on
    the template's current text.
    """

    kind = models.CharField(max_length=16, choices=Kind.choices, db_index=True)
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    system_prompt = models.TextField(blank=True)
    user_template = models.TextField(help_text="The user message; {name} inserts the input called name.")
    # [{"name": "text", "label": "Article text", "required": true, "default": "", "max_length": 20000,
    #   "multiline": true, "help": "..."}]
    variables = models.JSONField(default=list, blank=True)
    default_params = models.JSONField(default=dict, blank=True)
    is_default = models.BooleanField(default=False, help_text="The template used for jobs that name only this kind.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["kind"], condition=models.Q(is_default=True), name="one_default_template_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.slug} ({self.kind})"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(models.Model):
    """One request for content. Ids are UUIDs so they cannot be guessed or enumerated."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    template = models.ForeignKey(PromptTemplate, on_delete=models.PROTECT, related_name="jobs")
    inputs = models.JSONField(default=dict)
    params = models.JSONField(default=dict, help_text="Sampling params as run, the seed included.")
    messages = models.JSONField(default=list, help_text="The chat messages the model received.")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    weights_sha256 = models.CharField(max_length=64, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    timings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} job {self.id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class JobOutput(models.Model):
    """One candidate of a job (a headline job has several)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="outputs")
    index = models.PositiveSmallIntegerField()
    text = models.TextField()
    finish_reason = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="one_output_per_index")]


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

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"aigc_{self.prefix}_… ({self.user})"
