"""`{{ template|localized:"name" }}`, `{{ variable|localized:"label" }}`: a template's name or description, a
variable's label or help, in the active language where the template carries a translation (selectors.localized)."""

from django import template

from generation.selectors.templates import localized

register = template.Library()


@register.filter(name="localized")
def localized_filter(item, field: str = "name") -> str:
    return localized(item, field) if item is not None else ""
