"""A finding's check is named in the reader's language, and a check without a name yet keeps its code name."""

from django.template import Context, Template
from django.utils import translation

PAGE = Template("{% load check_names %}{% for f in findings %}<strong>{{ f.check|check_name }}</strong> {% endfor %}")


def render(language: str, *checks: str) -> str:
    with translation.override(language):
        return PAGE.render(Context({"findings": [{"check": c} for c in checks]}))


def test_check_names_in_chinese_and_english():
    assert render("zh-hans", "grounding", "style", "chatter", "language") == (
        "<strong>事实核查</strong> <strong>体例</strong> <strong>多余话语</strong> <strong>语言</strong> "
    )
    assert render("en", "grounding", "style") == "<strong>grounding</strong> <strong>style</strong> "


def test_an_unnamed_check_shows_its_code_name_escaped():
    assert render("zh-hans", "<new>") == "<strong>&lt;new&gt;</strong> "
