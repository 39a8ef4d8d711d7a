"""The REST API for editorial tools. Thin: parse, call a service or selector, serialise."""

import re

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from ..models import ApiKey, Kind, ReviewState
from ..services import limits
from . import batches
from . import schema as _schema
from .errors import error_response, flatten
from .parsers import SafeJSONParser
from .serializers import (
    BatchCreateSerializer,
    BatchJobsSerializer,
    BatchSerializer,
    ErrorSerializer,
    JobCreateSerializer,
    JobListQuerySerializer,
    JobPageSerializer,
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


class ApprovedPagination(JobCursorPagination):
    """Oldest approval first, so a CMS reads forward and polls again with the last `approved_at` as `since`."""

    ordering = ("approved_at", "id")


def _member_desk(request, desk: str) -> str:
    if desk and not selectors.desks_of(request.user).filter(slug=desk).exists():
        raise ValidationError({"desk": [f"You are not a member of a desk {desk!r}."]})
    return desk


def approved_feed(request, view, *, desk: str = "", since=None, **filters) -> Response:
    """The approved feed a CMS polls, one implementation behind two URLs (GET /api/v1/jobs/?review_state=approved
    and GET /api/v1/approved/): approved jobs the caller may see (their own, and as a reviewer their desks'),
    approved after `since`, oldest approval first, each with its chosen candidates' final text."""
    jobs = selectors.approved_jobs(request.user, desk=_member_desk(request, desk), since=since)
    jobs = selectors.api_filtered(jobs, **filters)
    paginator = ApprovedPagination()
    page = paginator.paginate_queryset(jobs, request, view=view)
    return paginator.get_paginated_response(JobSerializer(page, many=True, context={"request": request}).data)


CREATE_EXAMPLE = OpenApiExample(
    "Five headlines",
    value={
        "kind": "headline",
        "inputs": {"text": "The city council voted on Tuesday to build a new bridge."},
        "params": {"n": 5, "seed": 7},
        "callback_url": "https://cms.example.com/hooks/aigc",
    },
    request_only=True,
)


JOB = {
    "id": "7eb0c1de-4a57-4c4e-9a86-0f4c8d2b9e11",
    "status": "succeeded",
    "review_state": "draft",
    "approved_at": None,
    "chosen": [],
    "final_texts": [],
    "kind": "headline",
    "template": "headline",
    "template_version": 1,
    "inputs": {"text": "The city council voted on Tuesday to build a new bridge."},
    "params": {"max_new_tokens": 32, "temperature": 0.8, "top_p": 0.95, "n": 2, "seed": 7},
    "outputs": [
        {
            "index": 0,
            "text": "Council approves new Elm River bridge",
            "final_text": "Council approves new Elm River bridge",
            "edited_at": None,
            "chosen": False,
        },
        {
            "index": 1,
            "text": "A bridge for the city",
            "final_text": "A bridge for the city",
            "edited_at": None,
            "chosen": False,
        },
    ],
    "usage": {"prompt_tokens": 93, "completion_tokens": 21},
    "timings": {"total_s": 2.4, "first_token_s": 0.6},
    "callback_url": "",
    "batch": None,
    "error": "",
    "model": "SmolLM2-135M-Instruct",
    "backend": "llamacpp",
    "weights_sha256": "b179c952...",
    "adapter_sha256": "",
    "attempts": 1,
    "created_at": "2026-11-23T09:00:00Z",
    "started_at": "2026-11-23T09:00:00Z",
    "finished_at": "2026-11-23T09:00:03Z",
    "html_url": "http://127.0.0.1:8000/jobs/7eb0c1de-4a57-4c4e-9a86-0f4c8d2b9e11/",
}
JOB_EXAMPLE = OpenApiExample("A finished headline job", value=JOB, response_only=True)
PAGE_EXAMPLE = OpenApiExample(
    "A page of jobs",
    value={"next": "http://127.0.0.1:8000/api/v1/jobs/?cursor=cD0yMDI2", "previous": None, "results": [JOB]},
    response_only=True,
)
ERROR_EXAMPLE = OpenApiExample(
    "A bad input",
    status_codes=["400"],
    response_only=True,
    value={
        "error": {
            "message": "inputs.text: This field is required.",
            "type": "invalid_request_error",
            "code": "invalid",
            "param": "inputs.text",
            "fields": {"inputs.text": ["This field is required."]},
        }
    },
)


class JobListCreateApi(APIView):
    parser_classes = [SafeJSONParser]  # a job body nests objects: no form encoding can carry it
    body_required = True  # for POST (the schema)

    @extend_schema(
        operation_id="v1_jobs_list",
        parameters=[JobListQuerySerializer],
        responses=JobPageSerializer,
        examples=[PAGE_EXAMPLE],
        summary="List your jobs (newest first); with review_state=approved, the approved feed (oldest approval first)",
        description="A cursor page of your jobs, newest first. With `review_state=approved` it is the approved feed "
        "a CMS polls (the same as GET /api/v1/approved/): approved jobs you may see, yours and, as a reviewer, "
        "your desks', oldest approval first, `since` an approval time (exclusive); each job's `final_texts` are "
        "its chosen candidates' final text. Poll again with the last job's `approved_at` as `since`.",
    )
    def get(self, request):
        query = JobListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = {k: v for k, v in query.validated_data.items() if k not in ("cursor", "page_size")}
        if filters.get("review_state") == ReviewState.APPROVED:
            del filters["review_state"]
            return approved_feed(request, self, **filters)
        if "since" in filters:
            raise ValidationError({"since": ["An approval time: use it with review_state=approved."]})
        filters["desk"] = _member_desk(request, filters.get("desk", ""))
        jobs = selectors.api_jobs(request.user, **filters)
        paginator = JobCursorPagination()
        page = paginator.paginate_queryset(jobs, request, view=self)
        return paginator.get_paginated_response(JobSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(
        request=JobCreateSerializer,
        responses={
            202: JobSerializer,
            200: OpenApiResponse(
                JobSerializer, description="A retry with the same Idempotency-Key and body: the job it created"
            ),
            409: OpenApiResponse(ErrorSerializer, description="Idempotency-Key reused with another body"),
        },
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Retries with the same key and body return the same job.",
            )
        ],
        examples=[
            CREATE_EXAMPLE,
            OpenApiExample(
                "Queued",
                value={
                    **JOB,
                    "status": "queued",
                    "outputs": [],
                    "usage": {"prompt_tokens": None, "completion_tokens": None},
                },
                response_only=True,
                status_codes=["202"],
            ),
            ERROR_EXAMPLE,
        ],
        summary="Create a job (answered 202; poll it, stream it, or get a webhook)",
    )
    def post(self, request):
        payload = JobCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        fields = dict(payload.validated_data)
        api_key = _signing_key(request, [fields])
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
    @extend_schema(
        responses=JobSerializer,
        examples=[JOB_EXAMPLE],
        summary="Get a job (yours, or, as a reviewer, one of your desks' in review or approved)",
    )
    def get(self, request, job_id):
        job = selectors.job_for_page(request.user, job_id)
        if job is None:
            raise Http404
        return Response(JobSerializer(job, context={"request": request}).data)


class JobCancelApi(APIView):
    @extend_schema(
        request=None,
        responses={200: JobSerializer, 409: OpenApiResponse(ErrorSerializer, description="The job had already ended")},
        examples=[OpenApiExample("Cancelled", value={**JOB, "status": "cancelled", "outputs": []}, response_only=True)],
        summary="Cancel a queued or running job",
    )
    def post(self, request, job_id):
        job = _own_job(request, job_id)
        if not services.job_cancel(job, user=request.user):
            job.refresh_from_db()
            return error_response(f"The job has already ended ({job.status}).", 409, "job_finished")
        job.refresh_from_db()
        return Response(JobSerializer(job, context={"request": request}).data)


class UsageApi(APIView):
    @extend_schema(
        parameters=[UsageQuerySerializer],
        responses=UsageReportSerializer,
        summary="Your tokens by day and template",
        examples=[
            OpenApiExample(
                "Usage",
                response_only=True,
                value={
                    "tokens_per_day": 500000,
                    "tokens_used_today": 1432,
                    "requests_per_minute": 120,
                    "days": [
                        {
                            "day": "2026-11-23",
                            "template": "headline",
                            "jobs": 3,
                            "prompt_tokens": 279,
                            "completion_tokens": 153,
                            "total_tokens": 432,
                        }
                    ],
                },
            )
        ],
    )
    def get(self, request):
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        api_key = _api_key(request)
        report = {
            "tokens_per_day": limits.tokens_per_day(request.user),
            "tokens_used_today": limits.tokens_used_today(request.user),
            "requests_per_minute": limits.requests_per_minute(api_key) if api_key else None,
            "days": selectors.usage_by_day(request.user, query.validated_data["days"]),
            "budgets": selectors.budgets_of(request.user),
        }
        return Response(UsageReportSerializer(report).data)


class BatchCreateApi(APIView):
    parser_classes = [SafeJSONParser, MultiPartParser]
    body_required = True  # (the schema)

    def initial(self, request, *args, **kwargs):
        # Before authentication: a session's CSRF check reads the form, which would parse (and spool) the body.
        batches.refuse_large_body(request)
        super().initial(request, *args, **kwargs)

    @extend_schema(
        request={"application/json": BatchJobsSerializer, "multipart/form-data": _schema.BATCH_FILE},
        responses={
            202: BatchSerializer,
            413: OpenApiResponse(
                ErrorSerializer,
                description="The body or the file is too large (AIGC_MAX_BATCH_FILE_BYTES); refused before it is read",
            ),
        },
        examples=[
            OpenApiExample(
                "Two summaries",
                request_only=True,
                value={
                    "jobs": [
                        {"kind": "summary", "inputs": {"text": "First story..."}},
                        {"kind": "summary", "inputs": {"text": "Second story..."}},
                    ]
                },
            )
        ],
        summary="Create up to 100 jobs at once: all are queued, or none (errors name the item)",
    )
    def post(self, request):
        payload = BatchCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        parsed = batches.parse_items(payload.validated_data, limit=settings.AIGC["MAX_BATCH_JOBS"])
        items, errors = [], {}
        for i, body in enumerate(parsed.items):
            item = JobCreateSerializer(data=body)
            if item.is_valid():
                items.append(dict(item.validated_data))
            else:
                items.append(None)
                errors.update({f"jobs.{i}.{k}": v for k, v in flatten(item.errors).items()})
        api_key = _signing_key(request, [item for item in items if item])
        try:
            batch = services.batch_create(user=request.user, items=items, api_key=api_key, errors=errors)
        except DjangoValidationError as exc:
            raise ValidationError(_name_items(parsed, exc.message_dict)) from None
        return Response(_batch_body(batch, request), status=status.HTTP_202_ACCEPTED)


def _name_items(parsed: batches.Parsed, errors: dict[str, list[str]]) -> dict[str, list[str]]:
    """ "jobs.<i>.<field>" keys as the request named the item: the same for a JSON list, the file's row and
    column (or line and field) for an upload."""
    named: dict[str, list[str]] = {}
    for key, messages in errors.items():
        match = re.fullmatch(r"jobs\.(\d+)\.(.+)", key)
        if match and int(match[1]) < len(parsed.items):
            key, messages = parsed.name(int(match[1]), match[2], list(messages))
        named.setdefault(key, []).extend(messages)
    return named


class BatchDetailApi(APIView):
    @extend_schema(
        responses=BatchSerializer,
        summary="A batch's aggregate status and its jobs",
        examples=[
            OpenApiExample(
                "Half done",
                response_only=True,
                value={
                    "id": "0b6f...",
                    "status": "running",
                    "total": 2,
                    "created_at": "2026-11-23T09:00:00Z",
                    "counts": {"queued": 0, "running": 1, "succeeded": 1, "failed": 0, "cancelled": 0},
                    "jobs": [JOB],
                },
            )
        ],
    )
    def get(self, request, batch_id):
        batch = selectors.batch_for_user(request.user, batch_id)
        if batch is None:
            raise Http404
        return Response(_batch_body(batch, request))


def _batch_body(batch, request) -> dict:
    jobs = selectors.jobs_visible_to(request.user).filter(batch=batch).order_by("created_at")
    body = {"id": batch.pk, "created_at": batch.created_at, **services.batch_status(batch), "jobs": jobs}
    return BatchSerializer(body, context={"request": request}).data


def _api_key(request) -> ApiKey | None:
    """The key the request came with; None for a browser session."""
    return request.auth if isinstance(request.auth, ApiKey) else None


def _signing_key(request, items: list[dict]) -> ApiKey | None:
    """The request's key, which will sign the items' webhooks; callbacks without a key are refused."""
    api_key = _api_key(request)
    if api_key is None and any(item.get("callback_url") for item in items):
        raise ValidationError(
            {"callback_url": ["Webhooks are signed with an API key's secret: authenticate with a key."]}
        )
    return api_key


def _own_job(request, job_id):
    job = selectors.job_for_user(request.user, job_id)
    if job is None:  # another user's job is indistinguishable from a missing one
        raise Http404
    return job


TEMPLATE = {
    "slug": "headline",
    "kind": "headline",
    "name": "News headlines",
    "description": "Several headline candidates.",
    "is_default": True,
    "labels": {"production": 1, "staging": 1},
    "production_version": 1,
    "variables": [{"name": "text", "type": "text", "label": "Story", "required": True, "max_length": 20000}],
    "default_params": {"max_new_tokens": 32, "temperature": 0.8, "top_p": 0.95, "n": 5},
}
TEMPLATE_EXAMPLE = OpenApiExample("Templates", value=[TEMPLATE], response_only=True)


class TemplateListApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("kind", str, enum=[k for k, _ in Kind.choices])],
        responses=TemplateSerializer(many=True),
        summary="List templates",
        examples=[TEMPLATE_EXAMPLE],
    )
    def get(self, request):
        templates = selectors.templates_listed(request.user).order_by("kind", "slug")
        kind = request.query_params.get("kind")
        if kind:
            templates = templates.filter(kind=kind)
        return Response(TemplateSerializer(templates, many=True).data)


class TemplateDetailApi(APIView):
    @extend_schema(
        responses=TemplateDetailSerializer,
        summary="Get a template with its versions",
        parameters=[OpenApiParameter("slug", str, OpenApiParameter.PATH, pattern=_schema.SLUG)],
        examples=[
            OpenApiExample(
                "Headline template",
                response_only=True,
                value={
                    **TEMPLATE,
                    "versions": [
                        {
                            "number": 1,
                            "labels": ["production", "staging"],
                            "system_prompt": "You are a news editor.",
                            "user_template": "Write one headline for this story: {text}",
                            "variables": TEMPLATE["variables"],
                            "default_params": TEMPLATE["default_params"],
                            "output_format": "headline",
                        }
                    ],
                },
            )
        ],
    )
    def get(self, request, slug):
        template = selectors.templates_with_versions(request.user).filter(slug=slug).first()
        if template is None:  # unknown, or another desk's own
            raise Http404
        return Response(TemplateDetailSerializer(template).data)
