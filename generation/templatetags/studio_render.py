"""Template filters for model output: `{{ text|markdown }}` and `{{ text|code }}` / `{{ text|code:"sql" }}`."""

from django import template

from generation.web.rendering import render_code, render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(value) -> str:
    """Sanitised HTML from markdown; None (an output not there yet) renders as nothing."""
    return render_markdown("" if value is None else str(value))


@register.filter(name="code")
def code_filter(value, language: str = "python") -> str:
    """A whole output as highlighted code, escaped."""
    return render_code("" if value is None else str(value), language)
