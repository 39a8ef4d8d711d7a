from django.urls import path

from . import review, streams, views
from .burden import TemplateBurdenApi
from .desks import DeskUsageApi
from .evaluation import ExperimentDetailApi, ExperimentListCreateApi
from .notifications import NotificationListApi, NotificationReadApi
from .training import TrainingDataApi, TrainingRunCancelApi, TrainingRunDetailApi, TrainingRunListCreateApi

urlpatterns = [
    path("jobs/", views.JobListCreateApi.as_view(), name="api-jobs"),
    path("jobs/<uuid:job_id>/", views.JobDetailApi.as_view(), name="api-job-detail"),
    path("jobs/<uuid:job_id>/cancel/", views.JobCancelApi.as_view(), name="api-job-cancel"),
    path("jobs/<uuid:job_id>/events/", streams.job_events, name="api-job-events"),
    path("jobs/<uuid:job_id>/review/", review.JobReviewApi.as_view(), name="api-job-review"),
    path("jobs/<uuid:job_id>/outputs/<int:index>/", review.OutputDetailApi.as_view(), name="api-job-output"),
    path(
        "jobs/<uuid:job_id>/outputs/<int:index>/choose/", review.OutputChooseApi.as_view(), name="api-job-output-choose"
    ),
    path("approved/", review.ApprovedFeedApi.as_view(), name="api-approved"),
    path("notifications/", NotificationListApi.as_view(), name="api-notifications"),
    path("notifications/read/", NotificationReadApi.as_view(), name="api-notifications-read"),
    path("usage/", views.UsageApi.as_view(), name="api-usage"),
    path("usage/templates/", TemplateBurdenApi.as_view(), name="api-usage-templates"),
    path("desks/<slug:slug>/usage/", DeskUsageApi.as_view(), name="api-desk-usage"),
    path("jobs/batch/", views.BatchCreateApi.as_view(), name="api-batches"),
    path("jobs/batch/<uuid:batch_id>/", views.BatchDetailApi.as_view(), name="api-batch-detail"),
    path("templates/", views.TemplateListApi.as_view(), name="api-templates"),
    path("templates/<slug:slug>/", views.TemplateDetailApi.as_view(), name="api-template-detail"),
    path("templates/<slug:slug>/experiments/", ExperimentListCreateApi.as_view(), name="api-experiments"),
    path("templates/<slug:slug>/training-data/", TrainingDataApi.as_view(), name="api-training-data"),
    path("templates/<slug:slug>/training-runs/", TrainingRunListCreateApi.as_view(), name="api-training-runs"),
    path(
        "templates/<slug:slug>/training-runs/<uuid:run_id>/",
        TrainingRunDetailApi.as_view(),
        name="api-training-run-detail",
    ),
    path(
        "templates/<slug:slug>/training-runs/<uuid:run_id>/cancel/",
        TrainingRunCancelApi.as_view(),
        name="api-training-run-cancel",
    ),
    path(
        "templates/<slug:slug>/experiments/<uuid:experiment_id>/",
        ExperimentDetailApi.as_view(),
        name="api-experiment-detail",
    ),
]
