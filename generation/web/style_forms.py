"""The house style as a form, not raw JSON: a select per rule, a number for the headline length and a table of
banned words with their replacements. One form field (HouseStyleField) used by the desk's style page and the
desk's admin change form; it reads what was typed into the JSON content/style.py reads and checks it with that
module's own parser, so the rules live in one place and both pages save exactly what the engine reads."""

from __future__ import annotations

from django import forms
from django.template.loader import render_to_string
from django.utils.translation import gettext_lazy as _

from ..content import style as style_rules

EXTRA_ROWS = 3  # blank banned-word rows under the filled ones: more rows without JavaScript (save, then add more)

# Each select's words for the values content/style.py accepts (CHOICES); "" is "no rule".
CHOICE_LABELS = {
    "headline_case": {"sentence": _("Sentence case"), "title": _("Title Case")},
    "spelling": {"uk": _("British (-ise, colour)"), "us": _("American (-ize, color)")},
    "numerals": {"spell_one_to_nine": _("Spell out one to nine, digits from 10"), "digits": _("Digits")},
    "chinese_punctuation": {"full_width": _("Full-width in Chinese text (，。：)")},
}
RULE_LABELS = {
    "headline_case": _("Headline case"),
    "spelling": _("Spelling"),
    "numerals": _("Numerals"),
    "headline_max_chars": _("Maximum headline length"),
    "chinese_punctuation": _("Chinese punctuation"),
    "banned": _("Banned words"),
}
SELECTS = tuple(style_rules.CHOICES)  # the rules chosen from a list, in the order content/style.py lists them


def _raw_banned(style: dict) -> list[dict]:
    rows = style.get("banned") if isinstance(style, dict) else None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


class HouseStyleWidget(forms.Widget):
    """The rules' inputs under the field's name: <name>_<rule> and <name>_banned_<i>_phrase / _replacement."""

    template_name = "generation/widgets/house_style.html"

    def value_from_datadict(self, data, files, name):
        """What was typed, in the JSON's shape (strings as typed): the field turns it into rules."""
        value: dict = {key: data.get(f"{name}_{key}", "") for key in (*SELECTS, "headline_max_chars")}
        banned, i = [], 0
        while f"{name}_banned_{i}_phrase" in data and i < style_rules.MAX_BANNED + 50:
            banned.append(
                {
                    "phrase": data.get(f"{name}_banned_{i}_phrase", ""),
                    "replacement": data.get(f"{name}_banned_{i}_replacement", ""),
                }
            )
            i += 1
        value["banned"] = banned
        return value

    def value_omitted_from_data(self, data, files, name):
        # Never "omitted": an empty form is "no house style", not "keep what was there" (see construct_instance).
        return False

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        value = value if isinstance(value, dict) else {}
        selects = []
        for key in SELECTS:
            chosen = value.get(key) or ""
            options = [("", _("No rule")), *CHOICE_LABELS[key].items()]
            selects.append(
                {"key": key, "id": f"id_{name}_{key}", "label": RULE_LABELS[key], "value": chosen, "options": options}
            )
        rows = [
            {"phrase": r.get("phrase") or "", "replacement": r.get("replacement") or ""} for r in _raw_banned(value)
        ]
        rows = [r for r in rows if r["phrase"] or r["replacement"]] + [{"phrase": "", "replacement": ""}] * EXTRA_ROWS
        limit = value.get("headline_max_chars")
        context.update(
            name=name,
            selects=selects,
            max_chars={
                "id": f"id_{name}_headline_max_chars",
                "label": RULE_LABELS["headline_max_chars"],
                "value": "" if limit is None else limit,
                "min": style_rules.HEADLINE_CHARS[0],
                "max": style_rules.HEADLINE_CHARS[1],
            },
            rows=[{"i": i, **row} for i, row in enumerate(rows)],
            max_phrase=style_rules.MAX_PHRASE_CHARS,
        )
        return context

    def render(self, name, value, attrs=None, renderer=None):
        """With the project's template engine (the form renderer does not read templates/)."""
        return render_to_string(self.template_name, self.get_context(name, value, attrs))

    def id_for_label(self, id_):
        return f"{id_}_headline_case" if id_ else id_


def _where(path: str, rows: list[int]) -> str:
    """A parser error's path ("banned.2.phrase") as the field the editor sees ("Banned words, row 3, word")."""
    parts = path.split(".")
    if parts[0] == "banned" and len(parts) > 1 and parts[1].isdigit():
        row = rows[int(parts[1])] + 1
        part = {"phrase": _("word"), "replacement": _("replacement")}.get(parts[2] if len(parts) > 2 else "")
        if part:
            return _("Banned words, row %(row)s, %(part)s") % {"row": row, "part": part}
        return _("Banned words, row %(row)s") % {"row": row}
    return str(RULE_LABELS.get(parts[0], path or _("House style")))


class HouseStyleField(forms.Field):
    """The house style as typed into HouseStyleWidget, or a stored dict: cleaned to the rules' JSON (`{}`: none),
    checked by content/style.py; each error names the input it is about."""

    widget = HouseStyleWidget

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("label", _("House style"))
        super().__init__(**kwargs)

    def to_python(self, value) -> dict:
        if value in self.empty_values:
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError(_("The house style is a set of rules."), code="invalid")
        data: dict = {}
        errors: list[str] = []
        for key in SELECTS:
            if chosen := value.get(key):
                data[key] = chosen
        limit = value.get("headline_max_chars")
        if isinstance(limit, str):
            limit = limit.strip()
            if limit and not limit.isdigit():
                low, high = style_rules.HEADLINE_CHARS
                message = _("%(field)s: a whole number of characters from %(low)s to %(high)s.")
                errors.append(message % {"field": RULE_LABELS["headline_max_chars"], "low": low, "high": high})
                limit = None
            limit = int(limit) if limit else None
        if limit is not None:
            data["headline_max_chars"] = limit
        banned, rows = [], []
        for i, row in enumerate(_raw_banned(value)):
            phrase, replacement = (str(row.get(k) or "").strip() for k in ("phrase", "replacement"))
            if not phrase and not replacement:
                continue  # a blank row, or one cleared to remove it
            rows.append(i)
            banned.append({"phrase": phrase, **({"replacement": replacement} if replacement else {})})
        if banned:
            data["banned"] = banned
        try:
            rules = style_rules.parse(data)
        except style_rules.InvalidStyle as exc:
            errors += [f"{_where(path, rows)}: {' '.join(messages)}" for path, messages in exc.errors.items()]
        if errors:
            raise forms.ValidationError(errors, code="invalid")
        return rules.as_json()

    def prepare_value(self, value):
        return value if isinstance(value, dict) else {}

    def has_changed(self, initial, data) -> bool:
        try:
            return self.to_python(data) != style_rules.parse(initial or None).as_json()
        except (forms.ValidationError, style_rules.InvalidStyle):
            return True


class DeskStyleForm(forms.Form):
    """The desk's style page: one field, cleaned to the JSON the service and the engine read."""

    style = HouseStyleField(
        help_text=_(
            "Leave a rule on “No rule” for none. A banned word with a replacement is rewritten on every "
            "job; one without is only reported. Clear a row's word to remove it; save to get more blank rows."
        )
    )


def style_summary(style: dict | None) -> list[tuple[str, str]]:
    """The desk's house style in words, rule by rule (label, what it says); [] when there is none or it no longer
    parses (the page says "No house style yet" rather than `null`)."""
    try:
        rules = style_rules.parse(style or None)
    except style_rules.InvalidStyle:
        return []
    out = []
    for key in ("headline_case", "spelling", "numerals", "chinese_punctuation"):
        if value := getattr(rules, key):
            out.append((str(RULE_LABELS[key]), str(CHOICE_LABELS[key][value])))
    if rules.headline_max_chars:
        out.append(
            (str(RULE_LABELS["headline_max_chars"]), str(_("%(n)s characters") % {"n": rules.headline_max_chars}))
        )
    if rules.banned:
        words = [f"{b.phrase} → {b.replacement}" if b.replacement else b.phrase for b in rules.banned]
        out.append((str(RULE_LABELS["banned"]), "; ".join(words)))
    return out
