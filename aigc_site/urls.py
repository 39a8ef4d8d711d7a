from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from generation.api import openai_compat
from generation.web import accounts
from generation.web import views as generation_views

urlpatterns = [
    path("admin/", admin.site.urls),
    # Login and reset by mail say whether mail can go out (EMAIL_URL); the rest is Django's own.
    path("accounts/login/", accounts.LoginView.as_view(), name="login"),
    path("accounts/password_reset/", accounts.PasswordResetView.as_view(), name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include("generation.api.urls")),
    # OpenAI-compatible: clients use base_url=".../v1" (no trailing slashes, as the openai client sends).
    path("v1/models", openai_compat.models, name="openai-models"),
    path("v1/chat/completions", openai_compat.chat_completions, name="openai-chat-completions"),
    path("v1/completions", openai_compat.completions, name="openai-completions"),
    path("healthz", generation_views.healthz, name="healthz"),
    path("metrics", generation_views.metrics, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file of its own (?script), so the page runs under
    # the Content-Security-Policy with no inline script; its template links our CSS instead of an inline style.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api/swagger_ui.html"),
        name="api-docs",
    ),
    path("", include("generation.urls")),
]
