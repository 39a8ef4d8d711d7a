"""Where the studio offers a template (its audience) and a template's own words in the user's language: an
editor sees only templates for everyone, staff also their trials, nobody the API-only chat as a tab; the API
and jobs keep working on them. A template's name and a variable's label and help read in Chinese where given."""

from __future__ import annotations

import pytest
from django.utils import translation

from generation import selectors, services
from generation.models import Audience, PromptTemplate
from generation.web.forms import HistoryFilterForm, InputsForm

pytestmark = pytest.mark.django_db


@pytest.fixture
def trial():
    """A staff-only headline template being tried out, published like any other."""
    headline = services.resolve_version(PromptTemplate.objects.get(slug="headline"))
    made = services.template_create(
        slug="headline-trial",
        kind="headline",
        name="Headline trial",
        system_prompt=headline.system_prompt,
        user_template=headline.user_template,
        variables=headline.variables,
    )
    PromptTemplate.objects.filter(pk=made.pk).update(audience=Audience.STAFF)
    return made


def test_an_editor_sees_templates_for_everyone_and_staff_also_their_trials(user, chief, trial):
    chat = PromptTemplate.objects.get(slug="chat")
    assert chat.audience == Audience.API  # set so by the migration
    for who, sees_trial in ((user, False), (chief, True)):
        tabs = list(selectors.templates_for_kind("headline", who))
        assert (trial in tabs) is sees_trial and "headline" in {t.slug for t in tabs}
        listed = {t.slug for t in selectors.templates_listed(who, studio=True)}
        assert ("headline-trial" in listed) is sees_trial and "chat" not in listed and "headline" in listed
        assert not any(t.slug == "chat" for t in selectors.templates_for_kind(chat.kind, who))
        # The API's list and a template named by slug are not the studio's: the chat still works there.
        assert "chat" in {t.slug for t in selectors.templates_listed(who)}
        assert selectors.template_by_slug("chat", who) == chat


def test_the_history_filter_offers_what_the_studio_offers(client, user, chief, trial):
    client.force_login(user)
    page = client.get("/jobs/").content.decode()
    assert 'value="headline"' in page and 'value="headline-trial"' not in page and 'value="chat"' not in page
    client.force_login(chief)
    assert 'value="headline-trial"' in client.get("/jobs/").content.decode()


def test_a_template_s_name_and_a_variable_s_label_read_in_chinese_where_given():
    template = PromptTemplate.objects.get(slug="headline")
    template.translations = {"zh-hans": {"name": "新闻标题", "description": ""}}
    template.save()
    english = template.name
    with translation.override("zh-hans"):
        assert selectors.localized(template, "name") == "新闻标题"
        assert selectors.localized(template, "description") == template.description  # empty: falls back
        choices = dict(HistoryFilterForm(templates=[template]).fields["template"].choices)
        assert choices["headline"] == "新闻标题"
    with translation.override("en"):
        assert selectors.localized(template, "name") == english

    version = services.resolve_version(template)
    variables = [
        {**v, "label_zh-hans": "稿件", "help_zh-hans": "粘贴稿件全文。"} if v["name"] == "text" else v
        for v in version.variables
    ]
    made, _ = services.template_version_create(
        template=template, **{**{f: getattr(version, f) for f in version.CONTENT_FIELDS}, "variables": variables}
    )
    with translation.override("zh-hans"):
        field = InputsForm(made).fields["in_text"]
        assert (field.label, field.help_text) == ("稿件", "粘贴稿件全文。")
    with translation.override("en"):
        assert InputsForm(made).fields["in_text"].label != "稿件"


def test_the_localized_filter_in_a_page(rf):
    from django.template import Context, Template

    template = PromptTemplate.objects.get(slug="headline")
    template.translations = {"zh-hans": {"name": "新闻标题"}}
    shown = Template('{% load studio_i18n %}{{ t|localized:"name" }}')
    with translation.override("zh-hans"):
        assert shown.render(Context({"t": template})) == "新闻标题"
    with translation.override("en"):
        assert shown.render(Context({"t": template})) == template.name
