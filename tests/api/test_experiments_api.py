"""/api/v1/templates/<slug>/experiments/: curators start an experiment and read its status and results; others
are refused; bad bodies get a 400 naming the field."""

import pytest
from rest_framework.test import APIClient

from generation import selectors, services
from generation.models import EvaluationRun, Experiment, JobPurpose
from generation.services.intake import evaluation_desk
from tests.support.evaluation import run_here, small_dataset, worse_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def curator_api(curator):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {services.api_key_create(curator, name='ci')[1]}")
    return client


def test_only_curators_see_or_start_experiments(api, fast_headline):
    assert api.get("/api/v1/templates/headline/experiments/").status_code == 403
    answer = api.post("/api/v1/templates/headline/experiments/", {"version": 1}, format="json")
    assert answer.status_code == 403 and answer.json()["error"]["type"] == "permission_error"
    assert not Experiment.objects.exists()


def test_bad_bodies_name_the_field_and_start_nothing(curator_api, fast_headline, curator):
    url = "/api/v1/templates/headline/experiments/"
    assert curator_api.post(url, {}, format="json").json()["error"]["param"] == "version"
    assert (
        curator_api.post(url, {"version": 99, "dataset": "gate"}, format="json").json()["error"]["param"] == "version"
    )
    assert curator_api.post(url, {"version": 1}, format="json").json()["error"]["param"] == "dataset"  # no gate set
    assert curator_api.post(url, {"version": 1, "dataset": "nope"}, format="json").json()["error"]["param"] == "dataset"
    small_dataset(fast_headline, curator)
    answer = curator_api.post(url, {"version": 1, "dataset": "gate", "baseline": "v99"}, format="json")
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "version"
    assert curator_api.post(url, {"version": 1, "dataset": "gate", "typo": 1}, format="json").json()["error"][
        "param"
    ] == ("typo")
    assert curator_api.get("/api/v1/templates/nope/experiments/").status_code == 404
    assert not Experiment.objects.exists()


def test_a_started_experiment_reports_its_runs_then_its_results(curator_api, fast_headline, curator, gguf_engine):
    small_dataset(fast_headline, curator)
    worse = worse_version(fast_headline, curator)
    answer = curator_api.post(
        "/api/v1/templates/headline/experiments/", {"version": worse.number, "dataset": "gate"}, format="json"
    )
    assert answer.status_code == 202, answer.json()
    body = answer.json()
    assert body["status"] == "running" and body["baseline_label"] == "production"
    assert body["candidate"]["version"] == worse.number and body["candidate"]["cases"] == 2
    assert body["gate"] == {"passed": False, "failures": ["The experiment has not finished."]}

    run_here(selectors.experiment_detail(body["id"]), gguf_engine)
    detail = curator_api.get(f"/api/v1/templates/headline/experiments/{body['id']}/").json()
    assert detail["status"] == "finished" and detail["candidate"]["measured"] == 2
    assert detail["comparison"]["metrics"][0]["key"] == "contract_rate"
    assert detail["comparison"]["metrics"][0]["regressed"] and not detail["gate"]["passed"]
    assert detail["comparison"]["cases"][0]["regressions"] == ["contract"]
    listed = curator_api.get("/api/v1/templates/headline/experiments/").json()
    assert [e["id"] for e in listed] == [body["id"]]
    assert curator_api.get(f"/api/v1/templates/summary/experiments/{body['id']}/").status_code == 404
    # The jobs it ran are nobody's: not in the curator's job list.
    assert curator_api.get("/api/v1/jobs/").json()["results"] == []
    assert set(Experiment.objects.get().candidate.items.values_list("job__purpose", flat=True)) == {
        JobPurpose.EVALUATION
    }


def test_a_spent_pool_is_a_429_with_nothing_written_and_a_short_one_a_run_that_says_it_waits(
    curator_api, fast_headline, curator, django_capture_on_commit_callbacks
):
    small_dataset(fast_headline, curator)
    organisation = evaluation_desk(curator).organisation
    organisation.evaluation_tokens_per_day = 0
    organisation.save()
    url = "/api/v1/templates/headline/experiments/"
    answer = curator_api.post(url, {"label": "production", "dataset": "gate"}, format="json")
    assert answer.status_code == 429 and answer.json()["error"]["budget"] == f"evaluation:{organisation.slug} daily"
    assert not Experiment.objects.exists() and not EvaluationRun.objects.exists()

    organisation.evaluation_tokens_per_day = 10  # room left, less than a case reserves
    organisation.save()
    with django_capture_on_commit_callbacks(execute=True):
        answer = curator_api.post(url, {"label": "production", "dataset": "gate"}, format="json")
    assert answer.status_code == 202, answer.json()
    detail = curator_api.get(f"{url}{answer.json()['id']}/").json()
    assert detail["status"] == "running" and detail["candidate"]["measured"] == 0
    assert detail["candidate"]["waiting"].startswith(f"Token budget evaluation:{organisation.slug} daily reached")
