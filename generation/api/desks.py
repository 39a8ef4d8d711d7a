"""GET /api/v1/desks/<slug>/usage/: a desk's budgets as they stand and its tokens by day, member and template,
for its desk admins (another desk is a 404, as for anyone who does not manage it)."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors
from ..models import Desk
from . import schema as _schema
from .serializers import BudgetSerializer, StrictSerializer


class DeskUsageQuerySerializer(StrictSerializer):
    days = serializers.IntegerField(required=False, min_value=1, max_value=366, default=30)


class DeskUsageRowSerializer(serializers.Serializer):
    day = serializers.DateField()
    member = serializers.CharField(help_text="The username of the job's owner.")
    template = serializers.CharField()
    jobs = serializers.IntegerField()
    tokens = serializers.IntegerField(help_text="Prompt plus completion; jobs in flight at what they hold.")


class DeskUsageSerializer(serializers.Serializer):
    desk = serializers.CharField()
    organisation = serializers.CharField()
    budgets = BudgetSerializer(many=True, help_text="The organisation's and the desk's budgets with a limit.")
    days = DeskUsageRowSerializer(many=True)


class DeskUsageApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="A desk's usage and budgets (desk admins)",
        parameters=[
            DeskUsageQuerySerializer,
            OpenApiParameter("slug", str, OpenApiParameter.PATH, pattern=_schema.SLUG),
        ],
        responses=DeskUsageSerializer,
    )
    def get(self, request, slug: str):
        query = DeskUsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        desk = Desk.objects.select_related("organisation").filter(slug=slug).first()
        if desk is None or not selectors.may_manage(request.user, desk.pk):
            raise Http404
        report = {
            "desk": desk.slug,
            "organisation": desk.organisation.slug,
            "budgets": [s.as_json() for s in selectors.standings(desk, None)],
            "days": selectors.desk_usage(desk, days=query.validated_data["days"]),
        }
        return Response(DeskUsageSerializer(report).data)
