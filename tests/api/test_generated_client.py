"""A Python client generated from the live OpenAPI schema (openapi-python-client), used as a CMS and its editors
would: create a job with template, inputs and desk, list jobs, choose and edit a candidate, submit, approve as
another user, and read the approved feed. A template added after the client was generated runs through the same
client: the schema describes a job generically, so a client survives template changes.

The job's candidates are written to the database as a worker would (no model runs here)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from generation import services
from generation.models import DeskRole, Job, JobOutput, JobStatus
from tests.support.desks import desk, join

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

STORY = "The city council voted on Tuesday to build a new bridge over the Elm River."
CANDIDATES = ["Bridge", "Council votes for Elm River bridge", "A bridge, at last"]
EDITED = "Council backs new Elm River bridge"
PACKAGE = "studio_client"


@pytest.fixture
def server():
    """A server of this test's own, started after the test settings (plain HTTP) apply: pytest-django's
    session-wide one loads its middleware before them, and would redirect every request to HTTPS."""
    server = LiveServer("localhost")
    yield server
    server.stop()


@pytest.fixture
def studio(server, tmp_path):
    """The generated package, imported; generated from GET /api/schema/ of the running server."""
    schema = httpx.get(f"{server.url}/api/schema/?format=json").raise_for_status().json()
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    (tmp_path / "config.yaml").write_text(f"post_hooks: []\npackage_name_override: {PACKAGE}\n")
    command = [
        "generate",
        "--path",
        "schema.json",
        "--output-path",
        PACKAGE,
        "--meta",
        "none",
        "--config",
        "config.yaml",
    ]
    generated = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", *command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(studio, name: str):
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_a_generated_client_takes_a_job_from_creation_to_the_approved_feed(studio, server, user, reviewer):
    metro = desk("metro")
    join(user, metro)
    join(reviewer, metro, DeskRole.REVIEWER)
    editor = studio.AuthenticatedClient(base_url=server.url, token=services.api_key_create(user, name="cms")[1])
    chief = studio.AuthenticatedClient(base_url=server.url, token=services.api_key_create(reviewer, name="c")[1])
    models = _module(studio, "models")
    api = {name: _module(studio, f"api.v1.v1_{name}") for name in ("jobs_create", "jobs_list", "approved_list")}
    choose, update = _module(studio, "api.v1.v1_jobs_outputs_choose"), _module(studio, "api.v1.v1_jobs_outputs_update")
    review = _module(studio, "api.v1.v1_jobs_review")

    body = models.JobCreate(
        template="headline",
        inputs=models.JobCreateInputs.from_dict({"text": STORY}),
        params=models.JobParams(n=3, seed=7),
        desk="metro",
    )
    created = api["jobs_create"].sync_detailed(client=editor, body=body)
    assert created.status_code == 202, created.content
    job = created.parsed
    assert (job.template, job.desk, job.status.value) == ("headline", "metro", "queued")

    # The worker's part, without a model: the job succeeded with three candidates.
    Job.objects.filter(pk=job.id).update(status=JobStatus.SUCCEEDED, finished_at=timezone.now())
    JobOutput.objects.bulk_create(JobOutput(job_id=job.id, index=i, text=t) for i, t in enumerate(CANDIDATES))

    page = api["jobs_list"].sync(client=editor, desk="metro")
    assert [j.id for j in page.results] == [job.id] and len(page.results[0].outputs) == 3

    chosen = choose.sync(client=editor, job_id=job.id, index=1)
    assert chosen.chosen == [1]
    edited = update.sync(client=editor, job_id=job.id, index=1, body=models.PatchedOutputChange(final_text=EDITED))
    assert edited.final_texts == [EDITED]
    submitted = review.sync(client=editor, job_id=job.id, body=models.ReviewAction(action=models.ActionEnum.SUBMIT))
    assert submitted.review_state.value == "in_review"
    refused = review.sync_detailed(
        client=editor, job_id=job.id, body=models.ReviewAction(action=models.ActionEnum.APPROVE)
    )
    assert refused.status_code == 403 and isinstance(refused.parsed, models.Error)
    approved = review.sync(client=chief, job_id=job.id, body=models.ReviewAction(action=models.ActionEnum.APPROVE))
    assert approved.review_state.value == "approved" and approved.final_texts == [EDITED]

    # The CMS polls as the reviewer: the desk's approved jobs, with the chosen final text; both URLs agree.
    since = timezone.now() - timedelta(hours=1)
    state = models.V1JobsListReviewState.APPROVED
    feed = api["jobs_list"].sync(client=chief, review_state=state, since=since, desk="metro")
    assert [(j.id, j.chosen, j.final_texts) for j in feed.results] == [(job.id, [1], [EDITED])]
    alias = api["approved_list"].sync(client=chief, since=since, desk="metro")
    assert [j.to_dict() for j in alias.results] == [j.to_dict() for j in feed.results]
    assert api["jobs_list"].sync(client=chief, review_state=state, since=feed.results[0].approved_at).results == []
    stranger = api["jobs_list"].sync_detailed(client=chief, review_state=state, desk="sport")
    assert stranger.status_code == 400 and stranger.parsed.error.param == "desk"


def test_a_template_added_after_generation_runs_through_the_same_client(studio, server, user):
    """The schema names no template: the client sends any slug and inputs, and the server checks them."""
    services.template_create(
        slug="teaser-after",
        kind="writing",
        name="Teaser",
        user=user,
        system_prompt="You write teasers.",
        user_template="A teaser about {topic} for {audience}",
        variables=[
            {"name": "topic", "type": "text", "required": True, "max_length": 200},
            {"name": "audience", "type": "choice", "choices": ["kids", "adults"], "default": "adults"},
        ],
    )
    client = studio.AuthenticatedClient(base_url=server.url, token=services.api_key_create(user, name="cms")[1])
    models, create = _module(studio, "models"), _module(studio, "api.v1.v1_jobs_create")

    inputs = models.JobCreateInputs.from_dict({"topic": "the bridge", "audience": "kids"})
    created = create.sync_detailed(client=client, body=models.JobCreate(template="teaser-after", inputs=inputs))
    assert created.status_code == 202 and created.parsed.template == "teaser-after"

    missing = create.sync_detailed(
        client=client,
        body=models.JobCreate(template="teaser-after", inputs=models.JobCreateInputs.from_dict({"audience": "kids"})),
    )
    assert missing.status_code == 400 and missing.parsed.error.param == "inputs.topic"
