"""The REST API for editorial tools. Thin: parse, call a service or selector, serialise."""

from django.http import Http404
from rest_framework import status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from .serializers import JobCreateSerializer, JobSerializer, TemplateDetailSerializer, TemplateSerializer


class JobListCreateApi(APIView):
    def get(self, request):
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(selectors.jobs_visible_to(request.user), request, view=self)
        return paginator.get_paginated_response(JobSerializer(page, many=True, context={"request": request}).data)

    def post(self, request):
        payload = JobCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        job = services.job_create(user=request.user, **payload.validated_data)
        return Response(JobSerializer(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


class JobDetailApi(APIView):
    def get(self, request, job_id):
        job = selectors.job_for_user(request.user, job_id)
        if job is None:  # another user's job is indistinguishable from a missing one
            raise Http404
        return Response(JobSerializer(job, context={"request": request}).data)


class TemplateListApi(APIView):
    def get(self, request):
        templates = selectors.templates_with_versions().order_by("kind", "slug")
        kind = request.query_params.get("kind")
        if kind:
            templates = templates.filter(kind=kind)
        return Response(TemplateSerializer(templates, many=True).data)


class TemplateDetailApi(APIView):
    def get(self, request, slug):
        template = selectors.templates_with_versions().filter(slug=slug).first()
        if template is None:
            raise Http404
        return Response(TemplateDetailSerializer(template).data)
