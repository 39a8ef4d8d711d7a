"""The language an output is written in, told from its script alone, and a finding when it is not the language
the source (or the request) is in: the bundled model tends to answer in English whatever it is given. Pure.

Only scripts are told apart: Chinese (Han characters without kana), Japanese (Han with kana), Korean (Hangul)
and English (Latin letters; French or German read as English here, which is enough to catch a Chinese source
summarised in English). Other scripts are not told, so they give no finding.
"""

from __future__ import annotations

import re

from .findings import Finding

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")
_LATIN_LETTER = re.compile(r"[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]")
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]+")
NAMES = {"en": "English", "zh": "Chinese", "ja": "Japanese", "ko": "Korean"}
_MIN_LETTERS = 3  # "OK", "是": too short to tell


def language_of(text: str) -> str | None:
    """ "zh", "ja", "ko" or "en" for the script most of the text is written in, None when it is too short to tell
    or in no script told here. A Latin word weighs as much as a Han character ("苹果发布iPhone" is Chinese),
    since a character carries about a word's meaning."""
    han, kana, hangul = len(_HAN.findall(text)), len(_KANA.findall(text)), len(_HANGUL.findall(text))
    latin_letters = len(_LATIN_LETTER.findall(text))
    if han + kana + hangul + latin_letters < _MIN_LETTERS:
        return None
    scores = {"zh": han + kana, "ko": hangul, "en": len(_LATIN_WORD.findall(text))}
    best = max(scores, key=lambda k: scores[k])
    if best == "zh" and kana >= 0.1 * (han + kana):
        return "ja"
    return best


def _code(language: str) -> str:
    """ "zh-hans", "en_US", "EN" -> "zh", "en", "en"."""
    return re.split(r"[-_]", language.strip().lower())[0]


def language_finding(source: str, output: str, expected: str | None = None) -> Finding | None:
    """A finding for the whole output when it is not in `expected` (a language code), or, without one, not in
    the source's language. Nothing when either language cannot be told."""
    wanted = _code(expected) if expected else language_of(source)
    written = language_of(output)
    if wanted is None or written is None or written == wanted:
        return None
    wanted_name, written_name = NAMES.get(wanted, wanted), NAMES.get(written, written)
    if expected:
        reason = f"Written in {written_name}; {wanted_name} was asked for."
    else:
        reason = f"Written in {written_name}; the source is in {wanted_name}."
    return Finding("language", "language", 0, len(output), output, reason)
