"""Batches: a JSON list, a CSV or a JSONL upload; all queued or nothing written; aggregate status."""

import io

import pytest

from generation.models import Job, JobBatch, JobStatus

pytestmark = pytest.mark.django_db

STORY = "The city council voted on Tuesday to build a new bridge over the Elm River."


def test_json_batch_is_queued_together_with_an_aggregate_status(api):
    body = {"jobs": [{"kind": "summary", "inputs": {"text": STORY}}, {"template": "seo-title", "inputs": {"text": STORY}}]}
    response = api.post("/api/v1/jobs/batch/", body, format="json")
    assert response.status_code == 202, response.content
    batch = response.json()
    assert batch["status"] == "queued" and batch["total"] == 2 and len(batch["jobs"]) == 2
    assert [j["template"] for j in batch["jobs"]] == ["summary", "seo-title"]
    Job.objects.filter(template__slug="summary").update(status=JobStatus.SUCCEEDED)
    assert api.get(f"/api/v1/jobs/batch/{batch['id']}/").json()["status"] == "running"
    Job.objects.update(status=JobStatus.SUCCEEDED)
    again = api.get(f"/api/v1/jobs/batch/{batch['id']}/").json()
    assert again["status"] == "succeeded" and again["counts"]["succeeded"] == 2


def test_one_bad_item_writes_nothing_and_names_the_item(api):
    body = {"jobs": [{"kind": "summary", "inputs": {"text": STORY}}, {"kind": "summary", "inputs": {}}, {"kind": "poem"}]}
    response = api.post("/api/v1/jobs/batch/", body, format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert "jobs.1.inputs.text" in fields and "jobs.2.kind" in fields
    assert Job.objects.count() == 0 and JobBatch.objects.count() == 0


def test_csv_upload(api):
    csv = f'template,text,params.seed\nsummary,"{STORY}",7\nheadline,"{STORY}",8\n'
    upload = io.BytesIO(csv.encode())
    upload.name = "stories.csv"
    response = api.post("/api/v1/jobs/batch/", {"file": upload}, format="multipart")
    assert response.status_code == 202, response.content
    jobs = Job.objects.order_by("created_at")
    assert [(j.template.slug, j.inputs["text"], j.params["seed"]) for j in jobs] == [("summary", STORY, 7), ("headline", STORY, 8)]


def test_jsonl_upload_and_its_errors(api):
    good = io.BytesIO(b'{"kind": "summary", "inputs": {"text": "One story."}}\n\n{"kind": "code", "inputs": {"instruction": "add"}}\n')
    good.name = "jobs.jsonl"
    assert api.post("/api/v1/jobs/batch/", {"file": good}, format="multipart").status_code == 202
    bad = io.BytesIO(b'{"kind": "summary"}\nnot json\n')
    bad.name = "jobs.jsonl"
    response = api.post("/api/v1/jobs/batch/", {"file": bad}, format="multipart")
    assert response.status_code == 400 and "Line 2" in response.json()["error"]["message"]
    assert Job.objects.count() == 2


def test_limits_and_ownership(api, other_user, settings):
    settings.AIGC = {**settings.AIGC, "MAX_BATCH_JOBS": 2}
    body = {"jobs": [{"kind": "summary", "inputs": {"text": STORY}}] * 3}
    response = api.post("/api/v1/jobs/batch/", body, format="json")
    assert response.status_code == 400 and "At most 2 jobs" in response.json()["error"]["message"]
    assert api.post("/api/v1/jobs/batch/", {}, format="json").status_code == 400
    theirs = JobBatch.objects.create(owner=other_user)
    assert api.get(f"/api/v1/jobs/batch/{theirs.pk}/").status_code == 404
