"""Task-shaped outputs: raw model text -> what each output format promises (formats.py says which shaper a
format uses). Pure.

- headline: one line, without numbering, bullets, markdown or surrounding quotes;
- code: the code alone, without markdown fences or chatter around them;
- summary, writing: clean text; a reply cut off by the token limit ends at its last full sentence.
"""

from __future__ import annotations

import re

_LIST_MARKER = re.compile(r"^\s*(?:\d{1,2}\s*[.):\-]|[-*•·#>]+|\(\d{1,2}\))\s*")
_LABEL = re.compile(
    r"^\s*(?:headline|title|seo title|story|article|news|option\s*\d*|标题)\s*[:：\-]\s*", re.IGNORECASE
)
_QUOTES = "\"'“”‘’「」『』«»`"
_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
# ASCII sentence ends need a space (or the end) after them, to skip "3.5" and "e.g."; CJK ones need none.
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]?(?=\s|$)|[。！？…][”’」』）]?")
_SUMMARY_LABEL = re.compile(r"^\s*(?:summary|tl;dr|摘要|总结)\s*[:：]\s*", re.IGNORECASE)


def clean_headline(text: str) -> str:
    """The first meaningful line of `text`, stripped of list markers, labels, markdown and quotes."""
    for line in text.splitlines():
        line = _LIST_MARKER.sub("", line, count=1)
        line = _LABEL.sub("", line, count=1)
        line = line.replace("**", "").replace("__", "").strip()
        line = line.strip(_QUOTES).strip()
        if line:
            return re.sub(r"\s+", " ", line)
    return ""


def extract_code(text: str) -> str:
    """The code inside the first fenced block, or the whole reply when it has no fence."""
    match = _FENCE.search(text)
    code = match.group(2) if match else text
    return code.strip("\n").rstrip()


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")
_LATIN_WORD = re.compile(r"[^\s\u3400-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]+")
_WORD_OR_CJK = re.compile(
    r"[\u3400-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]|[^\s\u3400-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]+"
)


_HAS_WORD_CHAR = re.compile(r"\w")


def count_words(text: str) -> int:
    """Words as a reader counts them: space-separated words (not bare punctuation such as list dashes), and
    each Chinese/Japanese/Korean character."""
    return len(_CJK.findall(text)) + sum(1 for w in _LATIN_WORD.findall(text) if _HAS_WORD_CHAR.search(w))


def trim_to_words(text: str, budget: int) -> str:
    """At most `budget` words, ending at the last full sentence inside the budget when there is one."""
    if count_words(text) <= budget:
        return text
    tokens = list(_WORD_OR_CJK.finditer(text))
    cut = tokens[budget - 1].end()
    head = text[:cut]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    if ends and count_words(head[: ends[-1]]) >= budget // 2:
        return head[: ends[-1]].strip()
    return head.rstrip(" ,;:-—") + "…"


def clean_prose(text: str, truncated: bool = False, max_words: int | None = None) -> str:
    text = _SUMMARY_LABEL.sub("", text.strip(), count=1).strip()
    if truncated:
        ends = [m.end() for m in _SENTENCE_END.finditer(text)]
        if ends and ends[-1] >= len(text) // 2:
            text = text[: ends[-1]]
    if max_words:
        text = trim_to_words(text, max_words)
    return text.strip()


_ITEM = re.compile(r"^\s*(?:[-*•·]|\d{1,2}[.)])\s*(.*)$")


def clean_list(text: str, max_words: int | None = None) -> str:
    """A bulleted list, one "- item" per line: introductions ("Here are the points:") and empty or cut-off
    items dropped; whole items kept while they fit the word budget."""
    items = [m.group(1).replace("**", "").strip() for line in text.splitlines() if (m := _ITEM.match(line))]
    items = [i for i in items if count_words(i) > 1]
    if not items:  # the model wrote prose: one item per sentence
        prose = clean_prose(text)
        items = [s.strip() for s in re.split(r"(?<=[.!?。！？])\s+", prose) if s.strip()]
    kept, used = [], 0
    for item in items:
        words = count_words(item)
        if max_words and used + words > max_words:
            if not kept:
                kept.append(trim_to_words(item, max_words))
            break
        kept.append(item)
        used += words
    return "\n".join(f"- {item}" for item in kept)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def strip_control(text: str) -> str:
    """Model text is untrusted: control characters (NUL above all, which PostgreSQL refuses) are dropped."""
    return _CONTROL.sub("", text)
