"""The OpenAPI schema, fuzzed: schemathesis generates requests for every operation from the schema itself
(bounded examples), on a key whose rate limit does not interfere, and every answer must be what the schema
says (status code, content type, headers, body), never a server error; and the two POSTs must accept a fair
share of what their schema allows (a schema looser than the validation would have most of it refused)."""

from collections import Counter

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from generation.models import Job

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
POSTS = {("POST", "/api/v1/jobs/"), ("POST", "/api/v1/jobs/batch/")}


@pytest.fixture
def api_schema(db):
    # Requests run in this process, on the test's database connection: keep Django from closing it after
    # each request (its test client does the same).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    # Built here, not at import: the application reads its middleware settings (plain HTTP in tests) when made.
    yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def unthrottled(user, settings):
    """The fuzzer is not a client to throttle, nor to hold to a daily quota: its requests must reach the views."""
    user.api_keys.update(requests_per_minute=1_000_000)
    settings.AIGC = {**settings.AIGC, "TOKENS_PER_DAY": 10**12}


def test_every_operation_answers_as_its_schema_says(api_schema, api_key, unthrottled):
    """Each operation in turn (schemathesis' pytest plugin does not run under this pytest, so its strategies
    drive hypothesis here directly), with every response-conformance check."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 9
    answers: dict[tuple[str, str], Counter] = {}

    for operation in operations:
        seen = answers.setdefault((operation.method.upper(), operation.path), Counter())
        examples = 60 if (operation.method.upper(), operation.path) in POSTS else 25

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def check(case):
            response = case.call(headers={"Authorization": f"Bearer {api_key}"})
            case.validate_response(response, checks=CHECKS)
            # Acceptance is counted for JSON bodies: the upload form's schema cannot say what a CSV holds. A 409
            # (the fuzzer reusing an Idempotency-Key with another body) is the API keeping its word, not a refusal.
            if case.media_type in (None, "application/json") and response.status_code != 409:
                seen["accepted" if response.status_code < 300 else "refused"] += 1  # noqa: B023 - run in this iteration

        check()

    for operation in POSTS:
        counts = answers[operation]
        share = counts["accepted"] / (counts["accepted"] + counts["refused"])
        assert share >= 0.5, (
            f"{operation}: only {share:.0%} of the requests its schema allows are accepted ({dict(counts)})"
        )
    assert Job.objects.exists()


def test_an_empty_job_page_matches_the_schema(api, api_schema):
    """The answer the fuzzer first caught: no jobs in the range is a page with no results, not a list."""
    response = api.get(
        "/api/v1/jobs/", {"created_after": "2001-01-01T00:00:00Z", "created_before": "2001-01-02T00:00:00Z"}
    )
    assert response.json() == {"next": None, "previous": None, "results": []}
    page = api_schema["/api/v1/jobs/"]["GET"].definition.raw["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    component = api_schema.raw_schema["components"]["schemas"][page["$ref"].rsplit("/", 1)[1]]
    assert set(component["required"]) == {"next", "previous", "results"}


def test_the_job_body_schema_is_the_templates(api_schema):
    """Kinds and templates with their own inputs, known params with this deployment's bounds, no other field."""
    schemas = api_schema.raw_schema["components"]["schemas"]
    branches = {branch["title"]: branch for branch in schemas["JobCreate"]["oneOf"]}
    headline = branches["Kind headline (template headline)"]
    assert headline["required"] == ["kind", "inputs"] and headline["additionalProperties"] is False
    assert headline["properties"]["inputs"]["required"] == ["text"]
    assert headline["properties"]["inputs"]["additionalProperties"] is False
    assert "Template seo-title" in branches
    params = schemas["JobParams"]
    assert params["additionalProperties"] is False
    assert set(params["properties"]) == {"max_new_tokens", "temperature", "top_p", "n", "seed", "stop"}
    assert params["properties"]["n"]["maximum"] == 8 and params["properties"]["temperature"]["maximum"] == 2
    batch = api_schema["/api/v1/jobs/batch/"]["POST"].definition.raw["requestBody"]
    assert batch["required"] is True and set(batch["content"]) == {"application/json", "multipart/form-data"}
