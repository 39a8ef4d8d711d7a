"""The admin: where editors curate templates. Editing a template creates a version; labels are moved, not
edited; each version has a preview (the exact text the model receives and its token count) and a test run."""

import difflib
import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from . import admin_desks, admin_evaluation, admin_training, selectors, services  # noqa: F401  (admin_desks registers)
from .content import safeparse
from .models import (
    ApiKey,
    Audience,
    Feedback,
    Job,
    JobOutput,
    LabelMove,
    ModelInfo,
    PromptTemplate,
    TemplateLabel,
    TemplateVersion,
    UserQuota,
    WebhookDelivery,
)
from .services.limits import LimitExceeded
from .web.forms import InputsForm, LabelMoveForm, TemplateAdminForm

# The template's own words per studio language, edited as fields: (form field, key in translations[language]).
TRANSLATED_FIELDS = {"zh-hans": (("name_zh", "name"), ("description_zh", "description"))}


class TemplateTranslatedForm(TemplateAdminForm):
    """Who sees the template in the studio (audience), and its name and description in Chinese, kept in
    PromptTemplate.translations ({"zh-hans": {"name": ..., "description": ...}}; empty: the English is shown)."""

    name_zh = forms.CharField(required=False, max_length=120, label="Name (简体中文)")
    description_zh = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 100}), label="Description (简体中文)"
    )

    class Meta(TemplateAdminForm.Meta):
        fields = [*TemplateAdminForm.Meta.fields, "audience"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["audience"].required = False  # not sent (a script's post): the template keeps its audience
        translations = self.instance.translations if isinstance(self.instance.translations, dict) else {}
        for language, pairs in TRANSLATED_FIELDS.items():
            entry = translations.get(language) if isinstance(translations.get(language), dict) else {}
            for field, key in pairs:
                self.initial.setdefault(field, entry.get(key, ""))

    def clean_audience(self):
        return self.cleaned_data.get("audience") or self.instance.audience or Audience.EVERYONE

    def clean(self):
        cleaned = super().clean()
        translations = dict(self.instance.translations) if isinstance(self.instance.translations, dict) else {}
        for language, pairs in TRANSLATED_FIELDS.items():
            entry = {key: said for field, key in pairs if (said := (cleaned.get(field) or "").strip())}
            if entry:
                translations[language] = entry
            else:
                translations.pop(language, None)
        self.instance.translations = translations
        return cleaned


class LabelFilter(admin.SimpleListFilter):
    title = "label"
    parameter_name = "label"

    def lookups(self, request, model_admin):
        names = TemplateLabel.objects.order_by("name").values_list("name", flat=True).distinct()
        return [(n, n) for n in names]

    def queryset(self, request, queryset):
        return queryset.filter(labels__name=self.value()).distinct() if self.value() else queryset


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    form = TemplateTranslatedForm
    list_display = ("slug", "name", "kind", "audience", "is_default", "label_summary", "version_count")
    list_filter = ("kind", "audience", LabelFilter, "is_default", "desk")
    search_fields = ("slug", "name", "description", "versions__user_template", "versions__system_prompt")
    change_form_template = "admin/generation/prompttemplate/change_form.html"
    fieldsets = (
        (None, {"fields": ("slug", "kind", "name", "description", "is_default", "desk", "audience")}),
        ("In Chinese (empty: the English is shown)", {"fields": ("name_zh", "description_zh")}),
        (
            "Content (saving a change creates a new version)",
            {"fields": (*TemplateAdminForm.CONTENT_FIELDS, "note")},
        ),
        ("Promotion gate", {"fields": ("gate_dataset", "gate")}),
    )

    def get_fieldsets(self, request, obj=None):
        """The gate names one of the template's datasets: a new template has none, so it is set once created."""
        fieldsets = super().get_fieldsets(request, obj)
        return fieldsets if obj is not None else [f for f in fieldsets if f[0] != "Promotion gate"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(n_versions=Count("versions", distinct=True))
            .prefetch_related("labels__version")
        )

    @admin.display(description="labels")
    def label_summary(self, obj):
        return ", ".join(f"{label.name} → v{label.version.number}" for label in obj.labels.all())

    @admin.display(description="versions", ordering="n_versions")
    def version_count(self, obj):
        return obj.n_versions

    def save_model(self, request, obj, form, change):
        """Template fields are saved as usual; content goes through the services (a new version)."""
        note = form.cleaned_data.get("note", "")
        if not change:
            created = services.template_create(
                slug=obj.slug,
                kind=obj.kind,
                name=obj.name,
                description=obj.description,
                is_default=obj.is_default,
                user=request.user,
                note=note,
                **form.content(),
            )
            obj.pk = created.pk
            # Who sees it and its translations: the template's own fields, not content; set on the new row.
            PromptTemplate.objects.filter(pk=created.pk).update(audience=obj.audience, translations=obj.translations)
            return
        gate_dataset, gate = obj.gate_dataset, obj.gate
        # The gate changes through its service, which keeps every change with who made it.
        obj.gate_dataset, obj.gate = PromptTemplate.objects.values_list("gate_dataset", "gate").get(pk=obj.pk)
        obj.save()
        services.template_gate_set(template=obj, gate_dataset=gate_dataset, gate=gate, user=request.user, via="admin")
        version, created = services.template_version_create(
            template=obj, user=request.user, note=note, **form.content()
        )
        if created:
            messages.info(request, f"Saved as version {version.number}. Move a label to publish it.")

    def get_form(self, request, obj=None, **kwargs):
        form_class = super().get_form(request, obj, **kwargs)

        content_errors = self._content_errors

        class ValidatingForm(form_class):
            def clean(self):
                cleaned = super().clean()
                errors = content_errors({f: cleaned.get(f) for f in TemplateAdminForm.CONTENT_FIELDS})
                if errors:
                    self.add_content_errors(errors)
                return cleaned

        return ValidatingForm

    @staticmethod
    def _content_errors(content: dict) -> dict[str, list[str]]:
        """What the services refuse in this content, keyed by field ("variables.2.max_length"), the same for a
        save and for the live preview."""
        try:
            services.templates.check_content(content)
        except ValidationError as exc:
            return exc.message_dict
        return {}

    def get_urls(self):
        own = [
            path(
                "<int:pk>/versions/<int:number>/",
                self.admin_site.admin_view(self.version_view),
                name="generation_template_version",
            ),
            path("<int:pk>/diff/", self.admin_site.admin_view(self.diff_view), name="generation_template_diff"),
            path("<int:pk>/labels/", self.admin_site.admin_view(self.label_view), name="generation_template_label"),
            path(
                "<int:pk>/preview-draft/",
                self.admin_site.admin_view(self.preview_draft_view),
                name="generation_template_preview_draft",
            ),
            path(
                "preview-draft/",
                self.admin_site.admin_view(self.preview_draft_view),
                name="generation_template_preview_draft_add",
            ),
        ]
        return own + admin_evaluation.template_urls(self) + admin_training.template_urls(self) + super().get_urls()

    def _template(self, request, pk):
        template = get_object_or_404(selectors.templates_with_versions(), pk=pk)
        if not self.has_view_permission(request, template):
            raise Http404
        return template

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = extra_context or {}
        if object_id:
            template = self._template(request, object_id)
            versions = selectors.versions_with_ratings(template)
            production = self._production(template)
            extra.update(
                versions=versions,
                labels=list(template.labels.all()),
                preview_draft_url=reverse("admin:generation_template_preview_draft", args=[template.pk]),
                production_number=production.number if production else None,
                **admin_evaluation.template_context(request, template),
                **admin_training.template_context(request, template),
            )
        return super().change_view(request, object_id, form_url, extra)

    def add_view(self, request, form_url="", extra_context=None):
        extra = {**(extra_context or {}), "preview_draft_url": reverse("admin:generation_template_preview_draft_add")}
        return super().add_view(request, form_url, extra)

    @staticmethod
    def _production(template):
        return next((label.version for label in template.labels.all() if label.name == TemplateLabel.PRODUCTION), None)

    def preview_draft_view(self, request, pk=None):
        """The change form's live panel (static/studio/template-editor.js): the unsaved draft's errors keyed by
        field, its preview with sample inputs (the exact prompt and its tokens), and its diff against the
        version production points at. JSON, POST with the CSRF token; it saves nothing."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        template = self._template(request, pk) if pk is not None else None
        allowed = self.has_change_permission(request, template) if template else self.has_add_permission(request)
        if not allowed:
            return JsonResponse({"errors": {"__all__": ["Not allowed."]}}, status=403)
        try:
            body = safeparse.loads(request.body or b"{}")
        except safeparse.JSONInputError as exc:
            if exc.where and not exc.syntax:  # "content.variables": where in the draft
                return JsonResponse({"errors": {exc.where: [exc.msg]}}, status=400)
            body = None
        if not isinstance(body, dict):
            return JsonResponse({"errors": {"__all__": ["A JSON object with content and inputs."]}}, status=400)
        content, errors = TemplateAdminForm.clean_draft(body.get("content"))
        result = {"errors": {}, "preview": None, "diff": None}
        if not errors:
            errors = self._content_errors(content)
        if not errors:
            content = services.templates.check_content(content)  # with defaults filled: what a save stores
            version = TemplateVersion(template=template, number=0, **content)
            inputs = body.get("inputs") if isinstance(body.get("inputs"), dict) else {}
            try:
                result["preview"] = services.template_preview(version, inputs)
            except ValidationError as exc:
                errors = exc.message_dict
        production = self._production(template) if template else None
        if production is not None:
            result["diff"] = {"against": production.number, "fields": self._draft_diff(production, content)}
        result["errors"] = errors
        return JsonResponse(result, status=400 if errors else 200)

    @staticmethod
    def _draft_diff(production, content: dict) -> list[dict]:
        """Each content field, production's text against the draft's, as diff_view shows two versions."""
        rows = []
        for field in TemplateAdminForm.CONTENT_FIELDS:
            value = content.get(field)
            if value is None:  # an empty JSON field, saved as its default
                value = type(getattr(production, field))()
            left, right = _as_text(getattr(production, field)), _as_text(value)
            label = f"v{production.number}"
            diff = list(difflib.unified_diff(left.splitlines(), right.splitlines(), label, "draft", lineterm="", n=3))
            rows.append({"field": field, "changed": left != right, "lines": diff[2:]})
        return rows

    def version_view(self, request, pk, number):
        """One version: its content, a preview with sample inputs, and a test run that queues a job."""
        template = self._template(request, pk)
        version = get_object_or_404(template.versions, number=number)
        form = InputsForm(version, request.POST or None)
        preview = None
        can_test_run = self.has_change_permission(request, template)  # it queues a job: a curator's act
        if request.method == "POST" and "test_run" in request.POST and not can_test_run:
            raise PermissionDenied
        if request.method == "POST" and form.is_valid():
            try:
                if "test_run" in request.POST:
                    job = services.job_create(
                        user=request.user, template=template.slug, version=number, inputs=form.inputs()
                    )
                    url = reverse("job-detail", args=[job.pk])
                    messages.success(request, format_html('Test run queued: <a href="{}">job {}</a>.', url, job.pk))
                    return redirect(request.path)
                preview = services.template_preview(version, form.inputs())
            except ValidationError as exc:
                form.add_service_errors(exc.message_dict)
            except LimitExceeded as exc:  # a test run is held against the curator's desk budgets like any job
                form.add_error(None, exc.message)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"{template.slug} v{version.number}",
            "template_obj": template,
            "version": version,
            "variables_json": json.dumps(version.variables, indent=2, ensure_ascii=False),
            "params_json": json.dumps(version.default_params, indent=2),
            "labels": [label.name for label in template.labels.all() if label.version_id == version.pk],
            "form": form,
            "preview": preview,
            "can_test_run": can_test_run,
            "jobs_count": version.jobs.count(),
            "ratings": selectors.versions_with_ratings(template).get(pk=version.pk),
            "feedback": version.feedback.select_related("user", "output__job")[:50],
            "burden": selectors.version_burden(version_ids=[version.pk])[0],
        }
        return TemplateResponse(request, "admin/generation/prompttemplate/version.html", context)

    def diff_view(self, request, pk):
        """Side by side differences of every content field between versions a and b."""
        template = self._template(request, pk)
        numbers = [v.number for v in template.versions.all()]
        try:
            a = int(request.GET.get("a", numbers[-2] if len(numbers) > 1 else numbers[-1]))
            b = int(request.GET.get("b", numbers[-1]))
        except (ValueError, IndexError):
            raise Http404 from None
        va, vb = get_object_or_404(template.versions, number=a), get_object_or_404(template.versions, number=b)
        rows = []
        for field in va.CONTENT_FIELDS:
            left, right = _as_text(getattr(va, field)), _as_text(getattr(vb, field))
            diff = list(difflib.unified_diff(left.splitlines(), right.splitlines(), f"v{a}", f"v{b}", lineterm="", n=3))
            rows.append({"field": field, "changed": left != right, "lines": diff[2:]})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"{template.slug}: v{a} → v{b}",
            "template_obj": template,
            "a": a,
            "b": b,
            "numbers": numbers,
            "rows": rows,
        }
        return TemplateResponse(request, "admin/generation/prompttemplate/diff.html", context)

    def label_view(self, request, pk):
        """Move a label (publish, stage, roll back). POST only."""
        template = self._template(request, pk)
        if request.method != "POST" or not self.has_change_permission(request, template):
            raise Http404
        form = LabelMoveForm(request.POST)
        change_url = reverse("admin:generation_prompttemplate_change", args=[pk])
        if not form.is_valid():
            messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
            return redirect(change_url)
        version = template.versions.filter(number=form.cleaned_data["version"]).first()
        if version is None:
            messages.error(request, f"No version {form.cleaned_data['version']}.")
            return redirect(change_url)
        try:
            services.template_label_move(
                template=template,
                label=form.cleaned_data["label"],
                version=version,
                user=request.user,
                reason=form.cleaned_data["reason"],
                override=form.cleaned_data["override"],
            )
        except services.GateRefused as exc:
            experiment = exc.experiment
            link = (
                format_html(' <a href="{}">See the experiment.</a>', admin_evaluation.experiment_url(experiment))
                if experiment
                else ""
            )
            messages.error(
                request,
                format_html(
                    "The promotion gate refused moving {} to v{}.{}", form.cleaned_data["label"], version.number, link
                ),
            )
            for failure in exc.failures:
                messages.error(request, failure)
        except ValidationError as exc:
            messages.error(request, services.error_line(exc))
        else:
            messages.success(request, f"{form.cleaned_data['label']} now points at v{version.number}.")
        return redirect(reverse("admin:generation_template_version", args=[pk, version.number]))


def _as_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@admin.register(LabelMove)
class LabelMoveAdmin(admin.ModelAdmin):
    list_display = (
        "label",
        "desk_label",
        "from_version",
        "to_version",
        "moved_by",
        "moved_at",
        "reason",
        "overridden",
        "experiment_link",
    )
    list_filter = ("label__name", "overridden")
    list_select_related = (
        "label",
        "desk_label__desk",
        "desk_label__template",
        "desk_label__version",
        "from_version",
        "to_version",
        "moved_by",
        "experiment__candidate__version",
        "experiment__baseline__version",
    )

    @admin.display(description="experiment")
    def experiment_link(self, obj):
        if obj.experiment is None:
            return "–"
        e = obj.experiment
        text = f"v{e.candidate.version.number} vs v{e.baseline.version.number}"
        return format_html('<a href="{}">{}</a>', admin_evaluation.experiment_url(e), text)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class JobOutputInline(admin.TabularInline):
    model = JobOutput
    extra = 0
    readonly_fields = ("index", "text", "finish_reason", "final_text", "edited_at", "chosen")
    can_delete = False


class WebhookDeliveryInline(admin.TabularInline):
    """Each attempt to call the job's callback_url, newest first: what the receiver answered, or why not."""

    model = WebhookDelivery
    extra = 0
    fields = readonly_fields = ("attempt", "url", "status_code", "ok", "error", "duration_ms", "created_at")
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "owner",
        "desk",
        "kind",
        "template_version",
        "status",
        "review_state",
        "completion_tokens",
        "created_at",
    )
    list_filter = ("status", "kind", "review_state", "purpose", "desk")
    search_fields = ("id", "owner__username")
    readonly_fields = [f.name for f in Job._meta.fields]
    inlines = [JobOutputInline, WebhookDeliveryInline]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log of outgoing webhooks: written by the webhooks worker only, so read-only here."""

    list_display = ("job", "url", "attempt", "status_code", "ok", "duration_ms", "created_at")
    list_filter = ("ok",)
    search_fields = ("job__id", "url")
    list_select_related = ("job",)
    readonly_fields = ("job", "url", "attempt", "status_code", "ok", "error", "duration_ms", "created_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ModelInfo)
class ModelInfoAdmin(admin.ModelAdmin):
    list_display = ("alias", "name", "backend", "context_length", "weights_sha256", "updated_at")
    readonly_fields = ("alias", "name", "backend", "context_length", "weights_sha256", "updated_at", "special_tokens")
    exclude = ("tokenizer_json", "chat_template")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created with `manage.py create_api_key` (the secret is printed once); here they are listed
    and revoked."""

    list_display = ("prefix", "user", "name", "requests_per_minute", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "user__username", "name")
    fields = ("user", "name", "prefix", "desk", "requests_per_minute", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("user", "prefix", "created_at", "last_used_at")

    def has_add_permission(self, request):
        return False


@admin.register(UserQuota)
class UserQuotaAdmin(admin.ModelAdmin):
    """Tokens per UTC day for one user; users without a row get AIGC_TOKENS_PER_DAY."""

    list_display = ("user", "tokens_per_day")
    search_fields = ("user__username",)
    autocomplete_fields = ("user",)


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    """Ratings of outputs, by template version: which prompt wording works."""

    list_display = ("template_version", "rating", "comment", "user", "updated_at")
    list_filter = ("rating", "template_version__template")
    search_fields = ("comment", "template_version__template__slug")
    readonly_fields = ("output", "user", "template_version", "rating", "comment", "created_at", "updated_at")

    def has_add_permission(self, request):
        return False
