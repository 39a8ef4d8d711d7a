"""/api/v1/templates/<slug>/training-data/: curators download a template's training pairs as streamed JSONL, one
desk's unless they mix desks, with each desk's share; and /api/v1/templates/<slug>/training-runs/: curators start
a LoRA training run, follow it and cancel it. Others are refused; bad queries and bodies get a 400 naming the
field. No training runs here: a start's task is captured, never sent, and a worker's progress is set in the
database."""

import json

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from rest_framework.test import APIClient

from generation import services
from generation.engine.lora import LoraParams
from generation.models import Desk, DeskRole, Membership, PromptTemplate, TrainingRun, TrainingStatus
from generation.selectors import training as training_selectors
from tests.support.desks import desk, join
from tests.support.training import approved, serve_adapters

pytestmark = pytest.mark.django_db

URL = "/api/v1/templates/headline/training-data/"


@pytest.fixture
def curator_key(curator):
    return services.api_key_create(curator, name="ci")[1]


@pytest.fixture
def curator_api(curator_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {curator_key}")
    return client


def text(answer) -> str:
    """The body of a streamed answer."""
    assert answer.streaming
    return b"".join(answer.streaming_content).decode()


def default_desk() -> str:
    return Desk.objects.get(is_default=True).slug


def test_curators_download_the_pairs_as_jsonl(curator_api, api, user, reviewer):
    for i in range(5):
        approved(user, reviewer, f"Story {i} about the Elm River bridge vote.", wrote=f"H{i}", edit=f"Edited {i}")
    answer = curator_api.get(URL)
    assert answer.status_code == 200 and answer["Content-Type"] == "application/jsonl"
    lines = [json.loads(line) for line in text(answer).splitlines()]
    held = int(answer["X-Held-Out"])
    assert int(answer["X-Pairs"]) == 5 and len(lines) == 5 - held and held >= 1
    assert answer["X-Desk"] == default_desk() and answer["X-Desk-Pairs"] == f"{default_desk()}=5"
    assert lines[0]["messages"][-1]["role"] == "assistant" and lines[0]["messages"][0]["role"] == "system"
    assert len(text(curator_api.get(URL, {"split": "all"})).splitlines()) == 5
    assert api.get(URL).status_code == 403  # an editor: the newsroom's texts are not theirs to take


def test_bad_queries_name_the_field(curator_api):
    assert curator_api.get(URL, {"split": "test"}).json()["error"]["param"] == "split"
    assert curator_api.get(URL, {"desk": "nowhere"}).json()["error"]["param"] == "desk"
    assert curator_api.get("/api/v1/templates/nope/training-data/").status_code == 404


# --- /api/v1/templates/<slug>/training-runs/ ------------------------------------------------------------------

RUNS = "/api/v1/templates/headline/training-runs/"


@pytest.fixture
def edits(user, reviewer):
    for i in range(5):
        approved(user, reviewer, f"Story {i} about the Elm River bridge vote.", wrote=f"H{i}", edit=f"Edited {i}")


def a_run(slug="headline", **fields) -> TrainingRun:
    template = PromptTemplate.objects.get(slug=slug)
    return TrainingRun.objects.create(
        template=template,
        base_version=services.resolve_version(template),
        model_alias="tuned",
        params=LoraParams().as_dict(),
        train_pairs=4,
        heldout_pairs=1,
        **fields,
    )


def test_a_curator_starts_a_run_and_follows_it(curator_api, curator, edits, tuned, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        answer = curator_api.post(RUNS, {"params": {"rank": 8, "epochs": 2}}, format="json")
    assert answer.status_code == 202, answer.json()
    assert len(callbacks) == 1  # the training task, sent once the run is committed
    body = answer.json()
    run = TrainingRun.objects.get()
    assert body["id"] == str(run.pk) and run.created_by == curator
    assert (body["status"], body["template"], body["edited_only"]) == ("queued", "headline", True)
    assert (body["desk"], body["all_desks"], body["desk_pairs"]) == (default_desk(), False, {default_desk(): 5})
    assert body["params"] == {**LoraParams().as_dict(), "rank": 8, "epochs": 2} == run.params
    assert body["train_pairs"] + body["heldout_pairs"] == 5 and body["heldout_pairs"] >= 1
    assert (body["version"], body["dataset"], body["experiment"], body["adapter_sha256"]) == (None, None, None, "")
    assert body["progress"]["step"] is None and body["losses"] == []

    # A worker's progress, then its end, as the detail and the list answer them.
    TrainingRun.objects.filter(pk=run.pk).update(
        status=TrainingStatus.RUNNING,
        progress={"step": 3, "total_steps": 6, "epoch": 1, "loss": 1.5, "tokens_per_s": 900.0, "eta_s": 4.0},
    )
    detail = curator_api.get(f"{RUNS}{run.pk}/").json()
    assert detail["status"] == "running" and detail["progress"]["step"] == 3 and detail["progress"]["eta_s"] == 4.0
    assert detail["progress"]["elapsed_s"] is None
    later = a_run()
    assert [r["id"] for r in curator_api.get(RUNS).json()] == [str(later.pk), str(run.pk)]  # newest first


def test_a_succeeded_run_names_what_it_left(curator_api, curator):
    template = PromptTemplate.objects.get(slug="headline")
    data = services.dataset_create(
        template=template, name="heldout-1", cases=[{"inputs": {"text": "A storm hit."}}], user=curator
    )
    run = a_run(
        status=TrainingStatus.SUCCEEDED,
        losses=[2.0, 1.5],
        adapter_sha256="a" * 64,
        version=services.resolve_version(template),
        dataset=data,
    )
    body = curator_api.get(f"{RUNS}{run.pk}/").json()
    assert (body["status"], body["losses"], body["adapter_sha256"]) == ("succeeded", [2.0, 1.5], "a" * 64)
    assert body["version"] == run.version.number and body["dataset"] == "heldout-1" and body["experiment"] is None


def test_cancel_stops_a_queued_run_and_asks_a_running_one(curator_api):
    queued = a_run()
    answer = curator_api.post(f"{RUNS}{queued.pk}/cancel/")
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    queued.refresh_from_db()
    assert queued.status == TrainingStatus.CANCELLED and queued.finished_at is not None
    again = curator_api.post(f"{RUNS}{queued.pk}/cancel/")  # as a job's cancel: a 409 once it has ended
    assert again.status_code == 409
    assert again.json()["error"]["param"] == "status" and again.json()["error"]["code"] == "training_finished"

    running = a_run(status=TrainingStatus.RUNNING)
    body = curator_api.post(f"{RUNS}{running.pk}/cancel/").json()
    assert (body["status"], body["cancel_requested"]) == ("running", True)  # it stops at its next step


def test_a_run_of_another_template_is_not_found(curator_api):
    run = a_run(slug="summary")
    for path in (f"{RUNS}{run.pk}/", f"{RUNS}{run.pk}/cancel/"):
        answer = curator_api.post(path) if path.endswith("cancel/") else curator_api.get(path)
        assert answer.status_code == 404 and answer.json()["error"]["type"] == "not_found_error", path
    assert curator_api.get(f"/api/v1/templates/summary/training-runs/{run.pk}/").status_code == 200
    assert curator_api.get(RUNS).json() == []
    run.refresh_from_db()
    assert run.status == TrainingStatus.QUEUED and not run.cancel_requested


def test_bad_bodies_name_the_field_and_start_nothing(curator_api, edits, tuned, django_capture_on_commit_callbacks):
    def param(body):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            answer = curator_api.post(RUNS, body, format="json")
        assert answer.status_code == 400 and not callbacks, answer.json()
        return answer.json()["error"]["param"]

    assert param({"params": {"rank": 0}}) == "params.rank"
    assert param({"params": {"target_modules": []}}) == "params.target_modules"
    assert param({"params": {"learning_rate": "fast"}}) == "params.learning_rate"
    assert param({"params": {"ranks": 8}}) == "params.ranks"
    assert param({"params": [8]}) == "params"
    assert param({"desk": "nowhere"}) == "desk"
    assert param({"edited_only": "maybe"}) == "edited_only"
    assert param({"typo": 1}) == "typo"
    assert curator_api.post("/api/v1/templates/nope/training-runs/", {}, format="json").status_code == 404
    assert curator_api.get(f"{RUNS}0b0e7f0e-3a52-4a56-9f57-6f1b8f6a2b11/").status_code == 404
    assert not TrainingRun.objects.exists()


def test_a_start_is_refused_without_enough_edits_or_an_adapter_alias(curator_api, user, reviewer, settings):
    answer = curator_api.post(RUNS, {}, format="json")
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "model"  # no alias serves adapters
    serve_adapters(settings)
    approved(user, reviewer, "The only story.", wrote="H", edit="Edited")
    answer = curator_api.post(RUNS, {}, format="json")
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "template"
    assert "1 approved edit(s)" in answer.json()["error"]["message"]
    assert not TrainingRun.objects.exists()


def test_only_curators_see_start_or_cancel_runs(api, edits, tuned):
    run = a_run()
    for answer in (
        api.get(RUNS),
        api.post(RUNS, {}, format="json"),
        api.get(f"{RUNS}{run.pk}/"),
        api.post(f"{RUNS}{run.pk}/cancel/"),
    ):
        assert answer.status_code == 403 and answer.json()["error"]["type"] == "permission_error"
    run.refresh_from_db()
    assert TrainingRun.objects.count() == 1 and run.status == TrainingStatus.QUEUED and not run.cancel_requested


# --- one desk's work, or a mix the curator chose; streamed ------------------------------------------------------


@pytest.fixture
def two_desks(user, other_user, reviewer):
    """Approved edits from two desks: three of the sport desk's, two of the default desk's."""
    sport = desk("sport")
    join(user, sport)
    Membership.objects.create(desk=sport, user=reviewer, role=DeskRole.REVIEWER)
    for i in range(3):
        approved(user, reviewer, f"Sport story {i} about the derby.", wrote=f"S{i}", edit=f"Sport {i}")
    for i in range(2):
        approved(other_user, reviewer, f"News story {i} about the bridge.", wrote=f"N{i}", edit=f"News {i}")
    return sport


def test_the_export_is_one_desk_s_unless_the_curator_mixes_desks(curator_api, two_desks, monkeypatch):
    """One desk's approved texts never leave mixed into another's data unasked; a mix says each desk's share."""
    monkeypatch.setattr(training_selectors, "CHUNK", 2, raising=False)  # two jobs read at a time: streamed
    refused = curator_api.get(URL, {"split": "all"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "desk"
    assert "sport: 3" in refused.json()["error"]["message"]

    sport = curator_api.get(URL, {"split": "all", "desk": "sport"})
    assert (sport["X-Desk"], sport["X-Desk-Pairs"], sport["X-Pairs"]) == ("sport", "sport=3", "3")
    assert sorted(json.loads(line)["messages"][-1]["content"] for line in text(sport).splitlines()) == [
        "Sport 0",
        "Sport 1",
        "Sport 2",
    ]
    mixed = curator_api.get(URL, {"split": "all", "all_desks": "true"})
    assert (mixed["X-Desk"], mixed["X-Desk-Pairs"]) == ("", f"{default_desk()}=2, sport=3")
    assert len(text(mixed).splitlines()) == 5
    both = curator_api.get(URL, {"desk": "sport", "all_desks": "true"})
    assert both.status_code == 400 and both.json()["error"]["param"] == "all_desks"


def test_the_export_streams_under_asgi(curator_key, two_desks):
    """Under uvicorn the lines are read a few hundred at a time in a worker thread, never joined first."""

    async def fetch():
        response = await AsyncClient().get(
            URL, {"split": "all", "desk": "sport"}, headers={"authorization": f"Bearer {curator_key}"}
        )
        return response, [chunk async for chunk in response.streaming_content]

    response, chunks = async_to_sync(fetch)()
    assert response.status_code == 200 and response["X-Pairs"] == "3"
    assert len(b"".join(chunks).decode().splitlines()) == 3


def test_a_run_mixes_desks_only_when_the_curator_chooses_to(
    curator_api, two_desks, tuned, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        refused = curator_api.post(RUNS, {}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "desk" and not callbacks
    with django_capture_on_commit_callbacks(execute=False):
        answer = curator_api.post(RUNS, {"all_desks": True}, format="json")
    assert answer.status_code == 202, answer.json()
    body = answer.json()
    assert (body["desk"], body["all_desks"]) == (None, True)
    assert body["desk_pairs"] == {default_desk(): 2, "sport": 3}
    listed = curator_api.get(RUNS).json()[0]
    assert listed["desk_pairs"] == body["desk_pairs"]
