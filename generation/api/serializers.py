from django.urls import reverse
from rest_framework import serializers

from .. import selectors
from ..models import Job, JobStatus, Kind, PromptTemplate, ReviewState, TemplateLabel, TemplateVersion


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, instead of silently dropping them (a typo would otherwise be lost)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class JobCreateSerializer(StrictSerializer):
    kind = serializers.ChoiceField(
        choices=Kind.choices, required=False, help_text="Picks that kind's default template."
    )
    template = serializers.SlugField(required=False, help_text="A template slug, instead of a kind.")
    version = serializers.IntegerField(required=False, min_value=1, help_text="Pin a version of the template.")
    label = serializers.SlugField(required=False, help_text="Run the version a label points at (default production).")
    inputs = serializers.JSONField(required=False, default=dict, help_text="Values for the template's variables.")
    params = serializers.JSONField(
        required=False,
        default=dict,
        help_text="max_new_tokens, temperature, top_p, n, seed; defaults from the template.",
    )
    callback_url = serializers.URLField(
        required=False, max_length=2000, help_text="POSTed the job's JSON when it ends, signed (see the API guide)."
    )
    desk = serializers.SlugField(
        required=False,
        help_text="One of your desks (its slug); default: the key's desk, else your own. Its budgets hold the job.",
    )


class JobListQuerySerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    kind = serializers.ChoiceField(choices=Kind.choices, required=False)
    template = serializers.SlugField(required=False)
    review_state = serializers.ChoiceField(
        choices=ReviewState.choices, required=False, help_text="approved: the approved feed (oldest approval first)."
    )
    desk = serializers.SlugField(required=False, help_text="Only this desk's jobs (its slug; one of your desks).")
    since = serializers.DateTimeField(
        required=False,
        help_text="With review_state=approved: only jobs approved after this instant (ISO 8601, exclusive).",
    )
    created_after = serializers.DateTimeField(required=False, help_text="ISO 8601, inclusive.")
    created_before = serializers.DateTimeField(required=False, help_text="ISO 8601, exclusive.")
    cursor = serializers.CharField(required=False, help_text="From `next` / `previous` of the previous page.")
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=100)


class UsageQuerySerializer(StrictSerializer):
    days = serializers.IntegerField(required=False, min_value=1, max_value=366, default=30)


class UsageRowSerializer(serializers.Serializer):
    day = serializers.DateField()
    template = serializers.CharField()
    jobs = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    lost_tokens = serializers.IntegerField(
        help_text="Used by attempts whose worker stopped before the job ended (the prompt read, the text streamed)."
    )
    total_tokens = serializers.IntegerField(help_text="Prompt, completion and lost tokens together.")


class BudgetSerializer(serializers.Serializer):
    name = serializers.CharField(help_text='As refusals name it: "desk:sport daily", "member:ana@sport monthly".')
    limit = serializers.IntegerField()
    used = serializers.IntegerField(help_text="Settled jobs' tokens plus the most that jobs in flight may use.")
    share = serializers.FloatField()
    resets = serializers.DateTimeField()


class UsageReportSerializer(serializers.Serializer):
    tokens_per_day = serializers.IntegerField(help_text="Your daily quota (prompt + completion tokens, UTC days).")
    tokens_used_today = serializers.IntegerField(help_text="Including the most that jobs in flight may still use.")
    requests_per_minute = serializers.IntegerField(allow_null=True, help_text="This key's limit; null for sessions.")
    days = UsageRowSerializer(many=True)
    budgets = BudgetSerializer(many=True, help_text="The token budgets of your desks that have a limit set.")


class FindingSerializer(serializers.Serializer):
    """One check's finding on a span of the output (content/findings.py)."""

    check = serializers.ChoiceField(choices=["grounding", "language", "style"])
    rule = serializers.CharField(help_text='What in the check: "number", "year", "name", "quote", "banned", ...')
    start = serializers.IntegerField(help_text="The span in `text`, as character offsets.")
    end = serializers.IntegerField()
    text = serializers.CharField(allow_blank=True)
    reason = serializers.CharField()
    fixed = serializers.BooleanField(default=False, help_text="A house-style fix already applied to the text.")
    replacement = serializers.CharField(required=False, help_text="What the rule would write instead.")


class JobOutputSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    text = serializers.CharField(help_text="What the model wrote; never changed.")
    final_text = serializers.CharField(
        source="current_text", read_only=True, help_text="The editor's version where edited, else the model's text."
    )
    edited_at = serializers.DateTimeField(allow_null=True, read_only=True, help_text="Null until an editor edits it.")
    chosen = serializers.BooleanField(read_only=True, help_text="Chosen by the editor (or reviewer) to publish.")
    checks = FindingSerializer(many=True, read_only=True, help_text="Grounding, language and house-style findings.")
    score = serializers.FloatField(
        allow_null=True, read_only=True, help_text="Its rank among the candidates (higher first); null if unranked."
    )


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)


class JobSerializer(serializers.ModelSerializer):
    template = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    template_version = serializers.IntegerField(source="template_version.number", read_only=True)
    outputs = JobOutputSerializer(many=True, read_only=True)
    usage = serializers.SerializerMethodField()
    model = serializers.CharField(source="model_name", read_only=True)
    model_alias = serializers.CharField(read_only=True)
    notice = serializers.SerializerMethodField()
    budget_notices = serializers.SerializerMethodField()
    desk = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    html_url = serializers.SerializerMethodField()
    chosen = serializers.SerializerMethodField()
    final_texts = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "status",
            "review_state",
            "approved_at",
            "chosen",
            "final_texts",
            "desk",
            "kind",
            "template",
            "template_version",
            "inputs",
            "params",
            "outputs",
            "usage",
            "timings",
            "rejections",
            "findings",
            "callback_url",
            "batch",
            "error",
            "notice",
            "budget_notices",
            "model",
            "model_alias",
            "backend",
            "weights_sha256",
            "adapter_sha256",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "html_url",
        ]

    def get_chosen(self, job) -> list[int]:
        """The indexes of the chosen candidates."""
        return [o.index for o in selectors.chosen_outputs(job)]

    def get_final_texts(self, job) -> list[str]:
        """The chosen candidates' final text, by index: what approval approves and a CMS publishes."""
        return [o.current_text for o in selectors.chosen_outputs(job)]

    def get_usage(self, job) -> dict:
        return {"prompt_tokens": job.prompt_tokens, "completion_tokens": job.completion_tokens}

    def get_notice(self, job) -> str | None:
        """Set while the job is queued and no live worker serves its model, or when its model does not write the
        job's language well."""
        return selectors.job_notice(job)

    def get_budget_notices(self, job) -> list[str]:
        """In the answer to the request that created the job: the budgets it is held against that are 80% used
        or more ("Token budget desk:sport daily is 85% used ..."); empty otherwise."""
        return list(getattr(job, "budget_notices", []))

    def get_html_url(self, job) -> str:
        path = reverse("job-detail", args=[job.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class TemplateVariableSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["text", "number", "choice"], default="text")
    label = serializers.CharField(required=False)
    required = serializers.BooleanField(default=False)
    default = serializers.JSONField(required=False)
    max_length = serializers.IntegerField(required=False)
    min = serializers.FloatField(required=False)
    max = serializers.FloatField(required=False)
    choices = serializers.ListField(child=serializers.CharField(), required=False)
    help = serializers.CharField(required=False)


class TemplateVersionSerializer(serializers.ModelSerializer):
    variables = TemplateVariableSerializer(many=True)
    labels = serializers.SerializerMethodField()

    class Meta:
        model = TemplateVersion
        fields = [
            "number",
            "labels",
            "note",
            "created_at",
            "system_prompt",
            "user_template",
            "variables",
            "default_params",
            "length_variable",
            "output_format",
            "model_alias",
            "checks",
        ]

    def get_labels(self, version) -> list[str]:
        return sorted(label.name for label in version.template.labels.all() if label.version_id == version.pk)


class TemplateSerializer(serializers.ModelSerializer):
    """A template as editorial tools see it: the production version's variables and defaults, its labels
    (label -> version number) and, in the detail view, every version."""

    labels = serializers.SerializerMethodField()
    production_version = serializers.SerializerMethodField()
    variables = serializers.SerializerMethodField()
    default_params = serializers.SerializerMethodField()

    class Meta:
        model = PromptTemplate
        fields = [
            "slug",
            "kind",
            "name",
            "description",
            "is_default",
            "labels",
            "production_version",
            "variables",
            "default_params",
        ]

    def _production(self, template):
        return next((label.version for label in template.labels.all() if label.name == TemplateLabel.PRODUCTION), None)

    def get_labels(self, template) -> dict[str, int]:
        return {label.name: label.version.number for label in template.labels.all()}

    def get_production_version(self, template) -> int | None:
        version = self._production(template)
        return version.number if version else None

    def get_variables(self, template) -> list[dict]:
        version = self._production(template)
        return TemplateVariableSerializer(version.variables, many=True).data if version else []

    def get_default_params(self, template) -> dict:
        version = self._production(template)
        return version.default_params if version else {}


class TemplateDetailSerializer(TemplateSerializer):
    versions = TemplateVersionSerializer(many=True, read_only=True)

    class Meta(TemplateSerializer.Meta):
        fields = [*TemplateSerializer.Meta.fields, "versions"]


class ErrorDetailSerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.ChoiceField(
        choices=[
            "invalid_request_error",
            "authentication_error",
            "permission_error",
            "not_found_error",
            "conflict_error",
            "rate_limit_error",
            "api_error",
        ]
    )
    code = serializers.CharField()
    param = serializers.CharField(
        allow_null=True, help_text="The first field at fault, e.g. inputs.text; null if none."
    )
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), help_text="Every field at fault."
    )


class ErrorSerializer(serializers.Serializer):
    """Every 4xx of the API has this shape (generation/api/errors.py)."""

    error = ErrorDetailSerializer()


class JobPageSerializer(serializers.Serializer):
    """A cursor page, as JobCursorPagination answers it."""

    next = serializers.URLField(allow_null=True, help_text="The next page; null on the last.")
    previous = serializers.URLField(allow_null=True, help_text="The previous page; null on the first.")
    results = JobSerializer(many=True)


class BatchJobsSerializer(StrictSerializer):
    """The JSON form of a batch (schema only; BatchCreateSerializer reads both forms)."""

    jobs = serializers.ListField(child=JobCreateSerializer(), min_length=1, help_text="Job bodies, as for POST /jobs/.")


class BatchCreateSerializer(StrictSerializer):
    jobs = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="Job bodies, as for POST /jobs/."
    )
    file = serializers.FileField(
        required=False,
        help_text="Instead of `jobs`: a CSV (columns kind or template, "
        "version, label, callback_url, params.<name>, any other column an input) or JSONL file.",
    )


class BatchSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField(
        help_text="queued, running, succeeded, failed, cancelled, or mixed when all ended differently."
    )
    total = serializers.IntegerField()
    counts = serializers.DictField(child=serializers.IntegerField())
    created_at = serializers.DateTimeField()
    jobs = JobSerializer(many=True)


# --- review -----------------------------------------------------------------------------------------------------


class OutputChangeSerializer(StrictSerializer):
    """A change to one candidate: its final text, and/or your rating of it."""

    final_text = serializers.CharField(
        required=False, trim_whitespace=False, help_text="The editor's version (the owner, while a draft)."
    )
    rating = serializers.ChoiceField(choices=[1, -1], required=False, help_text="1: good, -1: bad.")
    comment = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text="With a rating: why (optional)."
    )

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError({"final_text": ["Send final_text, or a rating (with a comment)."]})
        if "comment" in attrs and "rating" not in attrs:
            raise serializers.ValidationError({"rating": ["A comment goes with a rating."]})
        return attrs


REVIEW_ACTIONS = {
    "submit": ReviewState.IN_REVIEW,
    "approve": ReviewState.APPROVED,
    "send_back": ReviewState.DRAFT,
}


class ReviewActionSerializer(StrictSerializer):
    action = serializers.ChoiceField(
        choices=list(REVIEW_ACTIONS),
        help_text="submit (the owner, a draft with a chosen candidate), approve (a reviewer of the job's desk, not "
        "its owner), send_back (to a draft: a reviewer sending it back or reopening it, or the owner withdrawing it).",
    )
    note = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text="Why: kept in the job's review log."
    )


class ApprovedQuerySerializer(StrictSerializer):
    desk = serializers.SlugField(required=False, help_text="Only this desk's jobs (its slug).")
    since = serializers.DateTimeField(
        required=False, help_text="ISO 8601: only jobs approved after this instant (exclusive)."
    )
    cursor = serializers.CharField(required=False, help_text="From `next` / `previous` of the previous page.")
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=100)
