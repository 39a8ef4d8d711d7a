from django.urls import path

from .web import desks, review, views

urlpatterns = [
    path("", views.home, name="home"),
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/new/", views.job_new, name="job-new"),
    path("jobs/new/<str:kind>/", views.job_new, name="job-new-kind"),
    path("jobs/<uuid:job_id>/", views.job_detail, name="job-detail"),
    path("jobs/<uuid:job_id>/state/", views.job_state, name="job-state"),
    path("jobs/<uuid:job_id>/rerun/", views.job_rerun, name="job-rerun"),
    path("jobs/<uuid:job_id>/regenerate/", views.job_regenerate, name="job-regenerate"),
    path("jobs/<uuid:job_id>/cancel/", views.job_cancel, name="job-cancel"),
    path("jobs/<uuid:job_id>/review/", views.job_review, name="job-review"),
    path("jobs/<uuid:job_id>/download.<str:fmt>", views.job_download, name="job-download"),
    path("jobs/<uuid:job_id>/outputs/<int:index>/feedback/", views.output_feedback, name="output-feedback"),
    path("jobs/<uuid:job_id>/outputs/<int:index>/edit/", views.output_edit, name="output-edit"),
    path("jobs/<uuid:job_id>/outputs/<int:index>/choose/", views.output_choose, name="output-choose"),
    path("review/", review.review_queue, name="review-queue"),
    path("notices/", review.notifications, name="notifications"),
    path("notices/read/", review.notifications_read, name="notifications-read"),
    path("notices/<int:notification_id>/", review.notification_open, name="notification-open"),
    path("desks/", desks.desk_list, name="desk-list"),
    path("desks/<slug:slug>/", desks.desk_detail, name="desk-detail"),
    path("desks/<slug:slug>/budgets/", desks.desk_budgets, name="desk-budgets"),
    path("desks/<slug:slug>/members/", desks.member_add, name="desk-member-add"),
    path("desks/<slug:slug>/members/<int:member_id>/", desks.member_update, name="desk-member-update"),
    path("desks/<slug:slug>/members/<int:member_id>/remove/", desks.member_remove, name="desk-member-remove"),
    path("desks/<slug:slug>/templates/", desks.desk_templates, name="desk-templates"),
    path("desks/<slug:slug>/templates/<slug:template_slug>/", desks.desk_template_edit, name="desk-template-edit"),
    path(
        "desks/<slug:slug>/templates/<slug:template_slug>/label/", desks.desk_template_label, name="desk-template-label"
    ),
    path("desks/<slug:slug>/style/", desks.desk_style, name="desk-style"),
    path("keys/", views.api_keys, name="api-keys"),
    path("health/", views.health_page, name="health"),
    path("keys/<int:key_id>/revoke/", views.api_key_revoke, name="api-key-revoke"),
]
