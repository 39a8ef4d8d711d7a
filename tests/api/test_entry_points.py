"""The API's three ways in (the REST API, a job's event stream, the OpenAI-compatible `/v1`): the same
`Authorization` headers let a caller in or keep it out on each, and every error they send has one shape."""

import json
import uuid

import pytest
from django.test import Client

from generation import services
from generation.api import streams
from generation.api.authentication import bearer_token, key_from_header
from generation.api.openai_compat import _chunk_error

pytestmark = pytest.mark.django_db

ENVELOPE_KEYS = {"message", "type", "code", "param", "fields"}


def _status(path: str, header: str | None) -> int:
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    return Client().get(path, **extra).status_code


def entry_points() -> dict[str, str]:
    """A GET on each way in; an unknown job's stream answers 404 once the caller is let in, 401 before."""
    return {"rest": "/api/v1/jobs/", "events": f"/api/v1/jobs/{uuid.uuid4()}/events/", "openai": "/v1/models"}


@pytest.fixture
def keys(user, django_user_model):
    live = services.api_key_create(user, name="live")[1]
    revoked_key, revoked = services.api_key_create(user, name="revoked")
    services.api_key_revoke(revoked_key)
    disabled_user = django_user_model.objects.create_user(username="gone", password="pw-gone-12345", is_active=False)
    disabled = services.api_key_create(disabled_user, name="gone")[1]
    return {"live": live, "revoked": revoked, "disabled": disabled}


HEADERS = [
    ("Bearer {live}", True),
    ("bearer  {live} ", True),
    ("BEARER {live}", True),
    (" Bearer {live}", True),
    ("Bearer {revoked}", False),
    ("Bearer {disabled}", False),
    ("Bearer aigc_nope_nope", False),
    ("Bearer garbage", False),
    ("Bearer", False),
    ("Bearer ", False),
    ("Basic {live}", False),
    ("Token {live}", False),
    ("{live}", False),
    ("", False),
    (None, False),
]


@pytest.mark.parametrize("template, accepted", HEADERS)
def test_every_entry_point_accepts_and_refuses_the_same_headers(keys, template, accepted):
    header = None if template is None else template.format(**keys)
    assert (key_from_header(header or "") is not None) == accepted
    outcomes = {name: _status(path, header) for name, path in entry_points().items()}
    refused = {name for name, status in outcomes.items() if status == 401}
    assert refused == (set() if accepted else set(outcomes)), outcomes
    if accepted:
        assert outcomes == {"rest": 200, "events": 404, "openai": 200}


def test_the_bearer_scheme_is_parsed_once():
    assert bearer_token("Bearer abc") == "abc" and bearer_token("bearer   abc  ") == "abc"
    assert bearer_token("Bearer") == "" and bearer_token("Basic abc") is None and bearer_token("") is None


def _error_bodies(user, api_key, keys) -> dict[str, dict]:
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api_key}"}
    revoked = {"HTTP_AUTHORIZATION": f"Bearer {keys['revoked']}"}
    job_events = f"/api/v1/jobs/{uuid.uuid4()}/events/"
    hi = [{"role": "user", "content": "hi"}]

    def post(path, body, **extra):
        return client.post(path, json.dumps(body), content_type="application/json", **extra)

    responses = {
        "rest 401 no credentials": client.get("/api/v1/jobs/"),
        "rest 401 revoked key": client.get("/api/v1/jobs/", **revoked),
        "rest 400 invalid": post("/api/v1/jobs/", {"kind": "headline", "inputs": {}}, **auth),
        "rest 404": client.get(f"/api/v1/jobs/{uuid.uuid4()}/", **auth),
        "events 401 no credentials": client.get(job_events),
        "events 401 revoked key": client.get(job_events, **revoked),
        "events 400 last-event-id": client.get(job_events, HTTP_LAST_EVENT_ID="nope", **auth),
        "events 429 too many streams": streams.too_many_streams(),
        "openai 401 no key": client.get("/v1/models"),
        "openai 401 revoked key": client.get("/v1/models", **revoked),
        "openai 400 invalid": post("/v1/chat/completions", {"model": "default", "messages": []}, **auth),
        "openai 400 not json": client.post("/v1/completions", "{", content_type="application/json", **auth),
        "openai 404 model": post("/v1/chat/completions", {"model": "gpt-9", "messages": hi}, **auth),
    }
    bodies = {}
    for name, response in responses.items():
        assert response.status_code == int(name.split()[1]), (name, response.content)
        bodies[name] = json.loads(response.content)
    chunk = _chunk_error("The job failed.", "failed")  # an error inside a `/v1` stream
    bodies["openai stream chunk"] = json.loads(chunk.removeprefix("data: "))
    return bodies


def test_every_error_body_of_the_three_surfaces_has_the_same_keys(user, api_key, keys):
    for name, body in _error_bodies(user, api_key, keys).items():
        assert set(body) == {"error"}, name
        error = body["error"]
        assert set(error) == ENVELOPE_KEYS, name
        assert isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str), name
        assert isinstance(error["fields"], dict), name
        assert error["param"] is None or error["param"] in error["fields"], name


def test_openai_refusals_keep_their_type_and_code_and_gain_fields(api_key):
    client = Client()
    refused = client.get("/v1/models").json()["error"]
    assert refused["type"] == "invalid_request_error" and refused["code"] == "invalid_api_key"
    bad_role = client.post(
        "/v1/chat/completions",
        json.dumps({"model": "default", "messages": [{"role": "robot", "content": "hi"}]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_key}",
    ).json()["error"]
    assert bad_role["param"] == "messages.0.role" and list(bad_role["fields"]) == ["messages.0.role"]


def test_both_kinds_of_stream_answer_with_the_same_headers():
    async def chunks():
        yield ": waiting\n\n"

    response = streams.event_stream_response(chunks())
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache" and response["X-Accel-Buffering"] == "no"
