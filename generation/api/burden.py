"""GET /api/v1/usage/templates/: editor burden per template and version (selectors/burden.py defines each
figure), for the people who curate templates: it compares versions, and tells how others' work went."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors
from .permissions import CuratesTemplates
from .serializers import StrictSerializer


class TemplateBurdenQuerySerializer(StrictSerializer):
    template = serializers.SlugField(required=False, help_text="Only this template (its slug).")


class EditsSerializer(serializers.Serializer):
    jobs = serializers.IntegerField(help_text="Approved jobs (review state approved now).")
    outputs = serializers.IntegerField(help_text="Their outputs.")
    edited = serializers.IntegerField(help_text="Of those, outputs an editor edited (edited_at set) before approval.")
    edited_share = serializers.FloatField(allow_null=True, help_text="edited / outputs; null without outputs.")
    edited_jobs = serializers.IntegerField(help_text="Approved jobs with an edited output.")
    change_ratio = serializers.FloatField(
        allow_null=True,
        help_text="Mean TER of final text against the model's text over edited outputs (0.1: one word in ten; "
        "over 1 when more was written than the model had); null without edits.",
    )


class ApprovalSerializer(serializers.Serializer):
    jobs = serializers.IntegerField(help_text="Approved jobs.")
    median_s = serializers.FloatField(
        allow_null=True, help_text="Median seconds from the job's end to the approval that stands."
    )
    p90_s = serializers.FloatField(allow_null=True, help_text="90th percentile (nearest rank) of the same.")


class ReviewSerializer(serializers.Serializer):
    jobs = serializers.IntegerField(help_text="Jobs with a decision.")
    decisions = serializers.IntegerField(help_text="Moves out of in_review by someone other than the owner.")
    sent_back = serializers.IntegerField(help_text="Of those, sent back to draft.")
    rejection_rate = serializers.FloatField(allow_null=True, help_text="sent_back / decisions; null without any.")


class RatingsSerializer(serializers.Serializer):
    jobs = serializers.IntegerField(help_text="Jobs with a rated output.")
    good = serializers.IntegerField()
    bad = serializers.IntegerField()
    good_share = serializers.FloatField(allow_null=True, help_text="good / (good + bad); null without ratings.")


class VersionBurdenSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    jobs = serializers.IntegerField(help_text="Jobs that ran with this version.")
    edits = EditsSerializer()
    approval = ApprovalSerializer()
    review = ReviewSerializer()
    ratings = RatingsSerializer()


class TemplateBurdenSerializer(serializers.Serializer):
    template = serializers.CharField(help_text="The template's slug.")
    kind = serializers.CharField()
    versions = VersionBurdenSerializer(many=True)


class TemplateBurdenReportSerializer(serializers.Serializer):
    templates = TemplateBurdenSerializer(many=True)


EXAMPLE = OpenApiExample(
    "Editor burden",
    response_only=True,
    value={
        "templates": [
            {
                "template": "headline",
                "kind": "headline",
                "versions": [
                    {
                        "version": 2,
                        "jobs": 40,
                        "edits": {
                            "jobs": 12,
                            "outputs": 60,
                            "edited": 9,
                            "edited_share": 0.15,
                            "edited_jobs": 7,
                            "change_ratio": 0.22,
                        },
                        "approval": {"jobs": 12, "median_s": 1820.0, "p90_s": 7400.0},
                        "review": {"jobs": 14, "decisions": 16, "sent_back": 4, "rejection_rate": 0.25},
                        "ratings": {"jobs": 20, "good": 30, "bad": 6, "good_share": 0.8333},
                    }
                ],
            }
        ]
    },
)


class TemplateBurdenApi(APIView):
    permission_classes = [IsAuthenticated, CuratesTemplates]

    @extend_schema(
        parameters=[TemplateBurdenQuerySerializer],
        responses=TemplateBurdenReportSerializer,
        examples=[EXAMPLE],
        summary="Editor burden per template version: edits, time to approval, rejections, ratings (curators only)",
    )
    def get(self, request):
        query = TemplateBurdenQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        template = None
        if slug := query.validated_data.get("template"):
            template = selectors.template_by_slug(slug)
            if template is None:
                raise ValidationError({"template": [f"No template {slug!r}."]})
        grouped: dict[str, dict] = {}
        for row in selectors.version_burden(template=template):
            entry = grouped.setdefault(
                row["template"], {"template": row["template"], "kind": row["kind"], "versions": []}
            )
            entry["versions"].append(row)
        return Response(TemplateBurdenReportSerializer({"templates": list(grouped.values())}).data)
