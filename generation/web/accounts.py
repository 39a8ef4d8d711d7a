"""Login lockout (django-axes): which address a login comes from, and the page a locked-out login gets; and the
login and password-reset pages, which offer a reset by mail only where mail can go out (EMAIL_URL).

Axes counts failed logins of the studio's and the admin's login forms (both go through
django.contrib.auth.authenticate, where its backend sits). API keys never pass through authenticate, so a
locked-out username or address does not stop that user's editorial tools."""

from __future__ import annotations

import math
from datetime import timedelta

from axes.helpers import get_client_parameters, get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def client_ip(request: HttpRequest) -> str | None:
    """The client's address. Behind the TLS proxy (DJANGO_BEHIND_TLS_PROXY) every request comes from the proxy,
    so one person's failures would lock everyone: there the address is the last X-Forwarded-For entry, the one
    the proxy itself appended (earlier entries are whatever the client sent)."""
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR")


def _locked_until(request: HttpRequest, credentials: dict | None, cool_off: timedelta):
    """When the lockout that refused this request ends: the cool-off after the last counted failure of each
    locked parameter set (username + address by default)."""
    username = get_client_username(request, credentials)
    ip_address = getattr(request, "axes_ip_address", None) or client_ip(request)
    user_agent = getattr(request, "axes_user_agent", request.META.get("HTTP_USER_AGENT", ""))
    limit, latest = get_failure_limit(request, credentials), None
    for params in get_client_parameters(username, ip_address, user_agent, request, credentials):
        locked = AccessAttempt.objects.filter(**params, failures_since_start__gte=limit)
        last = locked.aggregate(last=Max("attempt_time"))["last"]
        latest = max(filter(None, (latest, last)), default=None)
    return (latest or timezone.now()) + cool_off


def lockout_response(request: HttpRequest, original_response=None, credentials: dict | None = None) -> HttpResponse:
    """429 with the studio's page saying when to try again (and a Retry-After header for scripts). Axes's async
    middleware passes the credentials in the second place, so they are read from the request when missing."""
    if not isinstance(credentials, dict):
        credentials = original_response if isinstance(original_response, dict) else None
        credentials = credentials or getattr(request, "axes_credentials", None)
    cool_off = get_cool_off(request) or timedelta(0)
    until = _locked_until(request, credentials, cool_off)
    seconds = max(1, math.ceil((until - timezone.now()).total_seconds()))
    context = {"until": until, "minutes": max(1, math.ceil(seconds / 60))}
    response = render(request, "registration/locked_out.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response


class LoginView(auth_views.LoginView):
    """Django's login page, told whether a forgotten password can be reset by mail here."""

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "reset_by_mail": settings.PASSWORD_RESET_BY_MAIL}


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset by mail where mail can go out. Elsewhere a 404 page saying to ask an administrator, and
    nothing sent: Django's form would say a mail is on its way that can never arrive."""

    def dispatch(self, request, *args, **kwargs):
        if not settings.PASSWORD_RESET_BY_MAIL:
            return render(request, "registration/password_reset_unavailable.html", status=404)
        return super().dispatch(request, *args, **kwargs)
