"""Output formats and length rules as data: what each format does with raw text, which candidates it keeps,
how a word budget is read, and that nothing else in the code decides by a format's name."""

import ast
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from generation.content import formats
from generation.content.formats import FORMATS, spec

ROOT = Path(__file__).resolve().parents[2]


def test_each_format_shapes_raw_text_its_own_way():
    assert spec("headline").shaped("1. A\nB") == "A"
    assert spec("code").shaped("```\nx = 1\n```") == "x = 1"
    assert spec("docstrings").shaped("Sure:\n```python\nx = 1\n```") == "x = 1"
    assert spec("text").shaped("  Summary: short.  ") == "short."
    assert spec("text").shaped("It opened. Then it", "length") == "It opened."


def test_a_format_this_release_does_not_know_shapes_as_plain_text():
    assert spec("poem") is formats.TEXT


def test_list_drops_introductions_and_empty_items_and_fits_the_budget():
    raw = "Here are the three key points:\n\n1. The council approved a new bridge.\n2. **Work starts in spring.**\n3."
    assert spec("list").shaped(raw) == "- The council approved a new bridge.\n- Work starts in spring."
    assert spec("list").shaped(raw, max_words=8) == "- The council approved a new bridge."
    assert (
        spec("list").shaped("The bridge opens in May. It cost a lot.") == "- The bridge opens in May.\n- It cost a lot."
    )


def test_control_characters_never_reach_storage():
    assert spec("text").shaped("a\x00b\x07c\nd\te") == "abc\nd\te"
    assert spec("headline").shaped("\x00Bridge \x1bopens") == "Bridge opens"


def test_headlines_are_distinct_ignoring_case_spacing_and_punctuation_other_formats_keep_all():
    lines = ["Bridge approved", "bridge approved!", "", "Bridge  Approved.", "New bridge"]
    assert spec("headline").keep_distinct(lines) == ["Bridge approved", "New bridge"]
    assert spec("text").keep_distinct(lines) == lines


@pytest.mark.parametrize(
    "name, text, language, min_words, ok",
    [
        ("headline", "Council approves the bridge", "python", 0, True),
        ("headline", "Bridge", "python", 0, False),  # under the 3-word bound
        ("headline", " ".join(["word"] * 21), "python", 0, False),  # over the 20-word bound
        ("code", "def f(:\n  pass", "python", 0, False),  # Python must parse
        ("code", "def f(:\n  pass", "javascript", 0, True),  # other languages are not parsed
        ("text", "", "python", 0, False),
        ("text", "One two three.", "python", 5, False),  # under the kind's least words
        ("text", "One two three four five.", "python", 5, True),
    ],
)
def test_what_is_acceptable_without_another_round(name, text, language, min_words, ok):
    assert spec(name).acceptable(text, language=language, min_words=min_words) is ok


def test_the_candidate_loop_reads_rounds_and_stops_from_the_spec():
    assert spec("headline").top_up_rounds == 4 and spec("headline").stop == ("\n",)
    assert all(f.top_up_rounds == 1 and f.stop == () for n, f in FORMATS.items() if n != "headline")


def test_downloads_list_candidates_fence_code_and_keep_a_list_as_written():
    assert spec("headline").download(["A b c", "D e f"], markdown=True, language="python") == "- A b c\n- D e f"
    assert spec("headline").download(["A b c", "D e f"], markdown=False, language="python") == "A b c\nD e f"
    assert spec("code").download(["x = 1"], markdown=True, language="go") == "```go\nx = 1\n```"
    assert spec("code").download(["x = 1"], markdown=False, language="go") == "x = 1"
    assert spec("list").download(["- a\n- b"], markdown=True, language="python") == "- a\n- b"
    assert spec("text").download(["One.", "Two."], markdown=True, language="python") == "- One.\n- Two."


def test_pages_show_code_highlighted_headlines_as_a_line_and_the_rest_as_markdown():
    assert {n: f.display for n, f in FORMATS.items()} == {
        "text": "markdown",
        "list": "markdown",
        "headline": "line",
        "code": "code",
        "docstrings": "code",
    }


def test_length_rules_per_kind():
    writing, summary, other = formats.length("writing"), formats.length("summary"), formats.length("code")
    assert writing.bounds(100) == (50, 150) and writing.min_words(100) == 50 and writing.max_words(100, {}) == 150
    assert other.min_words(100) == 0 and other.max_words(100, {}) == 100 and other.max_words(None, {}) is None
    source = {"text": " ".join(["word"] * 50)}
    assert summary.max_words(None, source) == 40  # under 80% of the source whatever was asked
    assert summary.max_words(100, source) == 40 and summary.max_words(20, source) == 20
    assert writing.max_new_tokens(100) > other.max_new_tokens(100)


def test_documents_python_only_for_the_docstrings_format_in_python():
    version = SimpleNamespace(output_format="docstrings")
    assert formats.documents_python(version, {"language": "Python"})
    assert not formats.documents_python(version, {"language": "go"})
    assert not formats.documents_python(SimpleNamespace(output_format="code"), {"language": "python"})


def test_the_model_field_offers_exactly_the_formats():
    from generation.models import TemplateVersion

    assert TemplateVersion._meta.get_field("output_format").choices == formats.CHOICES


def _names_a_format(node: ast.AST) -> bool:
    """A string literal or a `Kind.X` member (alone or in a tuple, list or set): a specific format or kind."""
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_names_a_format(e) for e in node.elts)
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)) or (
        isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Kind"
    )


def _compares_a_format(node: ast.AST) -> bool:
    """`x.output_format == "headline"`, `job.kind in (Kind.WRITING, ...)`: a decision by a name."""
    if not isinstance(node, ast.Compare):
        return False
    sides = (node.left, *node.comparators)
    mentions = [
        any(
            (isinstance(n, ast.Attribute) and n.attr in ("output_format", "kind"))
            or (isinstance(n, ast.Name) and n.id == "output_format")
            for n in ast.walk(side)
        )
        for side in sides
    ]
    return any(mentions) and any(_names_a_format(side) for side, m in zip(sides, mentions, strict=True) if not m)


def test_no_module_decides_by_a_format_or_kind_name():
    """The specs are the one place: a comparison with `output_format` or `.kind` outside formats.py
    (in Python or in the page templates) is a rule written twice."""
    found = []
    for path in sorted((ROOT / "generation").rglob("*.py")):
        if path.name == "formats.py" or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if _compares_a_format(node):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    for path in sorted((ROOT / "templates").rglob("*.html")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"output_format\s*(==|!=| in )", line):
                found.append(f"{path.relative_to(ROOT)}:{n}")
    assert not found, "decided by a format's name outside formats.py: " + ", ".join(found)
