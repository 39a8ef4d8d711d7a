"""Notices over the API: the caller's own (another user's are never listed nor marked), a cursor page newest first,
and marking them read. The studio's notices page reads the same rows."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from .parsers import SafeJSONParser
from .serializers import StrictSerializer
from .views import JOB, JobCursorPagination

VERBS = ["submitted", "approved", "sent_back", "reopened", "choice_changed", "edited"]


class NotificationSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    verb = serializers.ChoiceField(
        choices=VERBS,
        help_text="submitted (to the desk's reviewers); approved, sent_back, reopened, choice_changed, edited (to the "
        "job's owner, by a reviewer).",
    )
    message = serializers.CharField(help_text="Who did what to which job, in a sentence (plain text: escape it).")
    actor = serializers.SerializerMethodField()
    note = serializers.SerializerMethodField()
    job = serializers.UUIDField(source="job_id", help_text="The job's id: GET /api/v1/jobs/{id}/.")
    html_url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    read_at = serializers.DateTimeField(allow_null=True, help_text="Null while unread.")

    def get_actor(self, notice) -> str | None:
        """The username of who made the move."""
        actor = notice.event.actor if notice.event_id else None
        return actor.get_username() if actor else None

    def get_note(self, notice) -> str:
        """The move's note (the author's on a submission, the reviewer's on a send-back)."""
        return notice.event.note if notice.event_id else ""

    def get_html_url(self, notice) -> str:
        path = reverse("job-detail", args=[notice.job_id])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class NotificationPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="The next page; null on the last.")
    previous = serializers.URLField(allow_null=True, help_text="The previous page; null on the first.")
    results = NotificationSerializer(many=True)


class NotificationQuerySerializer(StrictSerializer):
    unread = serializers.BooleanField(required=False, allow_null=True, default=None, help_text="true: unread only.")
    cursor = serializers.CharField(required=False, help_text="From `next` / `previous` of the previous page.")
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=100)


class NotificationReadSerializer(StrictSerializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=1000, help_text="These notices."
    )
    all = serializers.BooleanField(required=False, default=False, help_text="true: every unread notice of yours.")

    def validate(self, data):
        if bool(data.get("ids")) == bool(data.get("all")):
            raise serializers.ValidationError({"ids": ["Give either `ids` (a non-empty list) or `all: true`."]})
        return data


class NotificationReadResultSerializer(serializers.Serializer):
    marked = serializers.IntegerField(help_text="How many unread notices were marked read.")
    unread = serializers.IntegerField(help_text="How many stay unread.")


NOTICE = {
    "id": 41,
    "verb": "sent_back",
    "message": "reviewer sent “The city council voted on Tuesday to build a new bridge.” back to you. Check the cost.",
    "actor": "reviewer",
    "note": "Check the cost.",
    "job": JOB["id"],
    "html_url": JOB["html_url"],
    "created_at": "2026-11-23T09:30:00Z",
    "read_at": None,
}


class NotificationPagination(JobCursorPagination):
    ordering = ("-created_at", "-id")


class NotificationListApi(APIView):
    @extend_schema(
        operation_id="v1_notifications_list",
        parameters=[NotificationQuerySerializer],
        responses=NotificationPageSerializer,
        examples=[
            OpenApiExample(
                "A page of notices", response_only=True, value={"next": None, "previous": None, "results": [NOTICE]}
            )
        ],
        summary="List your notices (a cursor page, newest first)",
    )
    def get(self, request):
        query = NotificationQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        notices = selectors.notifications_for(request.user)
        unread = query.validated_data.get("unread")
        if unread is not None:
            notices = notices.filter(read_at__isnull=unread)
        paginator = NotificationPagination()
        page = paginator.paginate_queryset(notices, request, view=self)
        return paginator.get_paginated_response(
            NotificationSerializer(page, many=True, context={"request": request}).data
        )


class NotificationReadApi(APIView):
    parser_classes = [SafeJSONParser]
    body_required = True  # (the schema)

    @extend_schema(
        operation_id="v1_notifications_read",
        request=NotificationReadSerializer,
        responses=NotificationReadResultSerializer,
        examples=[
            OpenApiExample("These", request_only=True, value={"ids": [41, 42]}),
            OpenApiExample("All", request_only=True, value={"all": True}),
            OpenApiExample("Marked", response_only=True, value={"marked": 2, "unread": 0}),
        ],
        summary="Mark notices read: these ids (others' ids are ignored), or all of yours",
    )
    def post(self, request):
        payload = NotificationReadSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        ids = None if payload.validated_data.get("all") else payload.validated_data["ids"]
        marked = services.notifications_read(request.user, ids=ids)
        return Response({"marked": marked, "unread": selectors.unread_counts(request.user)["unread"]})
