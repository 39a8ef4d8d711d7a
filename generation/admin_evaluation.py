"""The evaluation pages of the admin: datasets (uploaded, built from approved jobs, copied as a new version, their
cases editable until a run uses them), and on a template its experiments (started from the change page, shown
side by side with the gate's verdict). Kept apart from admin.py, which only routes the template's URLs here.
Writes go through the services, reads through the selectors; model output is shown escaped, never marked safe."""

from __future__ import annotations

import json
import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from . import selectors, services
from .content import evaluation
from .models import (
    Dataset,
    DatasetItem,
    DatasetOrigin,
    Desk,
    Experiment,
    GateChange,
    PromptTemplate,
    RunStatus,
)
from .services import evaluation as evaluation_services
from .services.limits import LimitExceeded
from .web.forms import SafeJSONField

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
INPUT_PREVIEW_CHARS = 240


# --- forms -----------------------------------------------------------------------------------------------------


class DatasetUploadForm(forms.Form):
    template = forms.ModelChoiceField(queryset=PromptTemplate.objects.order_by("slug"), to_field_name="slug")
    name = forms.SlugField(max_length=64, help_text="An existing name gets its next version; the old one stays.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 80}))
    file = forms.FileField(
        help_text="CSV: a column per input, plus reference, required and forbidden ('|' between facts), test and "
        'seed. JSONL: one case per line, {"inputs": {...}, "reference": "", "checks": {"required": [...]}, '
        '"seed": 1}.'
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(f"At most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
        return upload


class _ExternalForm(forms.Form):
    """A form whose fields sit inside the template's change form but submit to their own <form id=...> placed
    after it (HTML forms do not nest): each widget names that form."""

    form_id = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs["form"] = self.form_id


def desk_source_fields(work: str, *, mixed: str) -> tuple[forms.Field, forms.Field]:
    """A curator's choice of whose approved `work` a dataset or a training run reads: one desk's (named, or the
    only one with any), or every desk's mixed when ticked."""
    desk = forms.ModelChoiceField(
        queryset=Desk.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label=f"The only desk with {work}",
        help_text=f"Whose {work} (a desk's own template: that desk's).",
    )
    return desk, forms.BooleanField(required=False, label="Mix every desk", help_text=mixed)


class DatasetFromJobsForm(_ExternalForm):
    form_id = "dataset-from-jobs-form"
    prefix = "ds"

    name = forms.SlugField(max_length=64, initial="approved", help_text="An existing name gets its next version.")
    limit = forms.IntegerField(
        label="How many", min_value=1, max_value=evaluation_services.MAX_ITEMS, initial=20, help_text="The newest."
    )
    desk, all_desks = desk_source_fields(
        "approved jobs", mixed="Every desk's approved jobs together; each desk's share is kept."
    )


class ExperimentStartForm(_ExternalForm):
    form_id = "experiment-start-form"
    prefix = "exp"

    version = forms.IntegerField(min_value=1, label="Candidate version")
    dataset = forms.ChoiceField(label="Dataset", help_text="Its latest version is run.")
    baseline = forms.CharField(max_length=64, initial="production", help_text="A label, or vN for a version number.")
    model_alias = forms.CharField(max_length=64, required=False, label="Model alias", help_text="Empty: the version's.")

    def __init__(self, template: PromptTemplate, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = sorted(set(template.datasets.values_list("name", flat=True)))
        self.fields["dataset"].choices = [(n, n) for n in names]
        if template.gate_dataset in names:
            self.fields["dataset"].initial = template.gate_dataset
        latest = template.versions.order_by("-number").values_list("number", flat=True).first()
        self.fields["version"].initial = latest


class DatasetItemForm(forms.ModelForm):
    """One case, checked as an uploaded case is (against the inputs the production version declares)."""

    seed = forms.IntegerField(required=False, min_value=0, help_text="Empty: a random one.")

    class Meta:
        model = DatasetItem
        fields = ("index", "inputs", "reference", "checks", "seed")
        field_classes = {"inputs": SafeJSONField, "checks": SafeJSONField}  # typed JSON: read by the safe parser
        widgets = {
            "inputs": forms.Textarea(attrs={"rows": 3, "cols": 50}),
            "reference": forms.Textarea(attrs={"rows": 3, "cols": 40}),
            "checks": forms.Textarea(attrs={"rows": 3, "cols": 40}),
        }

    def clean(self):
        cleaned = super().clean()
        if self.errors or not self.instance.dataset_id or cleaned.get("DELETE"):
            return cleaned
        case = {k: cleaned.get(k) for k in ("inputs", "reference", "checks", "seed")}
        try:
            # The services' own check of one case: an edit here meets the rules an upload meets.
            case = services.case_clean(self.instance.dataset.template, case, "item")
        except ValidationError as exc:
            for key, errors in exc.message_dict.items():
                field = key.split(".")[1] if key.count(".") else None
                self.add_error(field if field in self.fields else None, [f"{key}: {m}" for m in errors])
            return cleaned
        cleaned.update(case)  # the cleaned case (defaults filled, a seed drawn) is what construct_instance saves
        return cleaned


# --- datasets --------------------------------------------------------------------------------------------------


class DatasetItemInline(admin.TabularInline):
    """The cases, editable while no run has used the dataset; read-only once it is frozen (a change is then a new
    version: "Copy as a new version")."""

    model = DatasetItem
    form = DatasetItemForm
    extra = 0
    fields = ("index", "inputs", "reference", "checks", "seed", "source_job")
    readonly_fields = ("source_job",)
    ordering = ("index",)

    def get_queryset(self, request):
        # Each row is titled by its case ("case 3 of headline/gate v1"): the dataset and template in one query.
        return super().get_queryset(request).select_related("dataset__template")

    @staticmethod
    def _editable(obj) -> bool:
        return obj is None or not obj.frozen

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    """Datasets are created by an upload or from approved jobs (the numbering and the checks of every case are the
    services'), so "Add" leads to the upload page."""

    list_display = ("template", "name", "version", "item_count", "run_count", "origin", "created_at")
    list_filter = ("origin", "template")
    search_fields = ("name", "description", "template__slug")
    list_select_related = ("template",)
    fields = ("template", "name", "version", "description", "origin", "cases_by_desk", "created_by", "created_at")
    readonly_fields = ("template", "name", "version", "origin", "cases_by_desk", "created_by", "created_at")
    inlines = [DatasetItemInline]
    actions = ["copy_as_new_version"]
    change_form_template = "admin/generation/dataset/change_form.html"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(n_items=Count("items", distinct=True), n_runs=Count("runs", distinct=True))
        )

    @admin.display(description="items", ordering="n_items")
    def item_count(self, obj):
        return obj.n_items

    @admin.display(description="cases by desk")
    def cases_by_desk(self, obj):
        """Each desk's share of a dataset made of approved jobs ("politics: 12, sport: 3")."""
        shares = obj.desk_cases if isinstance(obj.desk_cases, dict) else {}
        return ", ".join(f"{slug}: {n}" for slug, n in sorted(shares.items())) or "–"

    @admin.display(description="runs", ordering="n_runs")
    def run_count(self, obj):
        return obj.n_runs

    def get_urls(self):
        own = [
            path("upload/", self.admin_site.admin_view(self.upload_view), name="generation_dataset_upload"),
            path("<int:pk>/copy/", self.admin_site.admin_view(self.copy_view), name="generation_dataset_copy"),
        ]
        return own + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        return redirect("admin:generation_dataset_upload")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        dataset = self.get_object(request, object_id)
        extra = {**(extra_context or {})}
        if dataset is not None:
            extra.update(frozen=dataset.frozen, n_runs=dataset.runs.count())
        return super().change_view(request, object_id, form_url, extra)

    @admin.action(description="Copy as a new version", permissions=["add"])
    def copy_as_new_version(self, request, queryset):
        copies = [services.dataset_copy(dataset, user=request.user) for dataset in queryset.select_related("template")]
        messages.success(request, "Copied as " + ", ".join(f"{c.name} v{c.version}" for c in copies) + ".")

    def copy_view(self, request, pk):
        """The change page's button: the next version of a (frozen) dataset with the same cases, to edit."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_add_permission(request):
            raise PermissionDenied
        dataset = get_object_or_404(Dataset, pk=pk)
        copy = services.dataset_copy(dataset, user=request.user)
        messages.success(request, f"Copied {dataset.name} v{dataset.version} as v{copy.version}: edit its cases here.")
        return redirect("admin:generation_dataset_change", copy.pk)

    def upload_view(self, request):
        """A CSV or JSONL file of cases becomes a dataset; every case is checked first, and on an error (keyed by
        its place, "items.3.inputs.text") nothing is written."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        initial = {"template": request.GET.get("template", "")}
        form = DatasetUploadForm(request.POST or None, request.FILES or None, initial=initial)
        errors: list[str] = []
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                cases = services.parse_upload(upload.name, upload.read())
                dataset = services.dataset_create(
                    template=form.cleaned_data["template"],
                    name=form.cleaned_data["name"],
                    cases=cases,
                    user=request.user,
                    description=form.cleaned_data["description"],
                    origin=DatasetOrigin.UPLOAD,
                )
            except ValidationError as exc:
                errors = [services.error_line(exc)]
            else:
                n = dataset.items.count()
                messages.success(request, f"Uploaded {dataset} with {n} case{'s' if n != 1 else ''}.")
                return redirect("admin:generation_dataset_change", dataset.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Upload a dataset",
            "form": form,
            "service_errors": errors,
        }
        return TemplateResponse(request, "admin/generation/dataset/upload.html", context)


class ReadOnlyAdmin(admin.ModelAdmin):
    """A record kept as it was made: listed and opened, never added, changed or deleted by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Experiment)
class ExperimentAdmin(ReadOnlyAdmin):
    """Every experiment, read-only (they are started from a template's page or `manage.py evaluate`); opening one
    shows its side by side."""

    list_display = ("template", "candidate_version", "baseline_version", "dataset", "state", "verdict", "created_at")
    list_filter = ("template",)
    list_select_related = ("template", "candidate__version", "baseline__version", "candidate__dataset", "created_by")
    search_fields = ("template__slug",)

    @admin.display(description="candidate")
    def candidate_version(self, obj):
        return f"v{obj.candidate.version.number}"

    @admin.display(description="baseline")
    def baseline_version(self, obj):
        label = f"{obj.baseline_label} " if obj.baseline_label else ""
        return f"{label}(v{obj.baseline.version.number})"

    @admin.display(description="dataset")
    def dataset(self, obj):
        return f"{obj.candidate.dataset.name} v{obj.candidate.dataset.version}"

    @admin.display(description="status")
    def state(self, obj):
        return obj.status

    @admin.display(description="gate")
    def verdict(self, obj):
        return _gate_verdict(obj.gate) if obj.finished_at else "–"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        experiment = selectors.experiment_detail(object_id) if _is_uuid(object_id) else None
        if experiment is None:
            raise Http404
        return redirect(experiment_url(experiment))


@admin.register(GateChange)
class GateChangeAdmin(ReadOnlyAdmin):
    """Every change of a template's promotion gate, with who made it: kept, never edited (beside the label moves,
    it shows a gate turned off for a move and on again after)."""

    list_display = ("template", "changed_at", "changed_by", "via", "from_dataset", "to_dataset", "thresholds")
    list_filter = ("template", "via")
    list_select_related = ("template", "changed_by")
    search_fields = ("template__slug",)

    @admin.display(description="thresholds")
    def thresholds(self, obj):
        if obj.from_gate == obj.to_gate:
            return "unchanged"
        return f"{obj.from_gate or 'defaults'} → {obj.to_gate or 'defaults'}"


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


# --- the template's change page: experiments and datasets ------------------------------------------------------


def template_view(model_admin, function):
    """`function(model_admin, request, **kwargs)` as an admin view: behind the admin's login and staff check."""
    return model_admin.admin_site.admin_view(lambda request, **kw: function(model_admin, request, **kw))


def template_urls(model_admin) -> list:
    """The evaluation URLs under a prompt template in the admin (PromptTemplateAdmin.get_urls adds them)."""

    def view(function):
        return template_view(model_admin, function)

    return [
        path("<int:pk>/experiments/start/", view(experiment_start_view), name="generation_template_experiment_start"),
        path(
            "<int:pk>/experiments/<uuid:experiment_id>/", view(experiment_view), name="generation_template_experiment"
        ),
        path(
            "<int:pk>/experiments/<uuid:experiment_id>/cancel/",
            view(experiment_cancel_view),
            name="generation_template_experiment_cancel",
        ),
        path(
            "<int:pk>/datasets/from-jobs/", view(dataset_from_jobs_view), name="generation_template_dataset_from_jobs"
        ),
    ]


def experiment_url(experiment) -> str:
    return reverse("admin:generation_template_experiment", args=[experiment.template_id, experiment.pk])


def _gate_verdict(gate: dict | None) -> str:
    if not gate:
        return "–"
    return "passed" if gate.get("passed") else "refused"


def template_context(request, template: PromptTemplate) -> dict:
    """What the change page shows under the versions: the experiments, the datasets, and the forms to start an
    experiment and to build a dataset from approved jobs."""
    experiments = []
    for e in selectors.experiments_for_template(template)[:50]:
        dataset = e.candidate.dataset
        experiments.append(
            {
                "url": experiment_url(e),
                "candidate": e.candidate.version.number,
                "baseline": e.baseline.version.number,
                "baseline_label": e.baseline_label,
                "dataset": f"{dataset.name} v{dataset.version}",
                "status": e.status,
                "gate": _gate_verdict(e.gate) if e.finished_at else "–",
                "created_at": e.created_at,
                "created_by": e.created_by,
            }
        )
    datasets = [
        {
            "url": reverse("admin:generation_dataset_change", args=[d.pk]),
            "label": f"{d.name} v{d.version}",
            "items": d.n_items,
            "runs": d.n_runs,
            "origin": d.get_origin_display(),
            "gate": d.name == template.gate_dataset,
        }
        for d in selectors.datasets_for_template(template)
    ]
    return {
        "experiments": experiments,
        "datasets": datasets,
        "experiment_form": ExperimentStartForm(template),
        "from_jobs_form": DatasetFromJobsForm(),
        "can_add_dataset": _may_add_datasets(request),
        "experiment_start_url": reverse("admin:generation_template_experiment_start", args=[template.pk]),
        "dataset_from_jobs_url": reverse("admin:generation_template_dataset_from_jobs", args=[template.pk]),
        "dataset_upload_url": reverse("admin:generation_dataset_upload") + f"?template={template.slug}",
    }


def _template_for_change(model_admin, request, pk) -> PromptTemplate:
    if request.method != "POST":
        raise Http404
    template = model_admin._template(request, pk)
    if not model_admin.has_change_permission(request, template):
        raise PermissionDenied
    return template


def experiment_start_view(model_admin, request, pk):
    """Start an experiment from the change page's form; its runs go through the queue like any job."""
    template = _template_for_change(model_admin, request, pk)
    change_url = reverse("admin:generation_prompttemplate_change", args=[pk])
    form = ExperimentStartForm(template, request.POST)
    if not form.is_valid():
        messages.error(request, f"The experiment was not started: {services.error_line(form.errors)}")
        return redirect(change_url)
    data = form.cleaned_data
    try:
        experiment = services.experiment_start(
            template=template,
            user=request.user,
            version=data["version"],
            dataset=data["dataset"],
            baseline=data["baseline"].strip() or "production",
            model_alias=data["model_alias"].strip() or None,
        )
    except ValidationError as exc:
        messages.error(request, f"The experiment was not started: {services.error_line(exc)}")
        return redirect(change_url)
    except LimitExceeded as exc:  # the evaluation pool is spent: nothing was written
        messages.error(request, f"The experiment was not started: {exc.message}")
        return redirect(change_url)
    messages.success(request, f"Experiment started: v{data['version']} against {data['baseline']}.")
    return redirect(experiment_url(experiment))


def _may_add_datasets(request) -> bool:
    return request.user.has_perm("generation.add_dataset")


def dataset_from_jobs_view(model_admin, request, pk):
    """One action: the template's newest approved jobs become a dataset (their approved text the references).
    It writes a dataset: the permission to add datasets too, as an upload needs."""
    template = _template_for_change(model_admin, request, pk)
    if not _may_add_datasets(request):
        raise PermissionDenied
    change_url = reverse("admin:generation_prompttemplate_change", args=[pk])
    form = DatasetFromJobsForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"No dataset was built: {services.error_line(form.errors)}")
        return redirect(change_url)
    try:
        dataset = services.dataset_from_approved_jobs(
            template=template,
            name=form.cleaned_data["name"],
            user=request.user,
            limit=form.cleaned_data["limit"],
            desk=form.cleaned_data["desk"],
            all_desks=form.cleaned_data["all_desks"],
        )
    except ValidationError as exc:
        messages.error(request, f"No dataset was built: {services.error_line(exc)}")
        return redirect(change_url)
    url = reverse("admin:generation_dataset_change", args=[dataset.pk])
    messages.success(request, format_html('Built <a href="{}">{}</a> from approved jobs.', url, dataset))
    return redirect(change_url)


def experiment_cancel_view(model_admin, request, pk, experiment_id):
    template = _template_for_change(model_admin, request, pk)
    experiment = selectors.experiment_detail(experiment_id, template=template)
    if experiment is None:
        raise Http404
    services.experiment_cancel(experiment, user=request.user)
    messages.info(request, "The candidate's run was cancelled.")
    return redirect(experiment_url(experiment))


# --- the side by side ------------------------------------------------------------------------------------------


def _fmt(value, *, rate: bool, key: str = "") -> str:
    if value is None:
        return "–"
    if rate:
        return f"{value:.0%}"
    if key == "latency_s":
        return f"{value:.2f} s"
    return f"{value:.1f}"


def _fmt_delta(delta, *, rate: bool) -> str:
    if delta is None:
        return "–"
    if rate:
        points = round(delta * 100)
        return "no change" if points == 0 else f"{points:+d} pts"
    return "no change" if abs(delta) < 0.005 else f"{delta:+.2f}" if abs(delta) < 1 else f"{delta:+.1f}"


def _metric_rows(metrics: list[dict]) -> list[dict]:
    return [
        {
            **row,
            "baseline_text": _fmt(row["baseline"], rate=row["rate"], key=row["key"]),
            "candidate_text": _fmt(row["candidate"], rate=row["rate"], key=row["key"]),
            "change_text": _fmt_delta(row["delta"], rate=row["rate"]),
        }
        for row in metrics
    ]


# The chart's geometry (SVG user units; the viewBox scales it to the page).
CHART_LABEL_W, CHART_BAR_W, CHART_BAR_H, CHART_GROUP_H, CHART_TOP = 220, 300, 12, 40, 28


def _chart(metrics: list[dict]) -> dict | None:
    """The rate metrics as bars, baseline above candidate, drawn server-side: geometry only, no style (the CSP
    allows no inline style; colours come from the classes in static/studio/admin.css)."""
    rows = [r for r in metrics if r["rate"] and (r["baseline"] is not None or r["candidate"] is not None)]
    if not rows:
        return None
    bars = []
    for i, row in enumerate(rows):
        y = CHART_TOP + i * CHART_GROUP_H
        sides = []
        for offset, side in ((0, "baseline"), (CHART_BAR_H + 2, "candidate")):
            value = row[side]
            width = round((value or 0) * CHART_BAR_W)
            sides.append(
                {
                    "side": side,
                    "y": y + offset,
                    "width": width,
                    "text_x": CHART_LABEL_W + width + 6,
                    "text_y": y + offset + CHART_BAR_H - 2,
                    "text": _fmt(value, rate=True),
                }
            )
        bars.append(
            {"label": row["label"], "regressed": row["regressed"], "label_y": y + CHART_BAR_H + 2, "sides": sides}
        )
    return {
        "bars": bars,
        "width": CHART_LABEL_W + CHART_BAR_W + 60,
        "height": CHART_TOP + len(rows) * CHART_GROUP_H,
        "label_w": CHART_LABEL_W,
        "bar_h": CHART_BAR_H,
        "legend_candidate_x": CHART_LABEL_W + 110,
    }


def _share(value) -> str:
    return "–" if value is None else f"{value:.0%}"


def _burden_rows(baseline_id: int, candidate_id: int) -> list[tuple[str, str, str]]:
    """Editor burden of both versions (selectors/burden.py), figure by figure: (what, baseline, candidate)."""
    by_id = {row["version_id"]: row for row in selectors.version_burden(version_ids=[candidate_id, baseline_id])}

    def figures(row: dict | None) -> list[str]:
        if row is None:
            return ["–"] * 5
        edits, approval, review, ratings = row["edits"], row["approval"], row["review"], row["ratings"]
        median = "–" if approval["median_s"] is None else f"median {approval['median_s']:.0f} s"
        return [
            f"{_share(edits['edited_share'])} of {edits['outputs']} outputs",
            f"{_share(edits['change_ratio'])} ({edits['edited_jobs']} jobs)",
            f"{median} ({approval['jobs']} jobs)",
            f"{_share(review['rejection_rate'])} of {review['decisions']} decisions",
            f"{_share(ratings['good_share'])} ({ratings['jobs']} jobs)",
        ]

    labels = ("Edited before approval", "Words changed", "Time to approval", "Sent back", "Rated good")
    base, cand = figures(by_id.get(baseline_id)), figures(by_id.get(candidate_id))
    return list(zip(labels, base, cand, strict=True))


def _side(case: dict) -> dict:
    """One run's result on a case, as the page lists it."""
    outputs = case.get("outputs") or []
    grounding, style, facts = case.get("grounding"), case.get("style"), case.get("facts")
    return {
        "output": outputs[0] if outputs else "",
        "more_outputs": max(len(outputs) - 1, 0),
        "error": case.get("error") or "",
        "contract_ok": (case.get("contract") or {}).get("ok", False),
        "problems": (case.get("contract") or {}).get("problems", []),
        "grounding": None if not grounding or not grounding.get("applies") else grounding.get("findings", 0),
        "style": None if not style else style.get("findings", 0),
        "facts": facts,
        "chrf": _fmt(case.get("chrf"), rate=False),
        "tokens": "–" if case.get("tokens") is None else case["tokens"],
        "latency": _fmt(case.get("latency_s"), rate=False, key="latency_s"),
    }


def _inputs_preview(inputs) -> list[tuple[str, str]]:
    if not isinstance(inputs, dict):
        return [("inputs", json.dumps(inputs, ensure_ascii=False)[:INPUT_PREVIEW_CHARS])]
    out = []
    for key, value in inputs.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        out.append((key, text if len(text) <= INPUT_PREVIEW_CHARS else text[: INPUT_PREVIEW_CHARS - 1] + "…"))
    return out


def _case_rows(cases: list[dict], baseline_number: int, candidate_number: int) -> list[dict]:
    return [
        {
            "index": case["index"],
            "inputs": _inputs_preview(case.get("inputs")),
            "regressions": case.get("regressions", []),
            "same": case.get("same", False),
            "diff": case.get("diff", []),
            "sides": [
                {
                    "role": "baseline",
                    "title": "Baseline",
                    "version": baseline_number,
                    **_side(case.get("baseline") or {}),
                },
                {
                    "role": "candidate",
                    "title": "Candidate",
                    "version": candidate_number,
                    **_side(case.get("candidate") or {}),
                },
            ],
        }
        for case in cases
    ]


def _thresholds(gate: dict) -> list[dict]:
    """The drops the gate allowed when it judged, metric by metric."""
    rows = []
    for key, allowed in ((gate.get("thresholds") or {}).get("max_drop") or {}).items():
        metric = evaluation.METRIC_BY_KEY.get(key)
        rows.append(
            {"label": metric.label if metric else key, "allowed": _fmt(allowed, rate=bool(metric and metric.rate))}
        )
    return rows


def experiment_view(model_admin, request, pk, experiment_id):
    """The side by side of an experiment: aggregates with their change (regressions first), a bar chart of the
    rates, both versions' editor burden, the gate's verdict, and every case (regressions first) with the word
    diff of the first outputs. Refreshes itself while the runs are measuring."""
    template = model_admin._template(request, pk)
    experiment = selectors.experiment_detail(experiment_id, template=template)
    if experiment is None:
        raise Http404
    report = selectors.experiment_report(experiment)
    comparison = report["comparison"]
    metrics = _metric_rows(comparison["metrics"])
    candidate, baseline = experiment.candidate, experiment.baseline
    running = report["status"] == RunStatus.RUNNING
    gate_protected = (experiment.gate.get("thresholds") or {}).get("protected", [])
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": f"{template.slug}: v{candidate.version.number} against {report['baseline_label'] or 'baseline'} "
        f"(v{baseline.version.number})",
        "template_obj": template,
        "experiment": experiment,
        "report": report,
        "running": running,
        "finished": experiment.finished_at is not None,
        "cancel_url": reverse("admin:generation_template_experiment_cancel", args=[template.pk, experiment.pk]),
        "can_change": model_admin.has_change_permission(request, template),
        "on_gate_dataset": bool(template.gate_dataset) and candidate.dataset.name == template.gate_dataset,
        "gate_protected": gate_protected,
        "thresholds": _thresholds(experiment.gate),
        "metrics": metrics,
        "chart": _chart(metrics),
        "burden": _burden_rows(baseline.version_id, candidate.version_id),
        "cases": _case_rows(comparison["cases"], baseline.version.number, candidate.version.number),
        "regressed_cases": comparison.get("regressed_cases", 0),
        "identical_cases": comparison.get("identical_cases", 0),
        "candidate_url": reverse("admin:generation_template_version", args=[template.pk, candidate.version.number]),
        "baseline_url": reverse("admin:generation_template_version", args=[template.pk, baseline.version.number]),
        "dataset_url": reverse("admin:generation_dataset_change", args=[candidate.dataset_id]),
    }
    return TemplateResponse(request, "admin/generation/prompttemplate/experiment.html", context)
