"""What the admin's own template pages show a curator: no template comment printed as text, no source file
paths, and a label move that publishes nothing until a label is chosen."""

import re

import pytest
from django.urls import reverse

from generation.models import LabelMove, PromptTemplate

pytestmark = pytest.mark.django_db

SOURCE_PATH = re.compile(r"\b(?:generation|selectors|services|content|engine)/\w+\.py\b")


@pytest.fixture
def headline():
    return PromptTemplate.objects.get(slug="headline")


def shown_text(response) -> str:
    """The page as text, without the parts a reader does not see (scripts, styles, tags)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", "", response.content.decode(), flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def test_the_template_pages_print_no_comment_and_no_source_path(staff, headline):
    version = headline.versions.order_by("number").first()
    for url in (
        reverse("admin:generation_prompttemplate_change", args=[headline.pk]),
        reverse("admin:generation_template_version", args=[headline.pk, version.number]),
    ):
        response = staff.get(url)
        text = shown_text(response)
        assert response.status_code == 200, url
        assert "{#" not in response.content.decode() and "#}" not in text, url
        assert not SOURCE_PATH.search(text), (url, SOURCE_PATH.search(text))


def test_the_version_pages_label_form_chooses_no_label_for_the_curator(staff, headline):
    version = headline.versions.order_by("number").first()
    page = staff.get(reverse("admin:generation_template_version", args=[headline.pk, version.number]))
    field = re.search(r'<input name="label"[^>]*>', page.content.decode())[0]
    assert "value=" not in field and "required" in field
    moves = LabelMove.objects.count()
    staff.post(reverse("admin:generation_template_label", args=[headline.pk]), {"version": version.number, "label": ""})
    assert LabelMove.objects.count() == moves
