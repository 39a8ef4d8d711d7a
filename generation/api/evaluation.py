"""/api/v1/templates/<slug>/experiments/: start an experiment of a template version against a baseline over a
dataset, follow its runs, read the side by side and the gate's verdict. For template curators (staff, or the
permission to change templates); the cases run as evaluation jobs on the workers."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from ..models import RunStatus
from . import schema as _schema
from .permissions import CuratesTemplates
from .serializers import StrictSerializer


class ExperimentCreateSerializer(StrictSerializer):
    version = serializers.IntegerField(required=False, min_value=1, help_text="The candidate version's number.")
    label = serializers.SlugField(required=False, help_text="Or the label pointing at the candidate.")
    dataset = serializers.SlugField(
        required=False, help_text="A dataset name (its latest version); default: the template's gate dataset."
    )
    baseline = serializers.RegexField(
        r"^[A-Za-z0-9_-]{1,64}$", required=False, default="production", help_text="A label, or vN for a version."
    )
    model = serializers.SlugField(required=False, max_length=64, help_text="A model alias; default: the version's.")
    reuse_baseline = serializers.BooleanField(
        required=False, default=True, help_text="Reuse a finished run of the baseline on the same dataset and model."
    )

    def validate(self, attrs):
        if ("version" in attrs) == ("label" in attrs):
            raise ValidationError({"version": ["Give a version or a label (one of them)."]})
        return attrs


class RunSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    version = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    cases = serializers.IntegerField()
    measured = serializers.IntegerField(help_text="Cases whose job has ended and been measured.")
    summary = serializers.JSONField(allow_null=True, help_text="Aggregates per metric, once finished.")
    waiting = serializers.CharField(
        help_text="Why its next case waits (the evaluation pool spent, every place taken); empty when it does not."
    )
    judged_by = serializers.IntegerField(
        help_text="The version whose checks judge its outputs: the baseline's, for a candidate."
    )
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class GateSerializer(serializers.Serializer):
    passed = serializers.BooleanField()
    failures = serializers.ListField(child=serializers.CharField(), help_text="Why it would be refused, in numbers.")
    thresholds = serializers.JSONField(required=False)


class ExperimentSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    template = serializers.CharField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    dataset = serializers.CharField(help_text="Name and version of the dataset both runs used.")
    model_alias = serializers.CharField()
    baseline_label = serializers.CharField()
    candidate = RunSerializer()
    baseline = RunSerializer()
    comparison = serializers.JSONField(
        help_text="metrics (regressions first: key, label, baseline, candidate, delta, regressed) and cases (side by "
        "side: both outputs and checks, regressions, a word diff), once finished."
    )
    gate = GateSerializer()
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


SLUG = OpenApiParameter("slug", str, OpenApiParameter.PATH, pattern=_schema.SLUG)
EXAMPLE = OpenApiExample(
    "Running",
    response_only=True,
    value={
        "id": "0b0e7f0e-3a52-4a56-9f57-6f1b8f6a2b11",
        "template": "headline",
        "status": "running",
        "dataset": "approved v1",
        "model_alias": "default",
        "baseline_label": "production",
        "candidate": {
            "id": "5d1c8c51-0f0c-4c3e-9b55-3f3c2a8e1f01",
            "version": 3,
            "status": "running",
            "cases": 5,
            "measured": 2,
            "summary": None,
            "waiting": "",
            "judged_by": 2,
            "created_at": "2026-12-03T09:00:00Z",
            "finished_at": None,
        },
        "baseline": {
            "id": "7a2f0b8e-9c1d-4e5f-8a6b-2c3d4e5f6a7b",
            "version": 2,
            "status": "finished",
            "cases": 5,
            "measured": 5,
            "summary": {"cases": 5, "failed": 0, "metrics": {"contract_rate": {"value": 1.0, "cases": 5}}},
            "waiting": "",
            "judged_by": 2,
            "created_at": "2026-12-02T16:00:00Z",
            "finished_at": "2026-12-02T16:04:00Z",
        },
        "comparison": {"metrics": [], "cases": [], "regressed_cases": 0, "identical_cases": 0},
        "gate": {"passed": False, "failures": ["The experiment has not finished."]},
        "created_by": "curator",
        "created_at": "2026-12-03T09:00:00Z",
        "finished_at": None,
    },
)


def _template(slug: str):
    template = selectors.template_by_slug(slug)
    if template is None:
        raise Http404
    return template


class ExperimentListCreateApi(APIView):
    permission_classes = [IsAuthenticated, CuratesTemplates]
    body_required = True

    @extend_schema(
        parameters=[SLUG],
        responses=ExperimentSerializer(many=True),
        summary="A template's experiments, newest first (curators only)",
    )
    def get(self, request, slug):
        template = _template(slug)
        experiments = selectors.experiments_for_template(template)[:50]
        return Response(ExperimentSerializer([selectors.experiment_report(e) for e in experiments], many=True).data)

    @extend_schema(
        parameters=[SLUG],
        request=ExperimentCreateSerializer,
        responses={202: ExperimentSerializer},
        examples=[EXAMPLE],
        summary="Start an experiment of a version against a baseline over a dataset (curators only)",
    )
    def post(self, request, slug):
        template = _template(slug)
        body = ExperimentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        experiment = services.experiment_start(
            template=template,
            user=request.user,
            version=data.get("version"),
            label=data.get("label"),
            dataset=data.get("dataset"),
            baseline=data["baseline"],
            model_alias=data.get("model"),
            reuse_baseline=data["reuse_baseline"],
        )
        report = selectors.experiment_report(selectors.experiment_detail(experiment.pk))
        return Response(ExperimentSerializer(report).data, status=status.HTTP_202_ACCEPTED)


class ExperimentDetailApi(APIView):
    permission_classes = [IsAuthenticated, CuratesTemplates]

    @extend_schema(
        parameters=[SLUG],
        responses=ExperimentSerializer,
        examples=[EXAMPLE],
        summary="One experiment: both runs' status, the side by side and the gate (curators only)",
    )
    def get(self, request, slug, experiment_id):
        experiment = selectors.experiment_detail(experiment_id, template=_template(slug))
        if experiment is None:
            raise Http404
        return Response(ExperimentSerializer(selectors.experiment_report(experiment)).data)
