"""The template version page in the admin shows that version's editor burden."""

import re

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from tests.support import burden_data

pytestmark = pytest.mark.django_db


def test_the_version_page_shows_its_burden(client, user, django_user_model):
    reviewer = django_user_model.objects.create_user(username="reviewer", password="pw-reviewer-123")
    reviewer.groups.add(Group.objects.get(name="reviewer"))
    scenario = burden_data.build(user, reviewer)
    client.force_login(django_user_model.objects.create_superuser("chief", "chief@example.com", "pw-chief-123"))
    page = client.get(reverse("admin:generation_template_version", args=[scenario["template"].pk, 1]))
    burden = shown(page)
    assert "edited before approval 67% of 3 outputs (2 approved jobs)" in burden
    assert "changed 20% of the words (2 jobs)" in burden
    assert "median 700 s, p90 1000 s (2 jobs)" in burden
    assert "sent back 40% of 5 decisions (4 jobs)" in burden
    assert "rated good 67% (2 jobs)" in burden
    empty = client.get(reverse("admin:generation_template_version", args=[scenario["template"].pk, 3]))
    assert "edited before approval – of 0 outputs" in shown(empty)


def shown(page) -> str:
    return " ".join(re.search(r'<p id="burden">(.*?)</p>', page.content.decode(), re.S)[1].split())
