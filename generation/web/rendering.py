"""Model output as HTML for the browser. The text is untrusted: whatever the parser and highlighter produce, the
result always goes through nh3 (ammonia) with a small allowlist before it is marked safe."""

import re
from functools import lru_cache

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml, unescapeAll
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

# CSS classes only (no inline styles): colours live in static/studio/pygments.css, written by pygments_css().
FORMATTER = HtmlFormatter(cssclass="highlight", wrapcode=True)
LIGHT_STYLE, DARK_STYLE = "default", "github-dark"

ALLOWED_TAGS = {
    "p",
    "br",
    "hr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "strong",
    "em",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "span",
    "div",
    "del",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    **{tag: {"class"} for tag in ("span", "div", "pre", "code")},
    **{tag: {"align"} for tag in ("th", "td")},
}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "nofollow noopener noreferrer"


@lru_cache(maxsize=64)
def _lexer(language: str) -> Lexer | None:
    """Lexer by its name or alias only: guessing from content is slow on long text and often wrong."""
    try:
        return get_lexer_by_name(language.strip().lower())
    except ClassNotFound:
        return None


def _fence(self, tokens, idx, options, env) -> str:
    """A fenced block with a known language is highlighted; anything else keeps markdown-it's escaped <pre><code>."""
    token = tokens[idx]
    info = unescapeAll(token.info).split()
    lexer = _lexer(info[0]) if info else None
    return highlight(token.content, lexer, FORMATTER) if lexer else self.fence(tokens, idx, options, env)


def _image_as_alt_text(self, tokens, idx, options, env) -> str:
    """No images from model output (tracking pixels, huge remote files): keep only the alt text."""
    return escapeHtml(self.renderInlineAsText(tokens[idx].children, options, env))


def _table_align_and_del(state) -> None:
    """Table alignment as align="…" (the sanitiser drops style attributes), strikethrough as <del>, not <s>."""
    for block in state.tokens:
        for token in (block, *(block.children or ())):
            if token.tag in ("th", "td") and (style := token.attrGet("style")):
                token.attrs = {"align": style.removeprefix("text-align:")}
            elif token.tag == "s":
                token.tag = "del"


_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])
_md.add_render_rule("fence", _fence)
_md.add_render_rule("image", _image_as_alt_text)
_md.core.ruler.push("studio_table_align_and_del", _table_align_and_del)


def _clean(html: str, marks: bool = False) -> SafeString:
    """The one way out of this module: only allowlisted tags, attributes and URL schemes reach the page (with
    `marks`, also the <mark> elements of findings and the headline paragraph's class, which this module writes)."""
    tags, attributes = (
        (ALLOWED_TAGS | {"mark"}, {**ALLOWED_ATTRIBUTES, **MARK_ATTRIBUTES})
        if marks
        else (
            ALLOWED_TAGS,
            ALLOWED_ATTRIBUTES,
        )
    )
    return mark_safe(nh3.clean(html, tags=tags, attributes=attributes, url_schemes=URL_SCHEMES, link_rel=LINK_REL))


def render_markdown(text: str) -> SafeString:
    """CommonMark (plus tables) with raw HTML shown as text, fenced code highlighted, then sanitised."""
    return _clean(_md.render(text))


def render_code(text: str, language: str = "python") -> SafeString:
    """A whole code output, highlighted (plain text for an unknown language); Pygments escapes, nh3 re-checks."""
    return _clean(highlight(text, _lexer(language) or TextLexer(), FORMATTER))


# Findings are marked by placing sentinels (private-use characters; any already in the text become U+FFFD) around their
# spans before rendering, so the Markdown parser and the sanitiser see plain text; the sentinels then become
# <mark> elements, and the whole is sanitised once more, so a span crossing a tag boundary cannot break nesting.
_OPEN, _SEP, _CLOSE = "\ue000", "\ue001", "\ue002"
_SENTINELS = re.compile("[\ue000-\ue002]")
_OPENED = re.compile(f"{_OPEN}(\\d+){_SEP}")
MARK_ATTRIBUTES = {
    "mark": {"class", "tabindex", "title", "aria-describedby", "data-check", "data-rule"},
    "p": {"class"},
}


def render_output(text: str, display: str, language: str, findings: list, prefix: str) -> SafeString:
    """One output as the page shows it (highlighted code, a single line, or Markdown), with each finding's span
    marked: focusable, its reason in the title and in the element `{prefix}-{i}` it describes."""
    spans = [
        (i, f) for i, f in enumerate(findings) if 0 <= f.start < f.end <= len(text) and f.end - f.start < len(text)
    ]
    if display == "code" or not spans:
        return render_code(text, language) if display == "code" else _render_plain(text, display)
    text = _SENTINELS.sub("\ufffd", text)  # one for one: the spans' offsets still hold
    marked, last = [], 0
    for i, f in sorted(spans, key=lambda p: p[1].start):
        if f.start < last:  # overlapping spans: the first one marks the stretch
            continue
        marked += [text[last : f.start], f"{_OPEN}{i}{_SEP}", text[f.start : f.end], _CLOSE]
        last = f.end
    marked.append(text[last:])
    html = str(_render_plain("".join(marked), display))

    def mark(match: re.Match) -> str:
        f = findings[int(match.group(1))]
        return (
            f'<mark class="finding finding-{escapeHtml(f.check)}" tabindex="0" title="{escapeHtml(f.reason)}" '
            f'aria-describedby="{prefix}-{match.group(1)}" data-check="{escapeHtml(f.check)}" '
            f'data-rule="{escapeHtml(f.rule)}">'
        )

    return _clean(_SENTINELS.sub("", _OPENED.sub(mark, html).replace(_CLOSE, "</mark>")), marks=True)


def _render_plain(text: str, display: str) -> SafeString:
    if display == "line":
        return _clean(f'<p class="headline">{escapeHtml(text)}</p>', marks=True)
    return render_markdown(text)


def pygments_css() -> str:
    """Light colours by default; dark ones when the system asks for them (unless the page pins data-theme="light")
    or the page sets data-theme="dark". Only token and background rules, so nothing leaks outside .highlight."""

    def rules(style: str, prefix: str) -> str:
        formatter = HtmlFormatter(style=style)
        return "\n".join(formatter.get_background_style_defs(prefix) + formatter.get_token_style_defs(prefix))

    dark_by_system = rules(DARK_STYLE, 'html:not([data-theme="light"]) .highlight').replace("\n", "\n  ")
    dark_by_page = rules(DARK_STYLE, 'html[data-theme="dark"] .highlight')
    return (
        "/* Generated by `python manage.py write_pygments_css`: do not edit. */\n"
        f"{rules(LIGHT_STYLE, '.highlight')}\n"
        ".highlight { color: #1f2328 }  /* the light style lets text inherit a dark page's pale colour */\n"
        f"@media (prefers-color-scheme: dark) {{\n  {dark_by_system}\n}}\n"
        f"{dark_by_page}\n"
    )
