"""Every route of the site (aigc_site/urls.py), walked from Django's URL resolver, so that a new endpoint without
an access rule fails here: another user's objects are 404, the admin is staff only, every unsafe request from a
browser session needs the CSRF token, and the CSRF-exempt OpenAI-compatible API takes API keys only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern
from rest_framework.views import APIView

from generation import services
from generation.models import ApiKey, Job, JobBatch, JobOutput, JobStatus, Notification


class Route(NamedTuple):
    route: str  # as Django prints it: "jobs/<uuid:job_id>/"
    name: str  # "job-detail", "admin:auth_user_change"; "" when unnamed
    params: tuple[str, ...]
    callback: object

    def __str__(self) -> str:
        return self.route


def _params(pattern) -> tuple[str, ...]:
    return tuple(pattern.converters) if isinstance(pattern, RoutePattern) else tuple(pattern.regex.groupindex)


def _walk(patterns, prefix="", namespace="", params=()):
    for p in patterns:
        names = params + _params(p.pattern)
        if isinstance(p, URLResolver):
            inner = ":".join(n for n in (namespace, p.namespace) if n)
            yield from _walk(p.url_patterns, prefix + str(p.pattern), inner, names)
        else:
            name = f"{namespace}:{p.name}" if namespace and p.name else p.name or ""
            yield Route(prefix + str(p.pattern), name, names, p.callback)


ROUTES = list(_walk(get_resolver().url_patterns))

# Parameters that name an object one user owns (the `objects` fixture makes the victim's), and its parts.
OWNED_PARAMS = {"job_id", "batch_id", "key_id", "notification_id"}
DETAIL_PARAMS = {"index", "fmt"}  # an output of the job, a download format
# Routes with a parameter that names nothing one user owns.
SHARED = {
    "jobs/new/<str:kind>/": "a kind of job, the same for everyone",
    "api/v1/templates/<slug:slug>/": "shared templates: every user reads them (a desk's own: its members only)",
    "accounts/reset/<uidb64>/<token>/": "Django's password reset: a signed one-time token",
    # Experiments belong to a template, not to a user: template curators (staff, or the permission to change
    # templates) read and start them; anyone else gets a 403 (tests/api/test_experiments_api.py).
    "api/v1/templates/<slug:slug>/experiments/": "curators only",
    "api/v1/templates/<slug:slug>/experiments/<uuid:experiment_id>/": "curators only",
    "api/v1/templates/<slug:slug>/training-data/": "curators only",
    # Training runs, like experiments, belong to a template: curators only (tests/api/test_training_api.py).
    "api/v1/templates/<slug:slug>/training-runs/": "curators only",
    "api/v1/templates/<slug:slug>/training-runs/<uuid:run_id>/": "curators only",
    "api/v1/templates/<slug:slug>/training-runs/<uuid:run_id>/cancel/": "curators only",
    # A desk belongs to its organisation: its desk admins manage it, anyone else gets a 404 (tests/web/test_desks.py).
    "desks/<slug:slug>/": "desk admins only",
    "desks/<slug:slug>/budgets/": "desk admins only",
    "desks/<slug:slug>/members/": "desk admins only",
    "desks/<slug:slug>/members/<int:member_id>/": "desk admins only",
    "desks/<slug:slug>/members/<int:member_id>/remove/": "desk admins only",
    "desks/<slug:slug>/templates/": "desk admins only",
    "desks/<slug:slug>/templates/<slug:template_slug>/": "desk admins only",
    "desks/<slug:slug>/templates/<slug:template_slug>/label/": "desk admins only",
    "desks/<slug:slug>/style/": "desk admins only",
    "api/v1/desks/<slug:slug>/usage/": "desk admins only",
}
# CSRF-exempt views outside DRF (whose views enforce CSRF on session requests themselves): they must take API
# keys only, never a browser session.
KEYS_ONLY = {"v1/models", "v1/chat/completions", "v1/completions"}

ADMIN = [r for r in ROUTES if r.route.startswith("admin/")]
OWNED = [r for r in ROUTES if r.params and r not in ADMIN and r.route not in SHARED]
# What a request to a route sends, so that a missing check would write something.
FORM_DATA = {
    "output-feedback": {"rating": "1", "comment": "Not mine."},
    "job-review": {"to_state": "in_review"},
    "output-edit": {"text": "Rewritten by someone else."},
}
METHODS = ("get", "post", "delete")


def test_every_route_with_a_parameter_has_an_access_rule():
    for r in ROUTES:
        if not r.params or r in ADMIN or r.route in SHARED:
            continue
        assert set(r.params) <= OWNED_PARAMS | DETAIL_PARAMS and set(r.params) & OWNED_PARAMS, (
            f"{r.route}: add its parameters to this test's objects, or say in SHARED why nobody owns them"
        )
    assert set(SHARED) <= {r.route for r in ROUTES}, "SHARED names a route that is gone"
    assert len(OWNED) >= 13


def test_only_the_openai_compatible_views_are_csrf_exempt():
    exempt = {
        r.route
        for r in ROUTES
        if getattr(r.callback, "csrf_exempt", False) and not issubclass(getattr(r.callback, "cls", object), APIView)
    }
    assert exempt == KEYS_ONLY


def _path(route: str, values: dict) -> str:
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(values[m.group(1)]), route)  # re_path() groups
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), path)  # path() converters
    path = "/" + path.replace("^", "").replace("$", "")
    assert resolve(path).route.replace("^", "") == route.replace("^", ""), path
    return path


def _snapshot() -> dict:
    """Every row the site keeps, but sessions and when keys were last used (a caller's own key records that)."""
    rows = {}
    for model in apps.get_models():
        if model._meta.label == "sessions.Session":
            continue
        values = list(model._base_manager.order_by("pk").values())
        if model is ApiKey:
            for row in values:
                row.pop("last_used_at")
        rows[model._meta.label] = values
    return rows


def _send(client: Client, method: str, path: str, data: dict, **headers):
    return client.post(path, data, **headers) if method == "post" else getattr(client, method)(path, **headers)


@pytest.fixture
def objects(user, api_key):
    """The victim's objects: a finished job with an output (in draft, so no reviewer sees it), in a batch, and
    an API key. Each route's values point at them."""
    batch = JobBatch.objects.create(owner=user)
    job = services.job_create(user=user, kind="writing", inputs={"topic": "our secret plans"})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, batch=batch)
    JobOutput.objects.create(job=job, index=0, text="The plans, in full.")
    notice = Notification.objects.create(user=user, job=job, verb="approved", message="Your plans were approved.")
    return {
        "job_id": job.pk,
        "notification_id": notice.pk,
        "batch_id": batch.pk,
        "key_id": user.api_keys.get().pk,
        "index": 0,
        "fmt": "md",
        # shared routes, and the admin's own (any values do: nobody but staff gets past its login)
        "kind": "headline",
        "slug": "headline",
        "uidb64": "MQ",
        "token": "set-password",
        "object_id": job.pk,
        "content_type_id": 1,
        "id": user.pk,
        "pk": 1,
        "number": 1,
        "app_label": "generation",
        "url": "anything/",
        "experiment_id": "0b0e7f0e-3a52-4a56-9f57-6f1b8f6a2b11",
        "run_id": "3f2b9c1e-7d4a-4e8b-9a61-0c5d2e7f8a90",
        "member_id": user.memberships.get().pk,
        "template_slug": "headline",  # desk routes (slug "headline" names no desk: a 404 past CSRF)
    }


INTRUDERS = ("editor", "reviewer", "api key")  # a session, a reviewer's session, a key (API routes only)


def _intruder(kind: str, other_user) -> tuple[Client, dict]:
    client = Client()
    if kind == "api key":
        return client, {"HTTP_AUTHORIZATION": f"Bearer {services.api_key_create(other_user, name='theirs')[1]}"}
    if kind == "reviewer":
        other_user.groups.add(Group.objects.get(name="reviewer"))
    client.force_login(other_user)
    return client, {}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "route, intruder",
    [(r, kind) for r in OWNED for kind in INTRUDERS if kind != "api key" or r.route.startswith("api/")],
    ids=str,
)
def test_another_users_object_is_404_and_nothing_changes(route, intruder, objects, user, other_user):
    path = _path(route.route, objects)
    data = FORM_DATA.get(route.name, {})
    client, headers = _intruder(intruder, other_user)
    before = _snapshot()
    answers = {method: _send(client, method, path, data, **headers).status_code for method in METHODS}
    assert _snapshot() == before
    # What the owner is served, anyone else is refused as if it did not exist; what nobody is served is 405.
    owner = Client()
    owner.force_login(user)
    served = {method: _send(owner, method, path, data).status_code for method in METHODS}
    assert any(status not in (404, 405) for status in served.values()), f"the owner is not served {path}: {served}"
    assert answers == {method: 405 if served[method] == 405 else 404 for method in METHODS}


@pytest.mark.django_db
@pytest.mark.parametrize("route", OWNED, ids=str)
def test_without_credentials_it_is_a_login_or_401(route, objects):
    path = _path(route.route, objects)
    before = _snapshot()
    for method in METHODS:
        response = _send(Client(), method, path, FORM_DATA.get(route.name, {}))
        if route.route.startswith("api/"):
            assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer"), (method, path)
        else:
            assert response.status_code in (302, 405), (method, path)
            if response.status_code == 302:
                assert response["Location"].startswith(f"{settings.LOGIN_URL}?next="), (method, path)
    assert _snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize("route", [r for r in ADMIN if r.params], ids=str)
def test_the_admin_is_for_staff_only(route, objects, user):
    path = _path(route.route, objects)
    client = Client()
    client.force_login(user)  # an editor, not staff
    before = _snapshot()
    for method in ("get", "post"):
        response = _send(client, method, path, {})
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), (method, path)
    assert _snapshot() == before


@pytest.fixture
def staff_session(django_user_model):
    """A superuser's browser session that sends no CSRF token: nothing it posts may be accepted."""
    admin = django_user_model.objects.create_superuser(username="boss", password="pw-boss-123", email="b@example.com")
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_a_session_post_without_the_csrf_token_is_refused(route, objects, staff_session):
    path = _path(route.route, objects)
    before = _snapshot()
    if route.route in KEYS_ONLY:  # CSRF-exempt, so the session is not a credential there at all
        answers = {_send(staff_session, method, path, {}).status_code for method in ("get", "post")}
        assert 401 in answers and answers <= {401, 405}, path
    else:
        assert staff_session.post(path, FORM_DATA.get(route.name, {})).status_code == 403, path
    assert _snapshot() == before


def _token(client: Client, page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', client.get(page).content.decode())[1]


@pytest.mark.django_db
def test_forms_post_with_the_token_they_carry(user, django_capture_on_commit_callbacks):
    client = Client(enforce_csrf_checks=True)
    login = {"username": "editor", "password": "pw-editor-123"}
    response = client.post("/accounts/login/", {**login, "csrfmiddlewaretoken": _token(client, "/accounts/login/")})
    assert response.status_code == 302
    token = _token(client, "/jobs/new/headline/")
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/jobs/new/headline/", {"in_text": "A story.", "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and Job.objects.filter(owner=user).count() == 1


FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.IGNORECASE | re.DOTALL)


def test_every_post_form_carries_the_csrf_token():
    templates = [p for d in settings.TEMPLATES[0]["DIRS"] for p in Path(d).rglob("*.html")]
    templates += list(Path(settings.BASE_DIR, "generation", "templates").rglob("*.html"))
    posts = 0
    for template in templates:
        for attrs, body in FORM.findall(template.read_text()):
            if re.search(r"""method\s*=\s*["']?post""", attrs, re.IGNORECASE):
                posts += 1
                assert "{% csrf_token %}" in body, f"{template}: <form{attrs}> has no {{% csrf_token %}}"
    assert posts >= 10
