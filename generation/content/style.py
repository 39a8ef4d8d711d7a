"""A desk's house style as data: stated in the system prompt, linted on the output, the safe fixes applied. Pure.

The rules (JSON, versioned with the template; every key optional):
    {"banned": [{"phrase": "slams", "replacement": "criticises"}, {"phrase": "shocking"}],
     "spelling": "uk",                      # or "us"
     "headline_case": "sentence",           # or "title"
     "headline_max_chars": 70,
     "numerals": "spell_one_to_nine",       # or "digits"
     "chinese_punctuation": "full_width"}

What is applied and what is only reported. `apply` rewrites only what cannot change what someone meant:
banned phrases that have a replacement, headline case, and full-width punctuation in Chinese text. Spelling and
numerals are reported, never applied (a wrong automatic fix in a quote, a name or a title would change what
someone said or wrote); an over-long headline is reported (cutting it is an editor's call).

Decisions worth knowing:
- Banned phrases and spellings match whole words, case-insensitively, and a hyphen or apostrophe ends a word:
  "slams" is found in "Minister slams plan" and in "slams-and-spins", not in "unslammed"; a ban on "slams" does
  not ban "slammed" (list every form the desk bans). Spellings come with their inflections ("colours",
  "colourful", "organised", "organising"), so the US rule flags "colourful" as "colorful".
- Text inside quotation marks ("…", “…”, ‘…’, 「…」, 『…』, «…») is what someone said: a banned phrase there is
  reported but never rewritten, and headline case leaves quoted words (often the title of a work) as written.
  Straight single quotes are not read as quotation marks (they are apostrophes too). An unclosed quote runs to
  the end of its line. URLs and e-mail addresses are left out of every rule.
- "uk" spelling means -ise (organise), as at the Guardian and the BBC, not Oxford -ize. Pairs where one form is
  right in both varieties are checked one way only: "licence" is flagged under "us", "license" is never
  flagged under "uk" (it is the British verb); the same for programme, practise, cheque, tyre, kerb, draught.
- `names` (words of proper nouns, e.g. from `names_from(source)`) are kept: never lowercased by sentence case,
  never flagged for spelling ("Labor Party", "Lincoln Center"). Days and months are always kept.
- Sentence case lowercases only a word capitalised the way title case does it ("Unveils"), never an acronym
  ("NASA", "UK"), a mixed-case word ("iPhone", "McDonald"), "I", a name, or the word after a colon (both
  conventions exist); it capitalises a lowercase first word. Title case capitalises the principal words and
  keeps short function words (a, of, in, the, ...) lower except first and last, and after a colon.
- Numerals: "spell_one_to_nine" flags a lone digit 1-9 (not 3.5, 3-1, 3pm, £3, 5%, 5 km, 2 million, page 3,
  Windows 7, a list marker) and a spelled number from ten to ninety-nine; "digits" flags spelled numbers two to
  ninety-nine ("one" is too often a pronoun). A spelled number starting a sentence is left alone.
- Full-width punctuation: , . : ; ? ! ( ) next to Chinese or Japanese characters become ， 。 ： ； ？ ！ （ ）
  (spaces around them go: the marks carry their own); never between digits (3.5, 1,000, 10:30), never in a
  URL, never a "." after a Latin letter ("U.S.") or in "..."; parentheses only as a pair with Chinese outside.
- A fixed finding's span is where its fix now stands in the new text; when a later fix only partly overlaps it
  the span cannot be mapped and is 0, 0 (its reason still says what was done).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass

from .findings import Finding

KEYS = ("banned", "spelling", "headline_case", "headline_max_chars", "numerals", "chinese_punctuation")
CHOICES = {
    "spelling": ("uk", "us"),
    "headline_case": ("sentence", "title"),
    "numerals": ("spell_one_to_nine", "digits"),
    "chinese_punctuation": ("full_width",),
}
MAX_BANNED = 200
MAX_PHRASE_CHARS = 80
HEADLINE_CHARS = (10, 300)
_MAX_ROUNDS = 4  # a fix can make another one possible ("增长(3%)." needs the bracket before the stop)


class InvalidStyle(ValueError):
    """Bad rules; `errors` maps each path at fault ("banned.2.phrase"; "" for the rules as a whole) to messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{k or 'style'}: {' '.join(v)}" for k, v in errors.items()))


@dataclass(frozen=True)
class Banned:
    phrase: str
    replacement: str | None = None


@dataclass(frozen=True)
class StyleRules:
    banned: tuple[Banned, ...] = ()
    spelling: str | None = None
    headline_case: str | None = None
    headline_max_chars: int | None = None
    numerals: str | None = None
    chinese_punctuation: str | None = None

    def as_json(self) -> dict:
        """The rules as stored: only what is set, so no rules is `{}`; `parse(rules.as_json()) == rules`."""
        out: dict = {}
        if self.banned:
            out["banned"] = [
                {"phrase": b.phrase, **({"replacement": b.replacement} if b.replacement else {})} for b in self.banned
            ]
        for key in KEYS[1:]:
            if (value := getattr(self, key)) is not None:
                out[key] = value
        return out


# --- parsing ---------------------------------------------------------------------------------------------------


def _clean_phrase(value: object, errors: dict, where: str) -> str | None:
    """A phrase or replacement: one line of text with a letter or digit in it; None (with an error) otherwise."""
    if not isinstance(value, str) or not value.strip():
        errors[where] = ["Must be non-empty text."]
        return None
    value = value.strip()
    if len(value) > MAX_PHRASE_CHARS:
        errors[where] = [f"At most {MAX_PHRASE_CHARS} characters (got {len(value)})."]
    elif any(c in value for c in "\n\r\t\x00"):
        errors[where] = ["Must be one line of text."]
    elif not re.search(r"\w", value):
        errors[where] = ["Must contain a letter or a digit."]
    else:
        return value
    return None


def _parse_banned(value: object, errors: dict) -> tuple[Banned, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        errors["banned"] = ['Must be a list of objects with a "phrase" and, optionally, a "replacement".']
        return ()
    if len(value) > MAX_BANNED:
        errors["banned"] = [f"At most {MAX_BANNED} phrases (got {len(value)})."]
        return ()
    items: list[tuple[int, Banned]] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(value):
        where = f"banned.{i}"
        if not isinstance(item, dict):
            errors[where] = ['Must be an object with a "phrase" and, optionally, a "replacement".']
            continue
        unknown = sorted(str(k) for k in item if k not in ("phrase", "replacement"))
        if unknown:
            errors[where] = [f"Unknown keys: {', '.join(unknown)}; known: phrase, replacement."]
        phrase = _clean_phrase(item.get("phrase"), errors, f"{where}.phrase")
        replacement = item.get("replacement")
        if replacement is not None:
            replacement = _clean_phrase(replacement, errors, f"{where}.replacement")
        if phrase is None:
            continue
        key = " ".join(phrase.casefold().split())
        if key in seen:
            errors[f"{where}.phrase"] = [f"Already banned at banned.{seen[key]}."]
            continue
        seen[key] = i
        items.append((i, Banned(phrase, replacement)))
    # A replacement that holds a banned phrase would be rewritten again on every pass: apply would never settle.
    pattern = _banned_pattern(tuple(b for _, b in items))
    for i, b in items:
        if b.replacement and pattern and (m := pattern.search(b.replacement)):
            errors[f"banned.{i}.replacement"] = [f'Contains the banned "{m.group()}"; the fix would never settle.']
    return tuple(b for _, b in items)


def parse(data: dict | None) -> StyleRules:
    """The rules, validated; every error at once, each under its path ("banned.2.phrase", "spelling")."""
    if data is None:
        return StyleRules()
    if not isinstance(data, dict):
        raise InvalidStyle({"": ["Must be an object."]})
    errors: dict[str, list[str]] = {}
    for key in data:
        if key not in KEYS:
            errors[str(key)] = [f"Unknown rule; known: {', '.join(KEYS)}."]
    banned = _parse_banned(data.get("banned"), errors)
    for key, allowed in CHOICES.items():
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or value not in allowed):
            errors[key] = [f"One of: {', '.join(allowed)}."]
    limit = data.get("headline_max_chars")
    low, high = HEADLINE_CHARS
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not low <= limit <= high):
        errors["headline_max_chars"] = [f"A whole number of characters from {low} to {high}."]
    if errors:
        raise InvalidStyle(errors)
    return StyleRules(
        banned=banned,
        spelling=data.get("spelling"),
        headline_case=data.get("headline_case"),
        headline_max_chars=limit,
        numerals=data.get("numerals"),
        chinese_punctuation=data.get("chinese_punctuation"),
    )


def layered(house: dict | None, own: dict | None) -> dict | None:
    """A desk's house style under a template's own rules: the template's rule wins where both set one, and the
    banned phrases add up (the template's first, then the desk's that it does not already ban)."""
    if not house:
        return own
    own = dict(own or {})
    merged = {**{k: v for k, v in house.items() if k != "banned"}, **{k: v for k, v in own.items() if k != "banned"}}
    banned = list(own.get("banned") or [])
    seen = {str(b.get("phrase", "")).casefold() for b in banned if isinstance(b, dict)}
    banned += [b for b in house.get("banned") or [] if str(b.get("phrase", "")).casefold() not in seen]
    return {**merged, **({"banned": banned} if banned else {})}


# --- the prompt ------------------------------------------------------------------------------------------------


def prompt_lines(rules: StyleRules) -> list[str]:
    """The rules that can be put in words, as short instructions for the system prompt (the headline ones are
    stated whatever the format: the rules do not know it)."""
    lines = []
    for b in rules.banned:
        said = f'Do not use the {"phrase" if len(b.phrase.split()) > 1 else "word"} "{b.phrase}"'
        lines.append(f'{said}; write "{b.replacement}".' if b.replacement else f"{said}.")
    if rules.spelling:
        lines.append(f"Use {'British' if rules.spelling == 'uk' else 'American'} spelling.")
    if rules.headline_case:
        lines.append(f"Write headlines in {rules.headline_case} case.")
    if rules.headline_max_chars:
        lines.append(f"Keep headlines to {rules.headline_max_chars} characters or fewer.")
    if rules.numerals == "spell_one_to_nine":
        lines.append("Spell out numbers from one to nine; use digits from 10.")
    elif rules.numerals == "digits":
        lines.append("Use digits for numbers.")
    if rules.chinese_punctuation:
        lines.append("In Chinese text, use full-width punctuation (，。：；？！（）).")
    return lines


# --- spelling pairs ----------------------------------------------------------------------------------------------
# (British form, American form, which rule flags it): "both", "us" (only the US rule flags the British form:
# the American one is also right in British English, e.g. the verb "license"), "uk" (only the UK rule flags the
# American form: "analyses" is also the plural of "analysis").


def _words(text: str) -> list[str]:
    """Word lists are written as text, one space between words, to keep them readable."""
    return text.split()


def _spelling_pairs() -> list[tuple[str, str, str]]:
    pairs: list[tuple[str, str, str]] = []
    our_extra = {
        "colour": ("ful", "fully", "less"),
        "flavour": ("ful", "less"),
        "honour": ("able", "ably"),
        "humour": ("less",),
        "labour": ("er", "ers"),
        "neighbour": ("hood", "hoods", "ly"),
        "favour": ("ite", "ites", "able", "ably", "itism"),
        "behaviour": ("al", "ally"),
        "harbour": (),
        "rumour": (),
        "vapour": (),
        "armour": (),
        "endeavour": (),
        "odour": ("less",),
        "tumour": (),
        "savour": ("y",),
    }
    for word, extra in our_extra.items():
        for suffix in ("", "s", "ed", "ing", *extra):
            pairs.append((word + suffix, word[:-2] + "r" + suffix, "both"))
    ise_stems = _words(
        "organ real recogn apolog critic emphas priorit summar special author minim maxim standard modern "
        "final legal mobil character categor util optim normal stabil privat subsid memor sympath capital "
        "central civil colon terror harmon global public jeopard scrutin patron"
    )
    for stem in ise_stems:
        for suffix in ("e", "es", "ed", "ing", "ation", "ations", "er", "ers", "able"):
            pairs.append((f"{stem}is{suffix}", f"{stem}iz{suffix}", "both"))
    for stem in ("analy", "paraly", "cataly"):
        pairs += [(f"{stem}s{s}", f"{stem}z{s}", "both") for s in ("e", "ed", "ing", "er", "ers")]
        pairs.append((f"{stem}ses", f"{stem}zes", "uk"))
    for word in _words(
        "centre theatre litre fibre calibre sombre spectre lustre meagre sabre kilometre centimetre millimetre"
    ):
        pairs += [(word, word[:-2] + "er", "both"), (word + "s", word[:-2] + "ers", "both")]
    pairs += [("centred", "centered", "both"), ("centring", "centering", "both")]
    for uk, us in (("manoeuvre", "maneuver"), ("defence", "defense"), ("offence", "offense"), ("pretence", "pretense")):
        pairs += [(uk, us, "both"), (uk + "s", us + "s", "both")]
    pairs += [
        ("manoeuvred", "maneuvered", "both"),
        ("manoeuvring", "maneuvering", "both"),
        ("defenceless", "defenseless", "both"),
    ]
    doubled = _words("travel cancel label model fuel signal level channel total tunnel quarrel dial rival counsel")
    for stem in doubled:
        pairs += [(f"{stem}l{s}", f"{stem}{s}", "both") for s in ("ed", "ing", "er", "ers")]
    pairs += [
        (uk, us, "both")
        for uk, us in (
            ("counsellor", "counselor"),
            ("counsellors", "counselors"),
            ("jewellery", "jewelry"),
            ("marvellous", "marvelous"),
            ("woollen", "woolen"),
            ("enrol", "enroll"),
            ("enrols", "enrolls"),
            ("enrolment", "enrollment"),
            ("enrolments", "enrollments"),
            ("fulfil", "fulfill"),
            ("fulfils", "fulfills"),
            ("fulfilment", "fulfillment"),
            ("instalment", "installment"),
            ("instalments", "installments"),
            ("skilful", "skillful"),
            ("skilfully", "skillfully"),
            ("wilful", "willful"),
            ("wilfully", "willfully"),
            ("grey", "gray"),
            ("greys", "grays"),
            ("aluminium", "aluminum"),
            ("catalogue", "catalog"),
            ("catalogues", "catalogs"),
            ("catalogued", "cataloged"),
            ("plough", "plow"),
            ("ploughs", "plows"),
            ("ploughed", "plowed"),
            ("ploughing", "plowing"),
            ("mould", "mold"),
            ("moulds", "molds"),
            ("mouldy", "moldy"),
            ("sceptic", "skeptic"),
            ("sceptics", "skeptics"),
            ("sceptical", "skeptical"),
            ("scepticism", "skepticism"),
            ("paediatric", "pediatric"),
            ("paediatrician", "pediatrician"),
            ("paediatricians", "pediatricians"),
            ("anaemia", "anemia"),
            ("anaemic", "anemic"),
            ("oestrogen", "estrogen"),
            ("foetus", "fetus"),
            ("foetal", "fetal"),
            ("diarrhoea", "diarrhea"),
            ("leukaemia", "leukemia"),
            ("ageing", "aging"),
            ("pyjamas", "pajamas"),
            ("moustache", "mustache"),
            ("artefact", "artifact"),
            ("artefacts", "artifacts"),
            ("cosy", "cozy"),
            ("doughnut", "donut"),
            ("doughnuts", "donuts"),
            ("practised", "practiced"),
            ("practising", "practicing"),
        )
    ]
    for uk, us in (
        ("licence", "license"),
        ("programme", "program"),
        ("practise", "practice"),
        ("cheque", "check"),
        ("tyre", "tire"),
        ("kerb", "curb"),
        ("draught", "draft"),
    ):
        pairs += [(uk, us, "us"), (uk + "s", us + "s", "us")]
    return pairs


def _spelling_tables() -> dict[str, dict[str, str]]:
    """For each rule, the wrong form (lowercase) -> the right one."""
    tables: dict[str, dict[str, str]] = {"uk": {}, "us": {}}
    for uk, us, which in _spelling_pairs():
        if which in ("both", "uk"):
            tables["uk"][us] = uk
        if which in ("both", "us"):
            tables["us"][uk] = us
    return tables


SPELLING = _spelling_tables()
_SPELLING_PATTERNS = {
    rule: re.compile(r"(?<!\w)(?:" + "|".join(sorted(table, key=len, reverse=True)) + r")(?!\w)", re.IGNORECASE)
    for rule, table in SPELLING.items()
}

# --- what a text is made of ---------------------------------------------------------------------------------------

# A word for case: letters (with inner apostrophes), not part of a number, a domain or an abbreviation ("U.S.").
_WORD = re.compile(r"(?<![\w.@/])[^\W\d_]+(?:['’][^\W\d_]+)*(?![\w@/]|\.\w)")
_QUOTE = re.compile(
    r'"[^"]*"|"[^"\n]*|“[^”]*”|“[^”\n]*|‘.*?’(?![^\W\d_])|‘[^\n]*'  # closed, or open to the end of the line
    r"|「[^」]*」|「[^」\n]*|『[^』]*』|『[^』\n]*|«[^»]*»|«[^»\n]*",
    re.DOTALL,
)
_URL = re.compile(
    r"(?:https?://|www\.)[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
)
_SKIPPED = " \t\"'“”‘’「」『』«»()[]（）"  # passed over when looking for what comes before or after a word
_SENTENCE_ENDS = ".!?。！？"
_COLONS = ":："
_SMALL_WORDS = frozenset(_words("a an the and but or nor for yet as at by in of on per to via vs v"))
_ALWAYS_CAPITALISED = frozenset(
    _words(
        "Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April June July "
        "August September October November December"
    )
)
_CHINESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff01-\uff60]")
_FULL_WIDTH = {",": "，", ".": "。", ":": "：", ";": "；", "?": "？", "!": "！", "(": "（", ")": "）"}
# Quotes used in both scripts are passed over; Chinese quotes and brackets are Chinese context themselves.
_CHINESE_LEFT_SKIP = " \t”’\"'"
_CHINESE_RIGHT_SKIP = " \t“‘\"'"


@dataclass(frozen=True)
class _Context:
    text: str
    quotes: tuple[tuple[int, int], ...]
    urls: tuple[tuple[int, int], ...]
    names: frozenset[str]

    def in_quote(self, start: int, end: int) -> bool:
        return any(s < end and start < e for s, e in self.quotes)

    def in_url(self, start: int, end: int) -> bool:
        return any(s < end and start < e for s, e in self.urls)

    def is_name(self, word: str) -> bool:
        return word in self.names or re.split(r"['’]", word)[0] in self.names or word in _ALWAYS_CAPITALISED


def _url_spans(text: str) -> tuple[tuple[int, int], ...]:
    """URLs and e-mail addresses, without the sentence's punctuation after them ("see https://a.b/c.")."""
    spans = []
    for m in _URL.finditer(text):
        url = m.group().rstrip(".,;:!?'")
        while url.endswith(")") and url.count("(") < url.count(")"):
            url = url[:-1].rstrip(".,;:!?'")
        spans.append((m.start(), m.start() + len(url)))
    return tuple(spans)


def _name_words(names: Iterable[str]) -> frozenset[str]:
    """ "Tim Cook", "Coca-Cola", "Britain's" -> each word, and each without its "'s"."""
    words = [w for name in names for w in _WORD.findall(name)]
    return frozenset(words + [re.split(r"['’]", w)[0] for w in words])


def _context(text: str, names: Iterable[str]) -> _Context:
    quotes = tuple((m.start(), m.end()) for m in _QUOTE.finditer(text))
    return _Context(text, quotes, _url_spans(text), _name_words(names))


def _before(text: str, pos: int) -> str:
    """The character before `pos`, passing over spaces, quotes and brackets; "" at the start or a line break."""
    i = pos - 1
    while i >= 0 and text[i] in _SKIPPED:
        i -= 1
    return "" if i < 0 or text[i] == "\n" else text[i]


def _after(text: str, pos: int) -> str:
    i = pos
    while i < len(text) and text[i] in _SKIPPED:
        i += 1
    return "" if i >= len(text) or text[i] == "\n" else text[i]


def _starts_sentence(text: str, pos: int) -> bool:
    return _before(text, pos) in ("", *_SENTENCE_ENDS)


def _match_case(original: str, replacement: str) -> str:
    """The replacement in the original's case: "SLAMS" -> "CRITICISES", "Slams" -> "Criticises"; a lowercase
    original keeps the replacement as written (it may be "EU")."""
    if len(original) > 1 and original.isupper():
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def _is_capitalised(word: str) -> bool:
    """ "Unveils", "Don't": a capital and then lowercase only (not "NASA", "iPhone", "McDonald")."""
    return word[:1].isupper() and (len(word) == 1 or word[1:].islower())


def names_from(text: str) -> set[str]:
    """Words written with a capital where a sentence does not start ("Tim Cook of Apple said"): likely names, to
    pass as `names` when the source is known, so sentence case keeps them in a headline."""
    return {
        re.split(r"['’]", m.group())[0]
        for m in _WORD.finditer(text)
        if not m.group().islower() and m.group() != "I" and not _starts_sentence(text, m.start())
    }


# --- the rules ---------------------------------------------------------------------------------------------------
# Each returns (finding, fixable) pairs: a fixable finding has a replacement that `apply` may put in its place.

Found = list[tuple[Finding, bool]]


def _finding(rule: str, ctx: _Context, start: int, end: int, reason: str, replacement: str | None = None) -> Finding:
    return Finding("style", rule, start, end, ctx.text[start:end], reason, replacement=replacement)


def _banned_pattern(banned: tuple[Banned, ...]) -> re.Pattern | None:
    """One pattern for all the phrases, longest first, each a named group `b<i>` so a match names its rule."""
    if not banned:
        return None
    parts = []
    for i, b in sorted(enumerate(banned), key=lambda ib: -len(ib[1].phrase)):
        body = r"\s+".join(re.escape(w) for w in b.phrase.split())
        head = r"(?<!\w)" if re.match(r"\w", b.phrase) else ""
        tail = r"(?!\w)" if re.search(r"\w$", b.phrase) else ""
        parts.append(f"(?P<b{i}>{head}{body}{tail})")
    return re.compile("|".join(parts), re.IGNORECASE)


def _banned(rules: StyleRules, ctx: _Context, headline: bool) -> Found:
    pattern = _banned_pattern(rules.banned)
    if pattern is None:
        return []
    out: Found = []
    for m in pattern.finditer(ctx.text):
        if ctx.in_url(m.start(), m.end()):
            continue
        rule = rules.banned[int(m.lastgroup[1:])]
        if rule.replacement is None:
            out.append((_finding("banned", ctx, m.start(), m.end(), f'House style: do not use "{m.group()}".'), False))
            continue
        replacement = _match_case(m.group(), rule.replacement)
        reason = f'House style: write "{replacement}", not "{m.group()}".'
        quoted = ctx.in_quote(m.start(), m.end())
        if quoted:
            reason += " It is inside a quotation, so it is left as said."
        out.append((_finding("banned", ctx, m.start(), m.end(), reason, replacement), not quoted))
    return out


def _spelling(rules: StyleRules, ctx: _Context, headline: bool) -> Found:
    if not rules.spelling:
        return []
    table, variety = SPELLING[rules.spelling], "British" if rules.spelling == "uk" else "American"
    out: Found = []
    for m in _SPELLING_PATTERNS[rules.spelling].finditer(ctx.text):
        if ctx.in_url(m.start(), m.end()) or ctx.is_name(m.group()):
            continue
        right = _match_case(m.group(), table[m.group().lower()])
        reason = f'House style is {variety} spelling: "{right}", not "{m.group()}".'
        out.append((_finding("spelling", ctx, m.start(), m.end(), reason, right), False))
    return out


def _case_of(word: str, case: str, place: str, next_char: str, ctx: _Context) -> str:
    """What `word` should be in a `case` headline, at `place` ("first", "after_colon", "last" or "middle")."""
    if ctx.is_name(word):
        return word
    capitalised = word[:1].upper() + word[1:]
    if case == "sentence":
        if place == "first":
            return capitalised if word.islower() else word
        if place == "after_colon" or not _is_capitalised(word) or re.split(r"['’]", word)[0] == "I":
            return word
        if len(word) == 1 and word != "A":
            return word
        if word == "A" and not next_char.isalpha():  # "Plan A", "Vitamin A." stay; the article goes lower
            return word
        return word[:1].lower() + word[1:]
    if place == "middle" and word.lower() in _SMALL_WORDS:
        return word.lower() if _is_capitalised(word) else word
    return capitalised if word.islower() else word


def _headline_case(rules: StyleRules, ctx: _Context, headline: bool) -> Found:
    if not (headline and rules.headline_case):
        return []
    text, case = ctx.text, rules.headline_case
    out: Found = []
    for m in _WORD.finditer(text):
        word = m.group()
        if ctx.in_quote(m.start(), m.end()) or ctx.in_url(m.start(), m.end()):
            continue
        before, after = _before(text, m.start()), _after(text, m.end())
        if before in ("", *_SENTENCE_ENDS):
            place = "first"
        elif before in _COLONS:
            place = "after_colon"
        elif after in ("", *_SENTENCE_ENDS, *_COLONS):
            place = "last"
        else:
            place = "middle"
        following = text[m.end() + 1 : m.end() + 2] if text[m.end() : m.end() + 1] == " " else ""
        wanted = _case_of(word, case, place, following, ctx)
        if wanted != word:
            reason = f'Headlines are in {case} case: "{wanted}", not "{word}".'
            out.append((_finding("headline_case", ctx, m.start(), m.end(), reason, wanted), True))
    return out


def _headline_max_chars(rules: StyleRules, ctx: _Context, headline: bool) -> Found:
    limit, length = rules.headline_max_chars, len(ctx.text.rstrip())
    if not (headline and limit) or length <= limit:
        return []
    reason = f"The headline is {length} characters; house style allows {limit}."
    return [(_finding("headline_max_chars", ctx, limit, length, reason), False)]


_UNITS = _words("one two three four five six seven eight nine")
_TEENS = _words("ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen")
_TENS = _words("twenty thirty forty fifty sixty seventy eighty ninety")
_NUMBER_WORD = re.compile(
    rf"(?<![\w-])(?:({'|'.join(_TENS)})(?:-({'|'.join(_UNITS)}))?|({'|'.join(_TEENS)})|({'|'.join(_UNITS)}))(?![\w-])",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"(?<![\w.,:/\-+$£€¥#%])[1-9](?![\w%°]|[.,:/\-]\d)")
# After a digit: a unit, a percent or a large number keep the figure ("5 km", "5%", "2 million", "3pm").
_KEEPS_FIGURE_AFTER = re.compile(
    r"\s*(?:%|per\s*cent\b|percent\b|(?:million|billion|trillion|bn|km|cm|mm|m|kg|g|lbs?|mph|ft|am|pm)\b|[ap]\.m\.)",
    re.IGNORECASE,
)
# Before a digit: a word that makes it a label ("page 3", "No. 1").
_KEEPS_FIGURE_BEFORE = frozenset(
    _words(
        "no number page chapter section step room version part phase level grade season episode round game "
        "platform gate figure fig table volume vol category route article clause act scene class type size "
        "day week"
    )
)
_PREVIOUS_WORD = re.compile(r"([^\W\d_]+)\.?\s+$")


def _number_value(m: re.Match) -> int:
    tens, unit_after_tens, teen, unit = (g.lower() if g else None for g in m.groups())
    if tens:
        return 10 * (_TENS.index(tens) + 2) + (_UNITS.index(unit_after_tens) + 1 if unit_after_tens else 0)
    if teen:
        return 10 + _TEENS.index(teen)
    return _UNITS.index(unit) + 1


def _digit_is_a_label(text: str, start: int) -> bool:
    """ "page 3", "Windows 7", "1." or "(1)" opening a list item: the figure is part of a name or a label."""
    if text[start + 1 : start + 2] in (".", ")") and text[:start].rsplit("\n", 1)[-1].strip() in ("", "("):
        return True
    previous = _PREVIOUS_WORD.search(text[max(0, start - 40) : start])
    if not previous:
        return False
    word = previous.group(1)
    word_start = start - len(previous.group())
    return word.lower() in _KEEPS_FIGURE_BEFORE or (
        _is_capitalised(word) and len(word) > 1 and not _starts_sentence(text, max(0, word_start))
    )


def _numerals(rules: StyleRules, ctx: _Context, headline: bool) -> Found:
    if not rules.numerals:
        return []
    text, out = ctx.text, []
    if rules.numerals == "spell_one_to_nine":
        for m in _DIGIT.finditer(text):
            if ctx.in_url(m.start(), m.end()) or _KEEPS_FIGURE_AFTER.match(text, m.end()):
                continue
            if _digit_is_a_label(text, m.start()):
                continue
            word = _UNITS[int(m.group()) - 1]
            word = word.capitalize() if _starts_sentence(text, m.start()) else word
            reason = f'House style spells out one to nine: "{word}", not "{m.group()}".'
            out.append((_finding("numerals", ctx, m.start(), m.end(), reason, word), False))
    lowest = 10 if rules.numerals == "spell_one_to_nine" else 2
    for m in _NUMBER_WORD.finditer(text):
        value = _number_value(m)
        if value < lowest or _starts_sentence(text, m.start()) or ctx.in_url(m.start(), m.end()):
            continue
        if ctx.is_name(m.group()):
            continue
        rule = "uses digits from 10" if lowest == 10 else "uses digits"
        reason = f'House style {rule}: "{value}", not "{m.group()}".'
        out.append((_finding("numerals", ctx, m.start(), m.end(), reason, str(value)), False))
    return out


def _chinese_left(text: str, pos: int, picks: set[int]) -> bool:
    """Whether Chinese comes before `pos`: a Chinese character, or a mark that becomes full-width itself."""
    i = pos - 1
    while i >= 0 and text[i] in _CHINESE_LEFT_SKIP:
        i -= 1
    return i >= 0 and (i in picks or bool(_CHINESE.match(text[i])))


def _chinese_right(text: str, pos: int, picks: set[int]) -> bool:
    i = pos
    while i < len(text) and text[i] in _CHINESE_RIGHT_SKIP:
        i += 1
    return i < len(text) and (i in picks or bool(_CHINESE.match(text[i])))


def _chinese_picks(text: str, ctx: _Context) -> set[int]:
    """The ASCII marks to make full-width. A mark next to one that is made full-width is next to Chinese too
    ("好?!"), so marks are picked until no more are: one pass of `apply` then settles them all."""
    marks, pairs = [], []
    for m in re.finditer(r"[,.:;?!]", text):
        i, mark = m.start(), m.group()
        before, after = text[i - 1 : i], text[i + 1 : i + 2]
        if ctx.in_url(i, i + 1) or (before.isdigit() and after.isdigit()):
            continue  # 3.5, 1,000, 10:30
        if mark == "." and (before == "." or after == "." or (before.isascii() and before.isalpha())):
            continue  # "...", "U.S."
        marks.append(i)
    for m in re.finditer(r"\(([^()\n]*)\)", text):
        if not ctx.in_url(m.start(), m.end()):
            pairs.append((m.start(), m.end() - 1))
    picks: set[int] = set()
    while True:
        new = {
            i
            for i in marks
            if i not in picks
            and (_chinese_left(text, i, picks) or (text[i] != "." and _chinese_right(text, i + 1, picks)))
        }
        for opening, closing in pairs:
            if opening not in picks and (
                _chinese_left(text, opening, picks) or _chinese_right(text, closing + 1, picks)
            ):
                new.update((opening, closing))
        if not new:
            return picks
        picks |= new


def _chinese_punctuation(rules: StyleRules, ctx: _Context, headline: bool) -> Found:
    text = ctx.text
    if rules.chinese_punctuation != "full_width" or not _CHINESE.search(text):
        return []
    picks = _chinese_picks(text, ctx)
    out: Found = []
    taken = 0
    for i in sorted(picks):
        start, end = i, i + 1
        while start > taken and text[start - 1] in " \t":
            start -= 1
        while end < len(text) and text[end] in " \t":
            end += 1
        taken = end
        full = _FULL_WIDTH[text[i]]
        reason = f'In Chinese text, use the full-width "{full}", not "{text[i]}".'
        out.append((_finding("chinese_punctuation", ctx, start, end, reason, full), True))
    return out


_RULES: tuple[Callable[[StyleRules, _Context, bool], Found], ...] = (
    _banned,
    _spelling,
    _headline_case,
    _headline_max_chars,
    _numerals,
    _chinese_punctuation,
)
# Applied in this order: a replacement is put in headline case, and case is settled before punctuation.
_SAFE = (_banned, _headline_case, _chinese_punctuation)


def lint(rules: StyleRules, text: str, *, headline: bool, names: Set[str] = frozenset()) -> list[Finding]:
    """Every rule checked on `text`; findings in text order. The headline rules only apply when `headline`."""
    ctx = _context(text, names)
    found = [f for check in _RULES for f, _ in check(rules, ctx, headline)]
    return sorted(found, key=lambda f: (f.start, f.end, f.rule))


# --- applying ------------------------------------------------------------------------------------------------------


def _fixed_reason(f: Finding, rules: StyleRules) -> str:
    old = f.text.strip() or f.text
    if f.rule == "banned":
        return f'House style: wrote "{f.replacement}" for "{old}".'
    if f.rule == "headline_case":
        return f'Put in {rules.headline_case} case: "{f.replacement}" for "{old}".'
    return f'Full-width punctuation in Chinese text: "{f.replacement}" for "{old}".'


def _remap(span: tuple[int, int] | None, edits: list[Finding]) -> tuple[int, int] | None:
    """Where `span` lies after `edits` (sorted, not overlapping); None when an edit cuts across it."""
    if span is None:
        return None
    start, end = span
    new_start, new_end = start, end
    for e in edits:
        delta = len(e.replacement or "") - (e.end - e.start)
        if e.end <= start:
            new_start, new_end = new_start + delta, new_end + delta
        elif e.start >= end:
            break
        elif e.start >= start and e.end <= end:
            new_end += delta
        else:
            return None
    return new_start, new_end


def _replace(text: str, edits: list[Finding]) -> tuple[str, list[tuple[int, int]]]:
    """`text` with each edit's replacement put in (edits sorted, not overlapping), and where each now stands."""
    pieces, spans, cursor, shift = [], [], 0, 0
    for e in edits:
        new = e.replacement or ""
        pieces += [text[cursor : e.start], new]
        spans.append((e.start + shift, e.start + shift + len(new)))
        shift += len(new) - (e.end - e.start)
        cursor = e.end
    return "".join(pieces) + text[cursor:], spans


def apply(rules: StyleRules, text: str, *, headline: bool, names: Set[str] = frozenset()) -> tuple[str, list[Finding]]:
    """The safe fixes applied (banned phrases with a replacement, outside quotations; headline case; full-width
    punctuation in Chinese text) until none is left, then the new text and its findings: each fix as a
    `fixed=True` finding, and what `lint` still finds in the new text (spelling, numerals, length, bans without
    a replacement or inside quotations). Applying again changes nothing."""
    done: list[tuple[tuple[int, int] | None, str, str, str]] = []  # (span in the current text, rule, reason, wrote)
    for _ in range(_MAX_ROUNDS):
        changed = False
        for check in _SAFE:
            found = check(rules, _context(text, names), headline)
            edits = sorted((f for f, fixable in found if fixable), key=lambda f: f.start)
            if not edits:
                continue
            text, spans = _replace(text, edits)
            done = [(_remap(span, edits), rule, reason, wrote) for span, rule, reason, wrote in done]
            done += [
                (span, e.rule, _fixed_reason(e, rules), e.replacement or "")
                for span, e in zip(spans, edits, strict=True)
            ]
            changed = True
        if not changed:
            break
    fixed = []
    for span, rule, reason, wrote in done:
        start, end = span or (0, 0)
        now = text[start:end] if span else ""
        fixed.append(Finding("style", rule, start, end, now, reason, fixed=True, replacement=now if span else wrote))
    findings = fixed + lint(rules, text, headline=headline, names=names)
    return text, sorted(findings, key=lambda f: (f.start, f.end, not f.fixed))
