"""Model output shown as HTML: what users see renders, and nothing in the text can run or load in their browser."""

import io
import re

import pytest
from django.conf import settings
from django.core.management import call_command
from django.template import Context, Template
from django.utils.safestring import SafeString

from generation.web import rendering
from generation.web.rendering import pygments_css, render_code, render_markdown


def tags(html: str) -> list[str]:
    """Every real tag in the HTML (escaped text such as &lt;script&gt; is not a tag)."""
    return re.findall(r"<[^>]*>", html)


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "hello <script>alert(1)</script> world",
        "```html\n<script>alert(1)</script>\n```",
        "`<script>alert(1)</script>`",
    ],
)
def test_a_script_never_becomes_a_tag(text):
    html = render_markdown(text)
    assert not any(t.lower().startswith("<script") for t in tags(html))
    assert "alert(1)" not in html or "&lt;" in html


@pytest.mark.parametrize("text", ["<img src=x onerror=alert(1)>", "![pic](http://example.com/x.png)"])
def test_no_images_and_no_event_handlers(text):
    html = render_markdown(text)
    assert "<img" not in html
    assert not any("onerror" in t for t in tags(html))


def test_an_image_keeps_its_alt_text():
    assert "A chart" in render_markdown("![A *chart*](http://example.com/x.png)")


@pytest.mark.parametrize(
    "text",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "<javascript:alert(1)>",
        "[x]: javascript:alert(1)\n\n[x]",
    ],
)
def test_links_to_scripts_have_no_href(text):
    html = render_markdown(text)
    assert not any("href" in t for t in tags(html))


def test_links_keep_safe_urls_and_get_rel():
    html = render_markdown('[site](https://example.com/a?b=1&c=2 "Example") [mail](mailto:a@example.com)')
    assert '<a href="https://example.com/a?b=1&amp;c=2" title="Example" rel="nofollow noopener noreferrer">' in html
    assert 'href="mailto:a@example.com"' in html


def test_only_allowlisted_attributes_appear():
    html = render_markdown("# [t](https://e.com 'T')\n\n|a|\n|-:|\n|1|\n\n```python\nx = 1\n```\n\n![i](x.png)")
    assert all(re.fullmatch(r"</?\w+(\s+(class|href|title|rel|align)=\"[^\"]*\")*\s*/?>", t) for t in tags(html))


def test_the_sanitiser_itself_holds_when_the_parser_lets_html_through():
    """Defence in depth: markdown-it already escapes raw HTML; the allowlist must hold on its own."""
    dirty = (
        '<img src=x onerror=alert(1)><script>alert(1)</script><style>p{}</style><iframe src="https://e.com"></iframe>'
        '<a href="javascript:alert(1)" onclick="x()" target="_blank" rel="opener">a</a><a href="ftp://e.com">f</a>'
        '<div class="highlight" style="position:fixed" id="q">d</div>'
    )
    link = '<a rel="nofollow noopener noreferrer">'
    assert rendering._clean(dirty) == f'{link}a</a>{link}f</a><div class="highlight">d</div>'


def test_common_markdown_renders_to_the_expected_tags():
    text = "# Title\n\nSome *emphasis* and **strong** and ~~old~~.\n\n- one\n- two\n\n1. first\n\n> quote"
    html = render_markdown(text)
    for expected in ("<h1>Title</h1>", "<em>emphasis</em>", "<strong>strong</strong>", "<del>old</del>", "<ul>"):
        assert expected in html
    assert "<li>one</li>" in html and "<ol>" in html and "<blockquote>" in html


def test_a_table_renders_with_alignment():
    html = render_markdown("| Name | Count |\n|:-----|------:|\n| a | 1 |\n")
    assert "<table>" in html and "<thead>" in html and "<tbody>" in html
    assert '<th align="left">Name</th>' in html and '<td align="right">1</td>' in html
    assert "style=" not in html


def test_raw_html_is_shown_as_text():
    html = render_markdown('<b onclick="x()">bold</b>')
    assert "&lt;b onclick=" in html and "<b" not in html


def test_a_python_fence_is_highlighted_with_classes():
    html = render_markdown("```python\ndef f(x):\n    return x < 1\n```")
    assert html.startswith('<div class="highlight"><pre>')
    assert '<span class="k">def</span>' in html and '<span class="nf">f</span>' in html
    assert "&lt;" in html and "style=" not in html


def test_an_unknown_language_renders_escaped():
    html = render_markdown("```no-such-language {x}\n<b>&amp; a < b\n```")
    assert "<pre><code" in html and "&lt;b&gt;&amp;amp; a &lt; b" in html
    assert "<b>" not in html


def test_a_fence_without_language_renders_escaped():
    html = render_markdown("```\n<i>x</i>\n```")
    assert "<pre><code>&lt;i&gt;x&lt;/i&gt;\n</code></pre>" in html


def test_chinese_text_passes_through_intact():
    text = "# 城市骑行的好处\n\n骑自行车**有益健康**，也能减少交通拥堵。"
    html = render_markdown(text)
    assert "<h1>城市骑行的好处</h1>" in html and "<strong>有益健康</strong>，也能减少交通拥堵。" in html


def test_results_are_safe_strings():
    assert isinstance(render_markdown("x"), SafeString) and isinstance(render_code("x"), SafeString)
    assert render_markdown("") == ""


def test_render_code_escapes():
    html = render_code("if a < b && c > d:\n    print('<tag>')\n")
    assert html.startswith('<div class="highlight">')
    assert "&lt;" in html and "&amp;&amp;" in html and "<tag>" not in html
    assert '<span class="k">if</span>' in html


def test_render_code_with_an_unknown_language_is_plain_escaped_text():
    html = render_code("<script>alert(1)</script>", "no-such-language")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
    assert '<span class="' not in html


def test_the_markdown_filter_in_a_template():
    html = Template("{% load studio_render %}<main>{{ text|markdown }}</main>").render(
        Context({"text": "**hi** <script>x</script>"})
    )
    assert html == "<main><p><strong>hi</strong> &lt;script&gt;x&lt;/script&gt;</p>\n</main>"


def test_the_code_filter_in_a_template_takes_a_language():
    template = Template('{% load studio_render %}{{ text|code:"sql" }}|{{ missing|code }}|{{ missing|markdown }}|')
    html = template.render(Context({"text": "SELECT 1 < 2;"}))
    assert '<span class="k">SELECT</span>' in html and "&lt;" in html
    assert html.endswith('<div class="highlight"><pre><span></span><code>\n</code></pre></div>\n||')


def test_css_covers_light_and_both_ways_to_dark():
    css = pygments_css()
    assert ".highlight .k {" in css
    assert "@media (prefers-color-scheme: dark) {" in css
    assert 'html[data-theme="dark"] .highlight .k {' in css
    rules = [line.strip() for line in css.splitlines() if "{" in line and not line.startswith("@media")]
    assert all(".highlight" in rule.split("{")[0] for rule in rules)
    assert "style=" not in render_markdown("```python\nx = 1\n```")


def test_the_committed_css_is_up_to_date():
    assert (settings.BASE_DIR / "static" / "studio" / "pygments.css").read_text(encoding="utf-8") == pygments_css()


def test_write_pygments_css_writes_the_file(tmp_path):
    out = tmp_path / "pygments.css"
    call_command("write_pygments_css", output=out, stderr=io.StringIO())
    assert out.read_text(encoding="utf-8") == pygments_css()


def _finding(text, part, reason="The source gives no figure.", check="grounding", rule="number"):
    from generation.content.findings import Finding

    start = text.index(part)
    return Finding(check, rule, start, start + len(part), part, reason)


def test_a_finding_is_marked_focusable_with_its_reason_and_the_element_it_describes():
    text = "Bridge opens in **2030**, the mayor says"
    html = str(rendering.render_output(text, "markdown", "python", [_finding(text, "2030")], "finding-0"))
    assert '<strong><mark class="finding finding-grounding" tabindex="0"' in html
    assert 'title="The source gives no figure."' in html and 'aria-describedby="finding-0-0"' in html
    assert ">2030</mark></strong>" in html


def test_marks_in_a_headline_and_markup_in_output_and_reasons_stays_text():
    text = 'Council <img src=x onerror=alert(1)> approves "<b>2030</b>" plan'
    found = [_finding(text, "<b>2030</b>", reason='No "<script>alert(1)</script>" here')]
    html = str(rendering.render_output(text, "line", "python", found, "f"))
    assert html.startswith('<p class="headline">') and "<img" not in html and "<b>" not in html
    assert "&lt;b&gt;2030&lt;/b&gt;</mark>" in html and "<script" not in html
    assert "&lt;script&gt;" in html or "&amp;lt;script" in html


def test_overlapping_spans_mark_once_and_sentinel_characters_in_the_text_change_nothing():
    text = "A \ue000 bridge for 40 million dollars"
    found = [_finding(text, "40 million dollars", rule="money"), _finding(text, "40", rule="number")]
    html = str(rendering.render_output(text, "markdown", "python", found, "f"))
    assert html.count("<mark") == 1 and "\ue000" not in html and ">40 million dollars</mark>" in html


def test_without_findings_outputs_render_as_before_and_code_is_never_marked():
    assert rendering.render_output("**x**", "markdown", "python", [], "f") == render_markdown("**x**")
    code = "x = 2030"
    assert rendering.render_output(code, "code", "python", [_finding(code, "2030")], "f") == render_code(code)
