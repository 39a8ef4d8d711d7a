"""GET /api/v1/usage/templates/: editor burden per template and version, for template curators only."""

import pytest
import schemathesis
from django.contrib.auth.models import Permission
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from rest_framework.test import APIClient
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from generation import services
from tests.support import burden_data

pytestmark = pytest.mark.django_db

URL = "/api/v1/usage/templates/"
CHECKS = [  # as in test_schema.py
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def scenario(user, reviewer):
    return burden_data.build(user, reviewer)


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {services.api_key_create(user, name='burden')[1]}")
    return client


@pytest.fixture
def curator(django_user_model):
    user = django_user_model.objects.create_user(username="curator", password="pw-curator-123")
    user.user_permissions.add(Permission.objects.get(codename="change_prompttemplate"))
    return user


def test_editors_and_reviewers_are_refused_in_the_error_envelope(api, reviewer):
    for client in (api, client_for(reviewer)):
        response = client.get(URL)
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["type"] == "permission_error" and error["code"] == "permission_denied"
        assert "curators" in error["message"]


def test_without_credentials_it_is_401():
    response = APIClient().get(URL)
    assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"


def test_curators_and_staff_see_every_template_and_version(scenario, curator, django_user_model):
    staff = django_user_model.objects.create_user(username="boss", password="pw-boss-123", is_staff=True)
    for client in (client_for(curator), client_for(staff)):
        response = client.get(URL)
        assert response.status_code == 200
        by_slug = {t["template"]: t for t in response.json()["templates"]}
        assert {"burden-article", "burden-other", "headline"} <= set(by_slug)  # seeded templates too, all zero
        article = by_slug["burden-article"]
        assert article["kind"] == "writing" and [v["version"] for v in article["versions"]] == [1, 2, 3]
        v1 = article["versions"][0]
        expected = {k: v for k, v in burden_data.V1.items() if k not in ("template", "kind")}
        assert v1 == {k: pytest.approx(v) if isinstance(v, dict) else v for k, v in expected.items()}
        assert by_slug["burden-other"]["versions"][0]["edits"]["change_ratio"] == 1.0


def test_a_browser_session_of_staff_works_too(scenario, client, django_user_model):
    client.force_login(django_user_model.objects.create_user(username="boss", password="x", is_staff=True))
    assert client.get(URL).status_code == 200


def test_the_template_filter(scenario, curator):
    body = client_for(curator).get(URL, {"template": "burden-other"}).json()
    assert [t["template"] for t in body["templates"]] == ["burden-other"]
    assert body["templates"][0]["versions"][0]["review"] == {
        "jobs": 1,
        "decisions": 2,
        "sent_back": 1,
        "rejection_rate": 0.5,
    }


def test_an_unknown_template_or_parameter_is_a_400_naming_it(scenario, curator):
    client = client_for(curator)
    response = client.get(URL, {"template": "no-such-template"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "template" and "no-such-template" in response.json()["error"]["message"]
    response = client.get(URL, {"template": "not a slug!"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "template"
    response = client.get(URL, {"days": "3"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "days"


def test_a_curators_answers_match_the_schema(scenario, curator):
    """test_schema.py fuzzes every operation with an editor's key (403 here); this fuzzes the 200s."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
        operation = schema[URL]["GET"]
        key = services.api_key_create(curator, name="fuzz")[1]
        curator.api_keys.update(requests_per_minute=1_000_000)
        statuses = []

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
        )
        def check(case):
            response = case.call(headers={"Authorization": f"Bearer {key}"})
            case.validate_response(response, checks=CHECKS)
            statuses.append(response.status_code)

        check()
        assert 200 in statuses  # the full report, nulls (v3) included, matched the schema
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
