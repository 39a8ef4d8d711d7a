"""The OpenAPI schema, fuzzed: schemathesis generates requests for every operation from the schema itself
(bounded examples), on a key whose rate limit does not interfere, and every answer must be what the schema
says (status code, content type, headers, body), never a server error. A job body is described generically
(a template's inputs are checked by the server, not enumerated), so what a client relies on is checked
directly: each listed template's inputs, as GET /api/v1/templates/ gives them, make a body the schema allows
and the server accepts."""

import json
from collections import Counter

import jsonschema
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

from generation.models import Job, Kind, PromptTemplate

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
POSTS = {("POST", "/api/v1/jobs/"), ("POST", "/api/v1/jobs/batch/")}
# These answer when a worker has run the job (tests/api/test_openai_compat.py runs them): fuzzed, a body naming a
# served model would wait for one. Their schema is checked below.
WAITS_FOR_A_WORKER = {"/v1/chat/completions", "/v1/completions"}


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
    operations = [o for o in operations if o.path not in WAITS_FOR_A_WORKER]
    assert len(operations) >= 9
    assert ("GET", "/api/v1/jobs/{job_id}/events/") in {(o.method.upper(), o.path) for o in operations}
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
        assert answers[operation]["accepted"] + answers[operation]["refused"] > 0
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


def test_the_job_body_schema_names_no_template(api_schema):
    """One object for every template (a client generated today survives tomorrow's templates), with every field
    the server takes (desk included), known params with this deployment's bounds, no other field."""
    schemas = api_schema.raw_schema["components"]["schemas"]
    job = schemas["JobCreate"]
    assert "oneOf" not in job and job["additionalProperties"] is False
    assert set(job["properties"]) == {
        "kind",
        "template",
        "inputs",
        "params",
        "desk",
        "label",
        "version",
        "callback_url",
    }
    assert job["properties"]["inputs"]["additionalProperties"] == {"oneOf": [{"type": "string"}, {"type": "number"}]}
    slugs = set(PromptTemplate.objects.values_list("slug", flat=True)) - {kind for kind, _ in Kind.choices}
    assert slugs and not any(f'"{slug}"' in json.dumps(api_schema.raw_schema) for slug in slugs)
    params = schemas["JobParams"]
    assert params["additionalProperties"] is False
    assert set(params["properties"]) == {"max_new_tokens", "temperature", "top_p", "n", "seed", "stop"}
    assert params["properties"]["n"]["maximum"] == 8 and params["properties"]["temperature"]["maximum"] == 2
    batch = api_schema["/api/v1/jobs/batch/"]["POST"].definition.raw["requestBody"]
    assert batch["required"] is True and set(batch["content"]) == {"application/json", "multipart/form-data"}


def _valid_value(variable: dict):
    if variable["type"] == "number":
        return variable.get("min", 1)
    if variable["type"] == "choice":
        return variable["choices"][0]
    if variable["name"] == "code":  # the docstring template parses its code as Python
        return "def bridge():\n    return 1\n"
    return "The council voted to build a bridge."[: variable.get("max_length") or None]


def test_each_listed_template_takes_the_body_its_listing_describes(api, api_schema, unthrottled):
    """What a client does with the generic schema: read a template's variables from GET /api/v1/templates/, send
    them as `inputs`. The body is one the schema allows, and the server accepts it; a missing required input is
    a 400 naming `inputs.<name>`."""
    validator = jsonschema.Draft4Validator(
        {"$ref": "#/components/schemas/JobCreate", "components": api_schema.raw_schema["components"]}
    )
    templates = api.get("/api/v1/templates/").json()
    assert len(templates) >= 4
    for template in templates:
        inputs = {v["name"]: _valid_value(v) for v in template["variables"] if v["required"]}
        body = {"template": template["slug"], "inputs": inputs, "params": {"max_new_tokens": 8}}
        validator.validate(body)
        response = api.post("/api/v1/jobs/", body, format="json")
        assert response.status_code == 202, (template["slug"], response.json())
        if inputs:
            missing = next(iter(inputs))
            body["inputs"] = {k: v for k, v in inputs.items() if k != missing}
            validator.validate(body)
            response = api.post("/api/v1/jobs/", body, format="json")
            assert response.status_code == 400 and response.json()["error"]["param"] == f"inputs.{missing}"


def test_the_schema_documents_the_event_stream_and_the_openai_api(api_schema):
    raw = api_schema.raw_schema
    events = raw["paths"]["/api/v1/jobs/{job_id}/events/"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    assert {("header", "Last-Event-ID"), ("query", "last_event_id")} <= {
        (p["in"], p["name"]) for p in events["parameters"]
    }
    assert all(f"`{event}`" in events["description"] for event in ("delta", "replace", "done", "error"))
    chat = raw["paths"]["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChatCompletionRequest"
    }
    assert set(chat["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert raw["paths"]["/v1/completions"]["post"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Completion"
    }
    assert raw["paths"]["/v1/models"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ModelList"
    }
    components = raw["components"]["schemas"]
    for name in ("ChatCompletionRequest", "CompletionRequest", "ChatCompletion", "Completion", "ModelList"):
        assert name in components
    for operation in (events, chat):
        assert operation["security"] == [{"ApiKey": []}]


def test_the_openai_error_answers_are_the_documented_ones(api_schema, api_key, unthrottled):
    """The /v1 answers that need no worker, against their schema: a bad body, an unknown model, no key."""
    for path, body in (
        ("/v1/chat/completions", {"model": "gpt-nothing", "messages": [{"role": "user", "content": "Hi"}]}),
        ("/v1/chat/completions", {"model": "x", "messages": []}),
        ("/v1/completions", {"model": "gpt-nothing", "prompt": "Hi"}),
    ):
        operation = api_schema[path]["POST"]
        case = operation.Case(body=body, media_type="application/json")
        response = case.call(headers={"Authorization": f"Bearer {api_key}"})
        assert response.status_code in (400, 404)
        case.validate_response(response, checks=CHECKS)
    case = api_schema["/v1/models"]["GET"].Case()
    response = case.call(headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 200
    case.validate_response(response, checks=CHECKS)
