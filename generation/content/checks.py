"""What a template version asks to be checked on its outputs, and one candidate's review against it: the
safe house-style fixes applied, a headline that is the model talking refused, claims matched against the
source, the language compared, the rest of the style linted. The candidate loop keeps or re-samples on the
verdict; the findings are stored with the output and shown inline. Pure: no Django, no model.

A version's `checks` (JSON, versioned with the template):
    {"source": "text",        # the input that is the source; default: the `text` input of kinds that have one
     "grounding": true,       # re-sample (or, for prose, drop the sentences of) candidates the source does not back
     "language": "en",        # the language to write in; default: the source's
     "style": {...}}          # house style, see style.py
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import formats, grounding, language, style
from .findings import Finding
from .prompts import InvalidInput, render_messages
from .shaping import count_words

KEYS = ("source", "grounding", "language", "style")
LANGUAGES = ("en", "zh")
# A headline reads best at 6-12 words; further from that, it ranks lower.
HEADLINE_IDEAL_WORDS = (6, 12)
_SENTENCE = re.compile(r"[^.!?。！？]+(?:[.!?。！？]+[\"'”’)\]]*|$)\s*")

# A one-line candidate that talks about the task instead of doing it: the model's introduction ("Here's a
# rewritten headline for the story:"), its comment on its own work ("This headline is accurate and catchy"), or
# a line that ends by announcing what follows. As data: (rule, pattern, reason); the first match is the finding.
_TASK_WORD = r"(?:headline|title|option|version|rewrite|suggestion|alternative)s?\b"
CHATTER = (
    (
        "introduction",
        re.compile(
            rf"^\W*(?:(?:here|below)(?:'|’)?s?\s+(?:is\s+|are\s+)?(?:\w+\s+){{0,4}}?{_TASK_WORD}"
            r"|(?:sure|certainly|of\s+course|okay|ok|absolutely)\s*[!,.]|as\s+an\s+ai\b"
            r"|以下是|这是(?:一个|一条)?(?:新的?)?标题|(?:好的|当然)[，,！!])",
            re.IGNORECASE,
        ),
        "An introduction to a headline, not a headline.",
    ),
    (
        "comment",
        re.compile(
            r"^\W*(?:(?:this|my|your|that)\s+(?:\w+\s+)?headlines?\b"
            r"|(?:rewritten|revised|suggested|alternative|possible)\s+(?:headline|title)s?\b)(?!\s*[:：])"
            r"|^\W*(?:note\s*[:：]|这个标题|该标题)",
            re.IGNORECASE,
        ),
        "A comment on the headline, not a headline.",
    ),
    ("announcement", re.compile(r"[:：]\s*\Z"), "Ends in a colon: it announces a headline rather than being one."),
)
# Chatter ranks below any real headline, however many claims that one gets wrong (see score).
CHATTER_PENALTY = 2.0


@dataclass(frozen=True)
class Checks:
    source: str | None = None
    grounding: bool = True
    language: str | None = None
    style: style.StyleRules = field(default_factory=lambda: style.parse(None))

    def as_json(self) -> dict:
        out: dict = {}
        if self.source is not None:
            out["source"] = self.source
        if not self.grounding:
            out["grounding"] = False
        if self.language:
            out["language"] = self.language
        if rules := self.style.as_json():
            out["style"] = rules
        return out


def parse(data: dict | None, *, variables: list[dict] | None = None) -> Checks:
    """A version's `checks`, validated; errors name the field (`checks.source`, `checks.style.banned.0.phrase`)."""
    data = data or {}
    if not isinstance(data, dict):
        raise InvalidInput({"checks": ["Must be an object."]})
    errors: dict[str, list[str]] = {}
    for key in data:
        if key not in KEYS:
            errors[f"checks.{key}"] = [f"Unknown check; known: {', '.join(KEYS)}."]
    source = data.get("source")
    names = {v.get("name") for v in variables or [] if isinstance(v, dict) and v.get("type", "text") == "text"}
    if source is not None and (not isinstance(source, str) or (variables is not None and source not in names)):
        errors["checks.source"] = [f"Must name a text input of the template ({', '.join(sorted(names)) or 'none'})."]
    if not isinstance(data.get("grounding", True), bool):
        errors["checks.grounding"] = ["Must be true or false."]
    lang = data.get("language")
    if lang is not None and lang not in LANGUAGES:
        errors["checks.language"] = [f"One of {', '.join(LANGUAGES)}."]
    try:
        rules = style.parse(data.get("style"))
    except style.InvalidStyle as exc:
        errors.update({f"checks.style.{k}" if k else "checks.style": v for k, v in exc.errors.items()})
        rules = style.parse(None)
    if errors:
        raise InvalidInput(errors)
    return Checks(source=source, grounding=data.get("grounding", True), language=lang, style=rules)


def source_of(checks: Checks, kind: str, inputs: dict) -> str | None:
    """The text outputs are checked against: the declared input, else `text` for kinds that condense a source."""
    name = checks.source or ("text" if formats.kind_rule(kind).has_source else None)
    value = inputs.get(name) if name else None
    return value if isinstance(value, str) and value.strip() else None


# The source languages the claim check reads (grounding.py): names and figures in English, figures in Chinese.
GROUNDED_LANGUAGES = ("en", "zh")


def unjudged(checks: Checks, fmt: formats.OutputFormat, kind: str, inputs: dict) -> dict[str, str]:
    """The checks that cannot judge a job's outputs, each with why: "no_source" (nothing to match claims
    against), "source_language" (a source the claim check does not read), "code" (code gets none of the text
    checks). Pages say "not checked" for these, so that no finding is never read as a clean bill."""
    if fmt.code:
        return {"grounding": "code", "language": "code", "style": "code"}
    source = source_of(checks, kind, inputs)
    if source is None:
        return {"grounding": "no_source"}
    if language.language_of(source) not in GROUNDED_LANGUAGES:
        return {"grounding": "source_language"}
    return {}


def prompt_lines(checks: Checks) -> list[str]:
    """What the system prompt states: the house style's rules that can be put in words, and the language."""
    lines = style.prompt_lines(checks.style)
    if checks.language:
        lines.append(f"Write in {language.NAMES.get(checks.language, checks.language)}.")
    return lines


def with_instructions(messages: list[dict], checks: Checks) -> list[dict]:
    """The rendered prompt with the checks' instructions added to its system message (one is added when the
    template has none). Added after rendering: the house style's words are never read as {placeholders}."""
    lines = prompt_lines(checks)
    if not lines:
        return messages
    extra = " ".join(lines)
    if messages and messages[0]["role"] == "system":
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{extra}"}, *messages[1:]]
    return [{"role": "system", "content": extra}, *messages]


def with_house_style(data: dict | None, house: dict | None) -> dict:
    """A version's checks with a desk's house-style rules layered under its own (style.layered)."""
    data = dict(data or {})
    style_rules = style.layered(house, data.get("style"))
    if style_rules is not None:
        data["style"] = style_rules
    return data


def version_messages(version, inputs: dict, house: dict | None = None) -> list[dict]:
    """The prompt a template version gives these (cleaned) inputs, its checks' instructions (and the desk's
    house style) included: what jobs send and what the preview shows."""
    messages = render_messages(version.system_prompt, version.user_template, inputs)
    return with_instructions(messages, parse(with_house_style(version.checks, house)))


@dataclass
class Verdict:
    text: str  # the candidate after the safe style fixes (and, for prose, without unsupported sentences)
    findings: list[Finding]
    rejected: str | None = None  # why it should be re-sampled: "chatter", "grounding", "language"

    @property
    def unsupported(self) -> list[Finding]:
        return [f for f in self.findings if f.check == "grounding"]


def chatter(text: str) -> Finding | None:
    """A finding for the whole line when a one-line candidate is the model talking (see CHATTER)."""
    for rule, pattern, reason in CHATTER:
        if pattern.search(text):
            return Finding("chatter", rule, 0, len(text), text, reason)
    return None


def review(checks: Checks, fmt: formats.OutputFormat, kind: str, text: str, inputs: dict) -> Verdict:
    """One shaped candidate against the version's checks."""
    if fmt.code or not text.strip():
        return Verdict(text, [])
    headline = fmt.display == "line"
    source = source_of(checks, kind, inputs)
    names = style.names_from(source) if source else frozenset()  # sentence case keeps the story's names
    text, styled = style.apply(checks.style, text, headline=headline, names=names)
    findings: list[Finding] = []
    rejected = None
    if headline and (found := chatter(text)) is not None:
        findings.append(found)
        rejected = "chatter"
    if source is not None:
        if (found := language.language_finding(source, text, checks.language)) is not None:
            findings.append(found)
            rejected = rejected or "language"
        unsupported = grounding.check(source, text)
        if unsupported and checks.grounding and not fmt.many and not fmt.bulleted:
            kept, unsupported = _drop_unsupported_sentences(source, text, unsupported)
            if kept != text:  # the style findings' spans were on the longer text
                text, styled = style.apply(checks.style, kept, headline=headline, names=names)
        findings += unsupported
        if unsupported and checks.grounding and rejected is None:
            rejected = "grounding"
    elif checks.language and (found := language.language_finding(text, text, checks.language)) is not None:
        findings.append(found)
        rejected = rejected or "language"
    findings += styled
    return Verdict(text, sorted(findings, key=lambda f: (f.start, f.end)), rejected)


def _drop_unsupported_sentences(source: str, text: str, unsupported: list[Finding]) -> tuple[str, list[Finding]]:
    """Prose keeps its supported sentences: a sentence holding an unsupported claim goes, while some remain."""
    sentences = [m for m in _SENTENCE.finditer(text) if m.group().strip()]
    bad = [m for m in sentences if any(m.start() <= f.start < m.end() for f in unsupported)]
    kept = "".join(m.group() for m in sentences if m not in bad).strip()
    if not bad or not kept:
        return text, unsupported
    return kept, grounding.check(source, kept)


def score(fmt: formats.OutputFormat, verdict: Verdict, others: list[str]) -> float:
    """Where a candidate ranks among its siblings (higher first): a headline rather than chatter, grounded, in
    house style, near the ideal length, and unlike the others. Deterministic, so a seed gives one order."""
    value = 1.0
    value -= 0.4 * min(len(verdict.unsupported), 2)
    value -= 0.3 * any(f.check == "language" for f in verdict.findings)
    value -= CHATTER_PENALTY * any(f.check == "chatter" for f in verdict.findings)
    value -= 0.05 * min(sum(f.check == "style" and not f.fixed for f in verdict.findings), 4)
    if fmt.many:
        low, high = HEADLINE_IDEAL_WORDS
        words = count_words(verdict.text)
        value -= 0.02 * (max(low - words, 0) + max(words - high, 0))
        mine = set(formats.distinct_key(verdict.text).split())
        overlaps = [
            len(mine & set(formats.distinct_key(o).split())) / len(mine | set(formats.distinct_key(o).split()))
            for o in others
            if o != verdict.text and mine
        ]
        value -= 0.2 * max(overlaps, default=0.0)
    return round(value, 3)
