from django.urls import path

from . import views

urlpatterns = [
    path("jobs/", views.JobListCreateApi.as_view(), name="api-jobs"),
    path("jobs/<uuid:job_id>/", views.JobDetailApi.as_view(), name="api-job-detail"),
]
