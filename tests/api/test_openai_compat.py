"""The OpenAI-compatible API, tested with the official `openai` client against the real web server (uvicorn)
and a real worker on the bundled model; and its refusals with the Django test client."""

import json

import openai
import pytest
from django.test import Client

from generation.models import Job

STORY = "The city council voted on Tuesday to build a new bridge over the Elm River, at a cost of 40 million dollars."


@pytest.fixture
def client_for(live_server_url, api_key):
    return openai.OpenAI(base_url=f"{live_server_url}/v1", api_key=api_key, max_retries=0, timeout=300)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_models_and_a_chat_completion_run_as_a_job(client_for, user):
    ids = [m.id for m in client_for.models.list().data]
    assert "default" in ids
    reply = client_for.chat.completions.create(
        model="default",
        messages=[
            {"role": "system", "content": "You write headlines."},
            {"role": "user", "content": f"Headline for: {STORY}"},
        ],
        max_tokens=24,
        temperature=0.8,
        seed=11,
        n=2,
        stop=["\n"],
    )
    assert reply.object == "chat.completion" and len(reply.choices) == 2
    assert all(
        c.message.role == "assistant" and c.message.content and "\n" not in c.message.content for c in reply.choices
    )
    assert all(c.finish_reason in ("stop", "length") for c in reply.choices)
    job = Job.objects.get(owner=user)  # stored, in the user's history
    assert job.template.slug == "chat" and job.messages[0]["content"] == "You write headlines."
    assert job.params["seed"] == 11 and job.params["stop"] == ["\n"] and job.params["n"] == 2
    assert reply.usage.prompt_tokens == job.prompt_tokens and reply.usage.completion_tokens == job.completion_tokens
    assert [c.message.content for c in reply.choices] == [o.text for o in job.outputs.all()]
    # The same seed replays the same text.
    again = client_for.chat.completions.create(
        model="default",
        messages=[
            {"role": "system", "content": "You write headlines."},
            {"role": "user", "content": f"Headline for: {STORY}"},
        ],
        max_tokens=24,
        temperature=0.8,
        seed=11,
        n=2,
        stop=["\n"],
    )
    assert [c.message.content for c in again.choices] == [c.message.content for c in reply.choices]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_streamed_chat_and_completions(client_for, user):
    stream = client_for.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "Write two sentences about bridges."}],
        max_tokens=40,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    job = Job.objects.get(owner=user)
    assert len([p for p in pieces if p]) > 1, "text arrives in pieces"
    assert "".join(pieces) == job.outputs.get().text and finish in ("stop", "length")
    assert usage.completion_tokens == job.completion_tokens

    done = client_for.completions.create(model="default", prompt="Name a famous bridge.", max_tokens=16, temperature=0)
    assert done.object == "text_completion" and done.choices[0].text and done.usage.total_tokens > 0
    streamed = client_for.completions.create(
        model="default", prompt="Name a famous bridge.", max_tokens=16, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == done.choices[0].text  # greedy: the same text
    assert Job.objects.filter(owner=user).count() == 3


@pytest.mark.django_db
def test_a_browser_session_is_not_a_credential(user):
    """These views are CSRF-exempt (OpenAI clients send no token), so a cookie must never authenticate them."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/v1/models").status_code == 401
    for path, body in (
        ("/v1/chat/completions", {"model": "default", "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/completions", {"model": "default", "prompt": "hi"}),
    ):
        response = client.post(path, json.dumps(body), content_type="application/json")
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_refusals_name_the_field_in_openai_shape(api_key):
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api_key}"}

    def post(path, body, **extra):
        return client.post(path, json.dumps(body), content_type="application/json", **{**auth, **extra})

    assert client.get("/v1/models").status_code == 401
    assert post("/v1/chat/completions", {"model": "default", "messages": []}).json()["error"]["param"] == "messages"
    bad_role = post("/v1/chat/completions", {"model": "default", "messages": [{"role": "robot", "content": "hi"}]})
    assert bad_role.status_code == 400 and bad_role.json()["error"]["param"] == "messages.0.role"
    too_many = post(
        "/v1/chat/completions", {"model": "default", "messages": [{"role": "user", "content": "hi"}], "n": 99}
    )
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "n"
    unknown = post("/v1/chat/completions", {"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert post("/v1/completions", {"model": "default", "prompt": ["a", "b"]}).json()["error"]["param"] == "prompt"
    assert client.post("/v1/completions", "{", content_type="application/json", **auth).status_code == 400
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_json_that_python_would_choke_on_is_a_400_naming_where(api_key):
    """A body nested past the interpreter's stack (a RecursionError in json), or holding a NUL that PostgreSQL
    cannot store, is refused like any other bad field: 400 in OpenAI's shape, never a 500."""
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api_key}"}
    deep = b'{"model": "default", "messages": [{"role": "user", "content": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}"
    nul = b'{"model": "default", "messages": [{"role": "user", "content": "a\\u0000b"}]}'
    for body, param in ((deep, "messages.0.content"), (nul, "messages.0.content")):
        response = client.post("/v1/chat/completions", body, content_type="application/json", **auth)
        assert response.status_code == 400, response.content[:300]
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"].startswith(param), error
    assert Job.objects.count() == 0
