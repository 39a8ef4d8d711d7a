"""/metrics carries editor burden per template and version, over the last BURDEN_DAYS days only."""

import pytest
from django.contrib.auth.models import Group
from prometheus_client.parser import text_string_to_metric_families

from generation.infra import metrics
from tests.support import burden_data

pytestmark = pytest.mark.django_db

TOKEN = "scrape-me"


@pytest.fixture(autouse=True)
def metrics_token(settings):
    settings.AIGC = {**settings.AIGC, "METRICS_TOKEN": TOKEN}


@pytest.fixture
def scenario(user, django_user_model):
    reviewer = django_user_model.objects.create_user(username="reviewer", password="pw-reviewer-123")
    reviewer.groups.add(Group.objects.get(name="reviewer"))
    return burden_data.build(user, reviewer)


def burden_samples(client) -> dict:
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name.startswith("aigc_template_")
    }


def test_gauges_per_template_and_version(client, scenario):
    got = burden_samples(client)

    def at(name, version, **labels):
        return got[(name, tuple(sorted({"template": "burden-article", "version": version, **labels}.items())))]

    assert at("aigc_template_edited_share", "1") == pytest.approx(2 / 3)
    assert at("aigc_template_change_ratio", "1") == pytest.approx(0.2)
    assert at("aigc_template_approval_seconds", "1", quantile="0.5") == 700
    assert at("aigc_template_approval_seconds", "1", quantile="0.9") == 1000
    assert at("aigc_template_rejection_rate", "1") == pytest.approx(0.4)
    assert at("aigc_template_rating_good_share", "1") == pytest.approx(2 / 3)
    assert at("aigc_template_burden_jobs", "1", figure="review") == 4
    assert at("aigc_template_edited_share", "2") == 0.0
    # A figure with nothing to rest on is left out, not written as 0.
    assert ("aigc_template_change_ratio", (("template", "burden-article"), ("version", "2"))) not in got


def test_only_versions_with_recent_jobs_are_labelled(client, scenario):
    labelled = {(dict(labels)["template"], dict(labels)["version"]) for _, labels in burden_samples(client)}
    assert ("burden-article", "1") in labelled and ("burden-article", "2") in labelled
    assert ("burden-article", "3") not in labelled  # never ran
    assert not any(t == "burden-other" for t, _ in labelled)  # its jobs are older than BURDEN_DAYS
    assert metrics.BURDEN_DAYS == 30
