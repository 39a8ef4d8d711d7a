"""/api/v1/templates/<slug>/training-data/: a template's training pairs from approved edits as JSONL, in the
chat format Hugging Face tools read, streamed; /api/v1/templates/<slug>/training-runs/: LoRA adapters trained on
them, started, followed live and cancelled. For template curators (staff, or the permission to change templates).
Both read one desk's approved work (the template's own desk, the one named, or the only one with approved work);
mixing desks is the curator's explicit `all_desks`, and each desk's share is given."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from ..engine.lora import LoraParams
from ..models import Desk, TrainingRun, TrainingStatus
from . import schema as _schema
from .errors import error_response
from .permissions import CuratesTemplates
from .serializers import ErrorSerializer, StrictSerializer

RUNS_LISTED = 50
SLUG = OpenApiParameter("slug", str, OpenApiParameter.PATH, pattern=_schema.SLUG)


class TrainingDataQuerySerializer(StrictSerializer):
    split = serializers.ChoiceField(
        choices=[*selectors.TRAINING_SPLITS, "all"], default="train", help_text="The training or held-out pairs."
    )
    desk = serializers.SlugField(
        required=False,
        help_text="This desk's jobs; default: the template's own desk, or the only desk with approved work.",
    )
    all_desks = serializers.BooleanField(
        default=False, help_text="Mix every desk's approved work (X-Desk-Pairs gives each desk's share)."
    )
    all_approved = serializers.BooleanField(
        default=False, help_text="Every approved job, not only those whose text an editor changed."
    )


def _desk(name: str | None) -> Desk | None:
    if not name:
        return None
    desk = Desk.objects.filter(slug=name).first()
    if desk is None:
        raise ValidationError({"desk": [f"No desk {name!r}."]})
    return desk


def _shares_header(shares: dict[str, int]) -> str:
    return ", ".join(f"{slug}={n}" for slug, n in shares.items())


LINES_PER_READ = 200


def _streamed(request, lines: Iterator[str]):
    """The lines as the server streams them: under ASGI an async iterator that reads them in a worker thread a
    few hundred at a time (Django would read a plain iterator whole before sending it); under WSGI the lines."""
    if not isinstance(request._request, ASGIRequest):
        return lines

    def take() -> str:
        return "".join(itertools.islice(lines, LINES_PER_READ))

    async def chunks():
        while part := await sync_to_async(take)():
            yield part

    return chunks()


class TrainingDataApi(APIView):
    permission_classes = [IsAuthenticated, CuratesTemplates]

    @extend_schema(
        parameters=[SLUG, TrainingDataQuerySerializer],
        responses={
            (200, "application/jsonl"): OpenApiResponse(
                OpenApiTypes.STR,
                description='One chat per line: {"messages": [system, user, {"role": "assistant", "content": the '
                "approved text}]}, streamed. X-Pairs and X-Held-Out give the counts, X-Desk the desk whose work it "
                "is (empty: every desk's), X-Desk-Pairs each desk's pairs (sport=12, politics=3).",
            )
        },
        summary="A template's training pairs from approved edits, as JSONL (curators only)",
    )
    def get(self, request, slug):
        query = TrainingDataQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        template = selectors.template_by_slug(slug)
        if template is None:
            raise Http404
        reading = selectors.source_desk(template, desk=_desk(data.get("desk")), all_desks=data["all_desks"])
        edited_only = not data["all_approved"]
        refs = selectors.training_index(template, desk=reading, edited_only=edited_only)
        shares = selectors.desk_shares(refs)
        desk = selectors.source_settle(template, shares, desk=reading, all_desks=data["all_desks"])
        split = data["split"]
        lines = selectors.training_lines(refs, None if split == "all" else split, edited_only=edited_only)
        response = StreamingHttpResponse(_streamed(request, lines), content_type="application/jsonl")
        response["X-Pairs"] = str(len(refs))
        response["X-Held-Out"] = str(sum(p.split == selectors.TRAINING_HELD_OUT for p in refs))
        response["X-Desk"] = desk.slug if desk else ""
        response["X-Desk-Pairs"] = _shares_header(shares)
        response["Content-Disposition"] = f'attachment; filename="{template.slug}-{split}.jsonl"'
        return response


# --- /api/v1/templates/<slug>/training-runs/ ------------------------------------------------------------------

_SCHEMA_TYPES = {"int": {"type": "integer"}, "float": {"type": "number"}}
MODULE = "^[A-Za-z_][A-Za-z0-9_.]*$"


def _lora_params_schema() -> dict:
    """LoraParams' fields with their defaults; their bounds are checked by the server (engine/lora.py), and a
    value out of them is a 400 naming it ("params.rank")."""
    defaults = LoraParams().as_dict()
    properties = {}
    for f in dataclasses.fields(LoraParams):
        kind = _SCHEMA_TYPES.get(str(f.type), {"type": "array", "items": {"type": "string", "pattern": MODULE}})
        properties[f.name] = {**kind, "default": defaults[f.name]}
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "description": "LoRA training parameters; each one left out takes its default. A bad value is a 400 "
        "naming it (params.rank).",
    }


@extend_schema_field(_lora_params_schema())
class LoraParamsField(serializers.DictField):
    """An object checked by the services (LoraParams.from_dict), which name each bad parameter."""


class TrainingRunCreateSerializer(StrictSerializer):
    desk = serializers.SlugField(
        required=False,
        help_text="This desk's approved work; default: the template's own desk, or the only desk with approved "
        "edits (edits of several desks are refused unless all_desks).",
    )
    all_desks = serializers.BooleanField(
        required=False, default=False, help_text="Mix every desk's approved edits (desk_pairs gives each share)."
    )
    edited_only = serializers.BooleanField(
        required=False, default=True, help_text="Only the jobs whose text an editor changed (else every approved one)."
    )
    params = LoraParamsField(required=False, default=dict)


class TrainingProgressSerializer(serializers.Serializer):
    step = serializers.IntegerField(allow_null=True, help_text="Steps done; null until the run has started.")
    total_steps = serializers.IntegerField(allow_null=True)
    epoch = serializers.IntegerField(allow_null=True, help_text="1-based.")
    loss = serializers.FloatField(allow_null=True, help_text="The last step's mean loss over its answer tokens.")
    tokens_per_s = serializers.FloatField(allow_null=True)
    eta_s = serializers.FloatField(allow_null=True, help_text="Seconds left, at this run's pace.")
    elapsed_s = serializers.FloatField(allow_null=True, help_text="Training time so far, restarts included.")


class TrainingRunSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    template = serializers.CharField()
    desk = serializers.CharField(allow_null=True, help_text="The desk whose work it trains on; null: every desk's.")
    all_desks = serializers.BooleanField(help_text="A curator chose to mix every desk's approved edits.")
    desk_pairs = serializers.DictField(
        child=serializers.IntegerField(), help_text="How many of its pairs (train and held out) each desk gave."
    )
    base_version = serializers.IntegerField(help_text="The version the adapter is trained for and measured against.")
    model_alias = serializers.CharField(help_text="The alias whose workers serve the adapter.")
    edited_only = serializers.BooleanField()
    status = serializers.ChoiceField(choices=TrainingStatus.choices)
    cancel_requested = serializers.BooleanField(help_text="A running run stops at its next step.")
    progress = TrainingProgressSerializer()
    losses = serializers.ListField(child=serializers.FloatField(), help_text="The loss of each step so far.")
    train_pairs = serializers.IntegerField()
    heldout_pairs = serializers.IntegerField()
    params = serializers.DictField(help_text="The LoRA parameters it trains with, defaults filled in.")
    data_sha256 = serializers.CharField(help_text="Of the pairs it trained on; empty until it succeeds.")
    base_sha256 = serializers.CharField(help_text="Of the base weights; empty until it succeeds.")
    adapter_sha256 = serializers.CharField(help_text="Of the adapter's weights; empty until it succeeds.")
    version = serializers.IntegerField(allow_null=True, help_text="The new version naming the adapter, on success.")
    dataset = serializers.CharField(allow_null=True, help_text="The held-out pairs' dataset, on success.")
    experiment = serializers.UUIDField(
        allow_null=True, help_text="The experiment of the new version against the base on the held-out pairs."
    )
    error = serializers.CharField(help_text="Why it failed; empty otherwise.")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


def _run_data(run: TrainingRun) -> dict:
    return {
        "id": run.pk,
        "template": run.template.slug,
        "desk": run.desk.slug if run.desk else None,
        "all_desks": run.all_desks,
        "desk_pairs": run.desk_pairs if isinstance(run.desk_pairs, dict) else {},
        "base_version": run.base_version.number,
        "model_alias": run.model_alias,
        "edited_only": run.edited_only,
        "status": run.status,
        "cancel_requested": run.cancel_requested,
        "progress": run.progress if isinstance(run.progress, dict) else {},
        "losses": run.losses or [],
        "train_pairs": run.train_pairs,
        "heldout_pairs": run.heldout_pairs,
        "params": run.params,
        "data_sha256": run.data_sha256,
        "base_sha256": run.base_sha256,
        "adapter_sha256": run.adapter_sha256,
        "version": run.version.number if run.version else None,
        "dataset": run.dataset.name if run.dataset else None,
        "experiment": run.experiment_id,
        "error": run.error,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def _runs(template):
    return selectors.training_runs_for_template(template)


def _template(slug: str):
    template = selectors.template_by_slug(slug)
    if template is None:
        raise Http404
    return template


def _run(slug: str, run_id) -> TrainingRun:
    run = _runs(_template(slug)).filter(pk=run_id).first()
    if run is None:
        raise Http404
    return run


RUN = {
    "id": "3f2b9c1e-7d4a-4e8b-9a61-0c5d2e7f8a90",
    "template": "headline",
    "desk": "sport",
    "all_desks": False,
    "desk_pairs": {"sport": 195},
    "base_version": 3,
    "model_alias": "tuned",
    "edited_only": True,
    "status": "running",
    "cancel_requested": False,
    "progress": {
        "step": 40,
        "total_steps": 120,
        "epoch": 1,
        "loss": 1.8342,
        "tokens_per_s": 2310.5,
        "eta_s": 96.0,
        "elapsed_s": 48.2,
    },
    "losses": [],
    "train_pairs": 157,
    "heldout_pairs": 38,
    "params": {**LoraParams().as_dict(), "rank": 8},
    "data_sha256": "",
    "base_sha256": "",
    "adapter_sha256": "",
    "version": None,
    "dataset": None,
    "experiment": None,
    "error": "",
    "created_at": "2026-12-03T09:00:00Z",
    "started_at": "2026-12-03T09:00:05Z",
    "finished_at": None,
}
RUNNING = OpenApiExample("Running", response_only=True, value=RUN)
SUCCEEDED = OpenApiExample(
    "Succeeded",
    response_only=True,
    value={
        **RUN,
        "status": "succeeded",
        "progress": {**RUN["progress"], "step": 120, "epoch": 3, "loss": 0.9120, "eta_s": 0.0, "elapsed_s": 144.7},
        "losses": [2.41, 2.02, 1.83, 1.35, 0.91],
        "data_sha256": "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7",
        "base_sha256": "cae662172fd450bb0cd710a769079c05bfc5d8e35efa6576edc7d0377afdd4a2",
        "adapter_sha256": "ae1eae1d76e5b7c865c4122ce366a08025842566d2d96c75cc13e6353a73db0d",
        "version": 4,
        "dataset": "heldout-3f2b9c1e",
        "experiment": "0b0e7f0e-3a52-4a56-9f57-6f1b8f6a2b11",
        "finished_at": "2026-12-03T09:02:31Z",
    },
)
START = OpenApiExample(
    "Rank 8 on the sport desk's edits", request_only=True, value={"desk": "sport", "params": {"rank": 8}}
)


class TrainingRunListCreateApi(APIView):
    permission_classes = [IsAuthenticated, CuratesTemplates]

    @extend_schema(
        parameters=[SLUG],
        responses=TrainingRunSerializer(many=True),
        summary="A template's LoRA training runs, newest first (curators only)",
    )
    def get(self, request, slug):
        runs = _runs(_template(slug)).order_by("-created_at")[:RUNS_LISTED]
        return Response(TrainingRunSerializer([_run_data(r) for r in runs], many=True).data)

    @extend_schema(
        parameters=[SLUG],
        request=TrainingRunCreateSerializer,
        responses={202: TrainingRunSerializer},
        examples=[START, RUNNING],
        summary="Train a LoRA adapter on the template's approved edits (curators only)",
        description="The pairs are frozen with the run; a worker of the training queue trains it. On success it "
        "leaves a version naming the adapter, the held-out pairs as a dataset and an experiment of that version "
        "against the base version on them.",
    )
    def post(self, request, slug):
        template = _template(slug)
        body = TrainingRunCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        run = services.training_start(
            template=template,
            user=request.user,
            desk=_desk(data.get("desk")),
            all_desks=data["all_desks"],
            params=data["params"],
            edited_only=data["edited_only"],
        )
        return Response(TrainingRunSerializer(_run_data(_run(slug, run.pk))).data, status=status.HTTP_202_ACCEPTED)


class TrainingRunDetailApi(APIView):
    permission_classes = [IsAuthenticated, CuratesTemplates]

    @extend_schema(
        parameters=[SLUG],
        responses=TrainingRunSerializer,
        examples=[RUNNING, SUCCEEDED],
        summary="One training run: its status, live progress and, on success, what it left (curators only)",
    )
    def get(self, request, slug, run_id):
        return Response(TrainingRunSerializer(_run_data(_run(slug, run_id))).data)


class TrainingRunCancelApi(APIView):
    permission_classes = [IsAuthenticated, CuratesTemplates]

    @extend_schema(
        parameters=[SLUG],
        request=None,
        responses={
            200: TrainingRunSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The run had already ended (param: status)"),
        },
        examples=[OpenApiExample("Cancel requested", response_only=True, value={**RUN, "cancel_requested": True})],
        summary="Cancel a training run: a queued one at once, a running one at its next step (curators only)",
    )
    def post(self, request, slug, run_id):
        run = _run(slug, run_id)
        try:
            services.training_cancel(run, user=request.user)
        except DjangoValidationError as exc:
            return error_response(services.error_line(exc), 409, "training_finished", param="status")
        return Response(TrainingRunSerializer(_run_data(_run(slug, run_id))).data)
