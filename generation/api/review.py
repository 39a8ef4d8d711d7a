"""The review API: choose candidates, edit and rate them, submit, approve and send back; and the approved feed a
CMS polls. Thin: the services decide who may do what (the studio's rules), so the two can never disagree.

Jobs are found as the studio finds them: the owner's own, or, for a reviewer, their desks' jobs in review or
approved; anything else is a 404. A role that may not do something gets a 403, bad input a 400 naming its field."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import Http404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from ..models import Job
from .parsers import SafeJSONParser
from .serializers import (
    REVIEW_ACTIONS,
    ApprovedQuerySerializer,
    JobOutputSerializer,
    JobPageSerializer,
    JobSerializer,
    OutputChangeSerializer,
    ReviewActionSerializer,
)
from .views import JOB, approved_feed

INDEX = OpenApiParameter(
    "index", {"type": "integer", "minimum": 0}, OpenApiParameter.PATH, description="The candidate's index."
)
CHOSEN_JOB = {
    **JOB,
    "review_state": "draft",
    "approved_at": None,
    "chosen": [1],
    "final_texts": ["Elm River bridge approved: work starts in spring"],
    "outputs": [
        JOB["outputs"][0],
        {
            **JOB["outputs"][1],
            "final_text": "Elm River bridge approved: work starts in spring",
            "edited_at": "2026-11-23T09:10:00Z",
            "chosen": True,
        },
    ],
}


def _job(request, job_id) -> Job:
    job = selectors.job_for_page(request.user, job_id)
    if job is None:  # another user's job (or another desk's, or a draft not yours) is as good as missing
        raise Http404
    return job


def _output(job: Job, index: int):
    # Among the prefetched outputs: an index out of any column's range is a 404, not a database error.
    output = next((o for o in job.outputs.all() if o.index == index), None)
    if output is None:
        raise Http404
    return output


def _fresh(job: Job, request) -> Response:
    """The job as it is now (the caller may no longer see it through the queue: one sent back, say)."""
    job = Job.objects.select_related("template", "template_version", "desk").prefetch_related("outputs").get(pk=job.pk)
    return Response(JobSerializer(job, context={"request": request}).data)


def _renamed(exc: DjangoValidationError, names: dict[str, str]) -> ValidationError:
    """A service's field names as this API calls them (the service says `text`, the API `final_text`)."""
    return ValidationError({names.get(k, k): v for k, v in exc.message_dict.items()})


class OutputChooseApi(APIView):
    @extend_schema(
        operation_id="v1_jobs_outputs_choose",
        request=None,
        parameters=[INDEX],
        responses=JobSerializer,
        examples=[OpenApiExample("Candidate 1 chosen", value=CHOSEN_JOB, response_only=True)],
        summary="Choose a candidate (several may be chosen): the owner in a draft, a reviewer in review",
    )
    def post(self, request, job_id, index):
        return self._set(request, job_id, index, True)

    @extend_schema(
        operation_id="v1_jobs_outputs_unchoose",
        request=None,
        parameters=[INDEX],
        responses=JobSerializer,
        summary="Take back the choice of a candidate",
    )
    def delete(self, request, job_id, index):
        return self._set(request, job_id, index, False)

    def _set(self, request, job_id, index, chosen: bool) -> Response:
        job = _job(request, job_id)
        services.output_choose(_output(job, index), user=request.user, chosen=chosen)
        return _fresh(job, request)


class OutputDetailApi(APIView):
    parser_classes = [SafeJSONParser]
    body_required = True  # (the schema)

    @extend_schema(
        operation_id="v1_jobs_outputs_retrieve",
        parameters=[INDEX],
        responses=JobOutputSerializer,
        examples=[OpenApiExample("Chosen and edited", value=CHOSEN_JOB["outputs"][1], response_only=True)],
        summary="Get one candidate",
    )
    def get(self, request, job_id, index):
        return Response(JobOutputSerializer(_output(_job(request, job_id), index)).data)

    @extend_schema(
        operation_id="v1_jobs_outputs_update",
        request=OutputChangeSerializer,
        parameters=[INDEX],
        responses=JobSerializer,
        examples=[
            OpenApiExample(
                "Edit and rate",
                request_only=True,
                value={"final_text": "Elm River bridge approved: work starts in spring", "rating": 1},
            ),
            OpenApiExample("Edited", value=CHOSEN_JOB, response_only=True),
        ],
        summary="Edit a candidate's final text (the owner in a draft, a reviewer in review: logged) and/or rate it",
    )
    def patch(self, request, job_id, index):
        job = _job(request, job_id)  # before the body is read: a job not yours is a 404 whatever was sent
        output = _output(job, index)
        payload = OutputChangeSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        change = payload.validated_data
        try:
            with transaction.atomic():  # both or neither
                if "final_text" in change:
                    services.output_edit(output, user=request.user, text=change["final_text"])
                if "rating" in change:
                    services.feedback_set(
                        output, user=request.user, rating=change["rating"], comment=change.get("comment", "")
                    )
        except DjangoValidationError as exc:
            raise _renamed(exc, {"text": "final_text"}) from None
        return _fresh(job, request)


class JobReviewApi(APIView):
    parser_classes = [SafeJSONParser]
    body_required = True  # (the schema)

    @extend_schema(
        operation_id="v1_jobs_review",
        request=ReviewActionSerializer,
        responses=JobSerializer,
        examples=[
            OpenApiExample("Submit", request_only=True, value={"action": "submit", "note": "Candidate 2, tightened."}),
            OpenApiExample("Send back", request_only=True, value={"action": "send_back", "note": "Check the cost."}),
            OpenApiExample(
                "Approved",
                value={**CHOSEN_JOB, "review_state": "approved", "approved_at": "2026-11-23T09:30:00Z"},
                response_only=True,
            ),
        ],
        summary="Move a job through review: submit, approve or send back (roles and desks as in the studio)",
    )
    def post(self, request, job_id):
        job = _job(request, job_id)  # before the body is read: a job not yours is a 404 whatever was sent
        payload = ReviewActionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        to_state = REVIEW_ACTIONS[payload.validated_data["action"]]
        try:
            services.review_move(job, user=request.user, to_state=to_state, note=payload.validated_data.get("note", ""))
        except DjangoValidationError as exc:
            raise _renamed(exc, {"to_state": "action"}) from None
        return _fresh(job, request)


class ApprovedFeedApi(APIView):
    @extend_schema(
        operation_id="v1_approved_list",
        parameters=[ApprovedQuerySerializer],
        responses=JobPageSerializer,
        examples=[
            OpenApiExample(
                "Approved since the last poll",
                response_only=True,
                value={
                    "next": None,
                    "previous": None,
                    "results": [{**CHOSEN_JOB, "review_state": "approved", "approved_at": "2026-11-23T09:30:00Z"}],
                },
            )
        ],
        summary="The approved feed (the same as GET /api/v1/jobs/?review_state=approved): oldest approval first",
        description="Approved jobs you may see (yours, and your desks' as a reviewer), approved after `since` "
        "(exclusive), oldest approval first; each job's `final_texts` are its chosen candidates' final text. "
        "Poll again with the last job's `approved_at` as `since`.",
    )
    def get(self, request):
        query = ApprovedQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = {k: v for k, v in query.validated_data.items() if k not in ("cursor", "page_size")}
        return approved_feed(request, self, **filters)
