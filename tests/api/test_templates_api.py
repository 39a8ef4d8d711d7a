"""Templates for editorial tools, and pinning a job to a version or label through the API."""

import pytest

from generation import services
from generation.models import PromptTemplate

pytestmark = pytest.mark.django_db

STORY = "The city council voted on Tuesday to build a new bridge over the Elm River."


def test_list_templates_with_variables_labels_and_defaults(api):
    body = api.get("/api/v1/templates/").json()
    by_slug = {t["slug"]: t for t in body}
    assert len(body) == 12  # the 11 studio defaults and `chat`, behind the OpenAI-compatible API
    headline = by_slug["headline"]
    assert headline["kind"] == "headline" and headline["is_default"] is True
    assert headline["labels"] == {"production": 1, "staging": 1} and headline["production_version"] == 1
    assert headline["variables"][0]["name"] == "text" and headline["variables"][0]["required"] is True
    assert headline["default_params"]["n"] == 5
    assert {t["slug"] for t in api.get("/api/v1/templates/?kind=code").json()} == {
        "code",
        "code-explain",
        "code-docstrings",
    }


def test_template_detail_lists_every_version(api, user):
    template = PromptTemplate.objects.get(slug="summary")
    v1 = template.versions.get()
    v2, _ = services.template_version_create(
        template=template, user=user, **{**v1.content(), "system_prompt": "Be terse."}
    )
    services.template_label_move(template=template, label="staging", version=v2)
    body = api.get("/api/v1/templates/summary/").json()
    assert [v["number"] for v in body["versions"]] == [1, 2]
    assert body["versions"][1]["labels"] == ["staging"] and body["versions"][0]["labels"] == ["production"]
    assert body["versions"][1]["system_prompt"] == "Be terse."
    assert api.get("/api/v1/templates/nope/").status_code == 404


def test_job_pins_a_version_or_follows_a_label(api, user):
    template = PromptTemplate.objects.get(slug="summary")
    v1 = template.versions.get()
    v2, _ = services.template_version_create(
        template=template, user=user, **{**v1.content(), "system_prompt": "Be terse."}
    )
    services.template_label_move(template=template, label="staging", version=v2)
    base = {"template": "summary", "inputs": {"text": STORY}}
    assert api.post("/api/v1/jobs/", base, format="json").json()["template_version"] == 1
    assert api.post("/api/v1/jobs/", {**base, "label": "staging"}, format="json").json()["template_version"] == 2
    assert api.post("/api/v1/jobs/", {**base, "version": 2}, format="json").json()["template_version"] == 2
    for extra, field in (({"version": 7}, "version"), ({"label": "canary"}, "label"), ({"version": 0}, "version")):
        response = api.post("/api/v1/jobs/", {**base, **extra}, format="json")
        assert response.status_code == 400 and response.json()["error"]["param"] == field


def test_typed_inputs_through_the_api(api):
    response = api.post(
        "/api/v1/jobs/",
        {"template": "article", "inputs": {"topic": "bridges", "words": "lots", "tone": "angry"}},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"inputs.words", "inputs.tone"}
    ok = api.post(
        "/api/v1/jobs/",
        {"template": "article", "inputs": {"topic": "bridges", "words": 120, "tone": "formal"}},
        format="json",
    )
    assert ok.status_code == 202 and ok.json()["inputs"] == {"topic": "bridges", "tone": "formal", "words": 120}
