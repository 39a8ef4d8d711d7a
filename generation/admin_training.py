"""The LoRA adapter pages of the admin: on a template's change page its training runs and the form that starts
one on the template's approved edits; a run's own page with its progress (updated live while it trains, by
static/studio/training-run.js polling the run's JSON), its loss chart drawn here, its hashes, and what a run that
succeeded left: the version naming the adapter, the held-out dataset and the experiment. Kept apart from
admin.py, which only routes the template's URLs here. Writes go through the services."""

from __future__ import annotations

import math
from dataclasses import fields

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from . import selectors, services
from .admin_evaluation import (
    ReadOnlyAdmin,
    _ExternalForm,
    _template_for_change,
    desk_source_fields,
    experiment_url,
    template_view,
)
from .engine.lora import LoraParams
from .models import PromptTemplate, TrainingRun
from .services.training import MIN_TRAIN_PAIRS

RUNS_SHOWN = 50
DEFAULTS = LoraParams().as_dict()
PARAM_NAMES = [f.name for f in fields(LoraParams)]


# --- the form --------------------------------------------------------------------------------------------------


class TrainingStartForm(_ExternalForm):
    """The parameters a curator usually sets; the others keep LoraParams' defaults. Bounds are the services'
    (engine/lora.py), so a refusal names the parameter as the API does ("params.rank")."""

    form_id = "training-start-form"
    prefix = "tr"

    desk, all_desks = desk_source_fields(
        "approved edits",
        mixed="Train on every desk's approved edits together: the adapter then learns from all their work.",
    )
    edited_only = forms.BooleanField(
        required=False, initial=True, label="Edited only", help_text="Only the jobs whose text an editor changed."
    )
    rank = forms.IntegerField(initial=DEFAULTS["rank"], label="Rank")
    alpha = forms.FloatField(initial=DEFAULTS["alpha"], label="Alpha")
    epochs = forms.IntegerField(initial=DEFAULTS["epochs"], label="Epochs")
    learning_rate = forms.FloatField(initial=DEFAULTS["learning_rate"], label="Learning rate")
    target_modules = forms.CharField(
        initial=", ".join(DEFAULTS["target_modules"]),
        label="Target modules",
        help_text="Comma-separated module names.",
        required=False,
        widget=forms.TextInput(attrs={"size": 60}),
    )

    def params(self) -> dict:
        data = self.cleaned_data
        modules = [m.strip() for m in data["target_modules"].split(",") if m.strip()]
        return {
            "rank": data["rank"],
            "alpha": data["alpha"],
            "epochs": data["epochs"],
            "learning_rate": data["learning_rate"],
            "target_modules": modules,
        }


# --- URLs and the change page's section ------------------------------------------------------------------------


def template_urls(model_admin) -> list:
    """The training URLs under a prompt template in the admin (PromptTemplateAdmin.get_urls adds them)."""

    def view(function):
        return template_view(model_admin, function)

    return [
        path("<int:pk>/training/start/", view(training_start_view), name="generation_template_training_start"),
        path("<int:pk>/training/<uuid:run_id>/", view(training_run_view), name="generation_template_training_run"),
        path(
            "<int:pk>/training/<uuid:run_id>/progress/",
            view(training_progress_view),
            name="generation_template_training_progress",
        ),
        path(
            "<int:pk>/training/<uuid:run_id>/cancel/",
            view(training_cancel_view),
            name="generation_template_training_cancel",
        ),
    ]


def run_url(run: TrainingRun) -> str:
    return reverse("admin:generation_template_training_run", args=[run.template_id, run.pk])


def _pair_counts(template, *, edited_only: bool) -> dict:
    """The pairs there are now, every desk's work together, with each desk's share."""
    pairs = selectors.training_index(template, desk=selectors.source_desk(template), edited_only=edited_only)
    held = sum(p.split == selectors.TRAINING_HELD_OUT for p in pairs)
    return {"total": len(pairs), "train": len(pairs) - held, "heldout": held, "desks": selectors.desk_shares(pairs)}


def _desk_counts(edited: dict, every: dict) -> list[dict]:
    return [{"desk": slug, "edited": edited["desks"].get(slug, 0), "approved": n} for slug, n in every["desks"].items()]


def template_context(request, template: PromptTemplate) -> dict:
    """What the change page shows under the experiments: the template's training runs, the pairs it has now and
    the form to train an adapter."""
    runs = []
    for run in selectors.training_runs_for_template(template)[:RUNS_SHOWN]:
        live = _shown(run)
        runs.append(
            {
                "url": run_url(run),
                "short_id": str(run.pk)[:8],
                "status": run.status,
                "status_label": run.get_status_display(),
                "step": live["step_short"],
                "loss": live["loss"],
                "train_pairs": run.train_pairs,
                "heldout_pairs": run.heldout_pairs,
                "desk": run.desk.slug if run.desk else "",
                "created_at": run.created_at,
                "created_by": run.created_by,
            }
        )
    edited, every = _pair_counts(template, edited_only=True), _pair_counts(template, edited_only=False)
    return {
        "training_runs": runs,
        "training_form": TrainingStartForm(),
        "training_start_url": reverse("admin:generation_template_training_start", args=[template.pk]),
        "training_pairs_edited": edited,
        "training_pairs_all": every,
        "training_desks": _desk_counts(edited, every),
        "training_min_train": MIN_TRAIN_PAIRS,
    }


# --- formatting ------------------------------------------------------------------------------------------------


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value


def clock(seconds) -> str:
    """Seconds as minutes:seconds ("4:05"); "–" when unknown."""
    seconds = _number(seconds)
    if seconds is None:
        return "–"
    whole = max(0, round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def _shown(run: TrainingRun) -> dict:
    """The run's status and progress as the pages show them (the run page and its JSON share these strings, so
    the live numbers read as the page first rendered them)."""
    progress = run.progress if isinstance(run.progress, dict) else {}
    step, total = _number(progress.get("step")), _number(progress.get("total_steps"))
    epoch, loss = _number(progress.get("epoch")), _number(progress.get("loss"))
    if loss is None and run.losses:
        loss = _number(run.losses[-1])
    speed = _number(progress.get("tokens_per_s"))
    epochs = (run.params or {}).get("epochs")
    return {
        "status": run.status,
        "status_label": run.get_status_display(),
        "final": run.is_final,
        "cancel_requested": run.cancel_requested,
        "step_value": int(step) if step is not None else 0,
        "total_value": int(total) if total else 0,
        "step": f"{int(step)} of {int(total)}" if step is not None and total else "–",
        "step_short": f"{int(step)}/{int(total)}" if step is not None and total else "–",
        "epoch": "–" if epoch is None else f"{int(epoch)} of {epochs}" if epochs else str(int(epoch)),
        "loss": "–" if loss is None else f"{loss:.4f}",
        "tokens_per_s": "–" if speed is None else f"{speed:,.0f}",
        "eta": clock(progress.get("eta_s")) if not run.is_final else "–",
        "elapsed": clock(progress.get("elapsed_s")),
    }


# The loss chart's geometry (SVG user units; the viewBox scales it to the page).
CHART_W, CHART_H = 560, 200
CHART_LEFT, CHART_RIGHT, CHART_TOP, CHART_BOTTOM = 64, 16, 14, 34
CHART_MAX_POINTS = 400


def loss_chart(losses) -> dict | None:
    """The loss of each step as a line, drawn server-side: geometry only, no style (the CSP allows no inline
    style; colours come from the classes in static/studio/training.css). Long runs are thinned to at most
    CHART_MAX_POINTS points, the last step always kept."""
    points = [(i, v) for i, v in enumerate(losses or []) if _number(v) is not None]
    if not points:
        return None
    steps = len(losses)
    stride = math.ceil(len(points) / CHART_MAX_POINTS)
    sampled = points[::stride]
    if sampled[-1] != points[-1]:
        sampled.append(points[-1])
    values = [v for _, v in points]
    low, high = min(values), max(values)
    plot_w = CHART_W - CHART_LEFT - CHART_RIGHT
    plot_h = CHART_H - CHART_TOP - CHART_BOTTOM
    axis_y = CHART_TOP + plot_h

    def x(i: int) -> float:
        return CHART_LEFT + (i / (steps - 1) if steps > 1 else 0) * plot_w

    def y(v: float) -> float:
        return CHART_TOP + ((high - v) / (high - low) * plot_h if high > low else plot_h / 2)

    coords = [(x(i), y(v)) for i, v in sampled]
    first, last = points[0], points[-1]
    return {
        "width": CHART_W,
        "height": CHART_H,
        "points": " ".join(f"{px:.1f},{py:.1f}" for px, py in coords),
        "last_x": f"{coords[-1][0]:.1f}",
        "last_y": f"{coords[-1][1]:.1f}",
        "left": CHART_LEFT,
        "right": CHART_W - CHART_RIGHT,
        "top": CHART_TOP,
        "axis_y": axis_y,
        "label_x": CHART_LEFT - 6,
        "high_y": CHART_TOP + 4,
        "low_y": axis_y,
        "steps_y": axis_y + 18,
        "high": f"{high:.4f}",
        "low": f"{low:.4f}",
        "first_step": first[0] + 1,
        "last_step": last[0] + 1,
        "summary": f"Training loss by step: {first[1]:.4f} at step {first[0] + 1}, {last[1]:.4f} at step "
        f"{last[0] + 1}, lowest {low:.4f}.",
    }


# --- views -----------------------------------------------------------------------------------------------------


def _run(template, run_id) -> TrainingRun:
    run = selectors.training_run(template, run_id)
    if run is None:
        raise Http404
    return run


def training_start_view(model_admin, request, pk):
    """Start a training run from the change page's form; a worker of the training queue picks it up."""
    template = _template_for_change(model_admin, request, pk)
    change_url = reverse("admin:generation_prompttemplate_change", args=[pk])
    form = TrainingStartForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"No adapter is being trained: {services.error_line(form.errors)}")
        return redirect(change_url)
    try:
        run = services.training_start(
            template=template,
            user=request.user,
            desk=form.cleaned_data["desk"],
            all_desks=form.cleaned_data["all_desks"],
            params=form.params(),
            edited_only=form.cleaned_data["edited_only"],
        )
    except ValidationError as exc:
        messages.error(request, f"No adapter is being trained: {services.error_line(exc)}")
        return redirect(change_url)
    whose = f"the {run.desk.slug} desk's" if run.desk else "every desk's"
    messages.success(
        request,
        f"Training queued on {run.train_pairs} pairs of {whose} approved work, {run.heldout_pairs} held out to "
        "measure the adapter.",
    )
    return redirect(run_url(run))


def training_cancel_view(model_admin, request, pk, run_id):
    template = _template_for_change(model_admin, request, pk)
    run = _run(template, run_id)
    try:
        run = services.training_cancel(run, user=request.user)
    except ValidationError as exc:
        messages.error(request, f"Not cancelled: {services.error_line(exc)}")
    else:
        if run.is_final:
            messages.info(request, "The training run was cancelled before it started.")
        else:
            messages.info(request, "Cancel requested: the run stops at its next step.")
    return redirect(run_url(run))


def training_progress_view(model_admin, request, pk, run_id):
    """The run's status and progress as JSON, for the run page's live numbers."""
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    run = _run(model_admin._template(request, pk), run_id)
    return JsonResponse(_shown(run))


def training_run_view(model_admin, request, pk, run_id):
    """One training run: status, progress, the loss chart, the pairs, parameters and hashes, the error of a run
    that failed, and what a run that succeeded left behind."""
    template = model_admin._template(request, pk)
    run = _run(template, run_id)
    params = run.params or {}
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": f"{template.slug}: LoRA training run {str(run.pk)[:8]}",
        "template_obj": template,
        "run": run,
        "shown": _shown(run),
        "desk_pairs": sorted((run.desk_pairs or {}).items()) if isinstance(run.desk_pairs, dict) else [],
        "chart": loss_chart(run.losses),
        "params": [
            (name, ", ".join(params[name]) if isinstance(params.get(name), list) else params[name])
            for name in PARAM_NAMES
            if name in params
        ],
        "can_change": model_admin.has_change_permission(request, template),
        "progress_url": reverse("admin:generation_template_training_progress", args=[template.pk, run.pk]),
        "cancel_url": reverse("admin:generation_template_training_cancel", args=[template.pk, run.pk]),
        "base_url": reverse("admin:generation_template_version", args=[template.pk, run.base_version.number]),
        "version_url": (
            reverse("admin:generation_template_version", args=[template.pk, run.version.number]) if run.version else ""
        ),
        "dataset_url": reverse("admin:generation_dataset_change", args=[run.dataset_id]) if run.dataset_id else "",
        "experiment_url": experiment_url(run.experiment) if run.experiment_id else "",
    }
    return TemplateResponse(request, "admin/generation/prompttemplate/training_run.html", context)


# --- the list of every run -------------------------------------------------------------------------------------


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyAdmin):
    """Every training run in the admin's index, read-only (a run is started from its template's page); opening
    one leads to its own page under the template, with the progress and the loss chart."""

    list_display = ("run", "template", "state", "source", "pairs", "created_by", "created_at", "finished_at")
    list_display_links = ("run",)
    list_filter = ("status", "template")
    list_select_related = ("template", "desk", "created_by")
    search_fields = ("template__slug",)

    @admin.display(description="run")
    def run(self, obj):
        return str(obj.pk)[:8]

    @admin.display(description="status", ordering="status")
    def state(self, obj):
        return obj.get_status_display()

    @admin.display(description="approved edits of")
    def source(self, obj):
        return "every desk" if obj.all_desks or obj.desk is None else obj.desk.slug

    @admin.display(description="pairs (train + held out)")
    def pairs(self, obj):
        return f"{obj.train_pairs} + {obj.heldout_pairs}"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        if run is None:
            raise Http404
        return redirect(run_url(run))
