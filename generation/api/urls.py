from django.urls import path

from . import streams, views

urlpatterns = [
    path("jobs/", views.JobListCreateApi.as_view(), name="api-jobs"),
    path("jobs/<uuid:job_id>/", views.JobDetailApi.as_view(), name="api-job-detail"),
    path("jobs/<uuid:job_id>/events/", streams.job_events, name="api-job-events"),
    path("templates/", views.TemplateListApi.as_view(), name="api-templates"),
    path("templates/<slug:slug>/", views.TemplateDetailApi.as_view(), name="api-template-detail"),
]
