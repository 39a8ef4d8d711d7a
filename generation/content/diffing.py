"""A word-level diff between the model's text and the editor's final text, for showing side by side."""

from __future__ import annotations

import difflib
import re

_TOKENS = re.compile(r"\s+|[\w\u4e00-\u9fff]|[^\w\s]", re.UNICODE)


def _tokens(text: str) -> list[str]:
    # Words stay whole; CJK characters are their own tokens (there are no spaces between words).
    out, word = [], ""
    for piece in _TOKENS.findall(text):
        if len(piece) == 1 and (piece.isalnum() or piece == "_") and not ("\u4e00" <= piece <= "\u9fff"):
            word += piece
            continue
        if word:
            out.append(word)
            word = ""
        out.append(piece)
    if word:
        out.append(word)
    return out


def word_diff(before: str, after: str) -> list[tuple[str, str]]:
    """Segments (op, text): op is "same", "del" (only in before) or "ins" (only in after). Plain text: the
    template escapes it."""
    a, b = _tokens(before), _tokens(after)
    segments: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            segments.append(("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            segments.append(("del", "".join(a[i1:i2])))
        if j2 > j1:
            segments.append(("ins", "".join(b[j1:j2])))
    return segments
