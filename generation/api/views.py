"""The REST API for editorial tools. Thin: parse, call a service or selector, serialise."""

from django.http import Http404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from django.conf import settings
from rest_framework.parsers import JSONParser, MultiPartParser

from .. import selectors, services
from ..models import ApiKey, Kind
from . import batches
from ..services import limits
from .errors import error_response, flatten
from .serializers import (
    BatchCreateSerializer,
    BatchSerializer,
    JobCreateSerializer,
    JobListQuerySerializer,
    JobSerializer,
    TemplateDetailSerializer,
    TemplateSerializer,
    UsageQuerySerializer,
    UsageReportSerializer,
)


class JobCursorPagination(CursorPagination):
    """Cursor pages stay correct while new jobs arrive (page numbers would shift under the reader)."""

    ordering = "-created_at"
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:  # DRF answers a bad cursor 404; it is a bad parameter
            raise ValidationError({"cursor": ["Invalid cursor: use the `next` or `previous` URL of a page."]}) from None


CREATE_EXAMPLE = OpenApiExample(
    "Five headlines",
    value={"kind": "headline", "inputs": {"text": "The city council voted on Tuesday to build a new bridge."},
           "params": {"n": 5, "seed": 7}, "callback_url": "https://cms.example.com/hooks/aigc"},  # fmt: skip
    request_only=True,
)


class JobListCreateApi(APIView):
    @extend_schema(parameters=[JobListQuerySerializer], responses=JobSerializer(many=True), summary="List your jobs")
    def get(self, request):
        query = JobListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = {k: v for k, v in query.validated_data.items() if k not in ("cursor", "page_size")}
        paginator = JobCursorPagination()
        page = paginator.paginate_queryset(selectors.api_jobs(request.user, **filters), request, view=self)
        return paginator.get_paginated_response(JobSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(
        request=JobCreateSerializer, responses={202: JobSerializer, 200: JobSerializer, 409: OpenApiResponse(description="Idempotency-Key reused with another body")},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, description="Retries with the same key and body return the same job.")],
        examples=[CREATE_EXAMPLE], summary="Create a job (answered 202; poll it, stream it, or get a webhook)",
    )  # fmt: skip
    def post(self, request):
        payload = JobCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        fields = dict(payload.validated_data)
        api_key = request.auth if isinstance(request.auth, ApiKey) else None
        if fields.get("callback_url") and api_key is None:
            raise ValidationError({"callback_url": ["Webhooks are signed with an API key's secret: authenticate with a key."]})
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > 255:
            raise ValidationError({"Idempotency-Key": ["At most 255 characters."]})
        if key:
            try:
                job, created = services.job_create_idempotent(
                    user=request.user, idempotency_key=key, body=request.data, api_key=api_key, **fields
                )
            except services.IdempotencyConflict as exc:
                return error_response(str(exc), 409, "idempotency_conflict", param="Idempotency-Key")
        else:
            job, created = services.job_create(user=request.user, api_key=api_key, **fields), True
        body = JobSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)


class JobDetailApi(APIView):
    @extend_schema(responses=JobSerializer, summary="Get a job")
    def get(self, request, job_id):
        return Response(JobSerializer(_own_job(request, job_id), context={"request": request}).data)


class JobCancelApi(APIView):
    @extend_schema(request=None, responses={200: JobSerializer, 409: OpenApiResponse(description="The job had already ended")},
                   summary="Cancel a queued or running job")  # fmt: skip
    def post(self, request, job_id):
        job = _own_job(request, job_id)
        if not services.job_cancel(job, user=request.user):
            job.refresh_from_db()
            return error_response(f"The job has already ended ({job.status}).", 409, "job_finished")
        job.refresh_from_db()
        return Response(JobSerializer(job, context={"request": request}).data)


class UsageApi(APIView):
    @extend_schema(parameters=[UsageQuerySerializer], responses=UsageReportSerializer, summary="Your tokens by day and template")
    def get(self, request):
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        api_key = request.auth if isinstance(request.auth, ApiKey) else None
        report = {
            "tokens_per_day": limits.tokens_per_day(request.user),
            "tokens_used_today": limits.tokens_used_today(request.user),
            "requests_per_minute": limits.requests_per_minute(api_key) if api_key else None,
            "days": selectors.usage_by_day(request.user, query.validated_data["days"]),
        }
        return Response(UsageReportSerializer(report).data)


class BatchCreateApi(APIView):
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(
        request={"application/json": BatchCreateSerializer, "multipart/form-data": BatchCreateSerializer},
        responses={202: BatchSerializer},
        examples=[OpenApiExample("Two summaries", request_only=True, value={"jobs": [
            {"kind": "summary", "inputs": {"text": "First story..."}}, {"kind": "summary", "inputs": {"text": "Second story..."}}]})],
        summary="Create up to 100 jobs at once: all are queued, or none (errors name the item)",
    )  # fmt: skip
    def post(self, request):
        payload = BatchCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        raw = batches.parse_items(payload.validated_data, limit=settings.AIGC["MAX_BATCH_JOBS"])
        items, errors = [], {}
        for i, body in enumerate(raw):
            item = JobCreateSerializer(data=body)
            if item.is_valid():
                items.append(dict(item.validated_data))
            else:
                items.append(None)
                errors.update({f"jobs.{i}.{k}": v for k, v in flatten(item.errors).items()})
        api_key = request.auth if isinstance(request.auth, ApiKey) else None
        if api_key is None and any(item and item.get("callback_url") for item in items):
            raise ValidationError({"callback_url": ["Webhooks are signed with an API key's secret: authenticate with a key."]})
        batch = services.batch_create(user=request.user, items=items, api_key=api_key, errors=errors)
        return Response(_batch_body(batch, request), status=status.HTTP_202_ACCEPTED)


class BatchDetailApi(APIView):
    @extend_schema(responses=BatchSerializer, summary="A batch's aggregate status and its jobs")
    def get(self, request, batch_id):
        batch = selectors.batch_for_user(request.user, batch_id)
        if batch is None:
            raise Http404
        return Response(_batch_body(batch, request))


def _batch_body(batch, request) -> dict:
    jobs = selectors.jobs_visible_to(request.user).filter(batch=batch).order_by("created_at")
    body = {"id": batch.pk, "created_at": batch.created_at, **services.batch_status(batch), "jobs": jobs}
    return BatchSerializer(body, context={"request": request}).data


def _own_job(request, job_id):
    job = selectors.job_for_user(request.user, job_id)
    if job is None:  # another user's job is indistinguishable from a missing one
        raise Http404
    return job


class TemplateListApi(APIView):
    @extend_schema(parameters=[OpenApiParameter("kind", str, enum=[k for k, _ in Kind.choices])],
                   responses=TemplateSerializer(many=True), summary="List templates")  # fmt: skip
    def get(self, request):
        templates = selectors.templates_with_versions().order_by("kind", "slug")
        kind = request.query_params.get("kind")
        if kind:
            templates = templates.filter(kind=kind)
        return Response(TemplateSerializer(templates, many=True).data)


class TemplateDetailApi(APIView):
    @extend_schema(responses=TemplateDetailSerializer, summary="Get a template with its versions")
    def get(self, request, slug):
        template = selectors.templates_with_versions().filter(slug=slug).first()
        if template is None:
            raise Http404
        return Response(TemplateDetailSerializer(template).data)
