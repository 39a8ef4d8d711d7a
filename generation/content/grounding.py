"""Source grounding without a model: the checkable claims of an output (numbers, percents, money, dates, years,
quotes, proper names) matched against the source it was written from (a headline or summary of an article).
Each claim the source does not support becomes a `Finding(check="grounding")`, so a reader sees at a glance the
"2030" or the "Paris" the model made up. Deterministic and pure.

The matching is lenient on form and strict on substance: "5,000", "5 000", "five thousand" and "五千" are one
figure, "12%" and "12 per cent" one percent, "$40m" and "40 million dollars" one amount; a different figure, a
different currency or a name the source never mentions is a finding. False alarms cost more than misses here
(people stop reading the marks), so when the text leaves room for doubt the claim counts as supported.

In a Title Case headline capitals say little, so names there are runs of capitalised words the source lacks
(see _RARE_ZIPF): "Amber Ruiz" and "Ports Authority of Sydney" are findings, "Bold" alone is a headline's word.

Known limits: names are matched by spelling only (no transliteration: "Paris" against "巴黎" is a finding);
Chinese names are not claims; fractions ("half a million") and colloquial Chinese ("两万五") are not parsed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from wordfreq import zipf_frequency

from .findings import Finding


@dataclass(frozen=True)
class Claim:
    """One checkable statement of a text. `value` is the normalised form used for matching: "40000000 USD",
    "12%", "5000 people", "2028", "2025-03-03" ("????-03-03" without a year), a quote's words, a name in lower
    case. Quantities also carry their `amount` and `unit` ("%", a currency code or the unit word)."""

    rule: str  # "number", "percent", "money", "date", "year", "quote", "name"
    start: int
    end: int
    text: str
    value: str
    amount: Decimal | None = None
    unit: str | None = None
    headline: bool = False  # a run of capitalised words from a Title Case line, judged word by word


# --- vocabulary ----------------------------------------------------------------------------------------------


def _listed(words: str) -> list[str]:
    """Word lists are written as text, one space between words, to keep them readable."""
    return words.split()


# Words that carry no claim: function words, and the words a Title Case headline capitalises that are seldom
# names. Title Case headlines and units ("5,000 of the", "in 2028 and") are judged against them.
_FUNCTION_WORDS = frozenset(
    _listed(
        """a an the and or but nor so yet of in on at to for from by with without as into onto over under above
    below after before about against amid among around between during near off out up down per than through
    toward towards until upon via within is are was were be been being am will would can could should may might
    must shall has have had do does did it its he him his she her they them their we our you your i me my who
    whom whose what which when where why how that this these those there here not no all any each every some
    more most less least much many few other another such own same also just only very too again then now if
    while because though although despite since new old"""
    )
)
_HEADLINE_WORDS = frozenset(
    _listed(
        """say plan approve back open win hit set get take make give go come see call seek warn vow urge face eye ban
    cut raise rise fall drop end start begin launch unveil announce reveal agree reject vote pass delay boost
    slam blast target move push deal report update news breaking live big top first last next high low major
    key huge record year day week month today tonight city town state local national world global official
    expert resident people government police court council mayor president minister chief leader group
    company firm plan project bridge road school work worker job home house price cost money fund budget
    tax law bill rule study poll green light ok nod probe row bid talk crash fire storm flood death toll
    die dead kill hurt injure arrest charge jail sue loss lose beat surge slump soar plunge jump climb rally
    crisis threat fear hope help aid rate hike hail praise welcome criticise criticize defend support oppose
    secure seal sign ink clear greenlight greenlit weigh mull consider ease spur spark fuel trigger shake lift curb
    halt stall scrap axe ditch pledge promise commit expand overhaul revamp reshape transform tackle mark celebrate
    honour honor mourn tout split divide confirm deny admit claim insist question investigate review block stop
    save spend invest build return resume unlock deliver lead join leave quit resign name appoint elect hire
    historic unanimous bold sweeping massive landmark controversial ambitious vital crucial fresh tough rare shock
    stunning dramatic bitter fierce heated quiet final early late full latest backing opposition commute
    commuter traffic voter scandal outcry fury anger concern answer future blow setback victory defeat step
    upgrade milestone become reality dream cash flow"""
    )
)
# Titles before a name: not the name ("Minister Clément Beaune" -> "Clément Beaune" is what must be in the source).
_TITLES = frozenset(
    _listed(
        """mayor minister president premier governor senator chancellor king queen prince princess pope judge
    chief general secretary chairman chairwoman director ceo professor sir lord lady dame mister"""
    )
)
_WEEKDAYS = frozenset(_listed("monday tuesday wednesday thursday friday saturday sunday"))
_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
# A full stop after these does not end a sentence, so the capitalised word after it is not sentence-initial.
_ABBREVIATIONS = frozenset(
    _listed("mr mrs ms dr prof st mt gen gov sen rep jr sr lt col capt sgt no vs inc co corp ltd")
)

_SMALL_NUMBERS = {
    word: value
    for value, word in enumerate(
        _listed("""one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
        seventeen eighteen nineteen"""),
        start=1,
    )
}
_TENS = {
    word: 10 * value for value, word in enumerate(_listed("twenty thirty forty fifty sixty seventy eighty ninety"), 2)
}
_SCALES = {"hundred": 100, "thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_ORDINALS = {
    word: value
    for value, word in enumerate(
        _listed("""third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth fifteenth
        sixteenth seventeenth eighteenth nineteenth twentieth"""),
        start=3,
    )
}  # "first" and "second" are left out: "the first time", "a second look" claim nothing
_SUFFIX_SCALES = {"k": 10**3, "m": 10**6, "mn": 10**6, "b": 10**9, "bn": 10**9}

_CN_DIGITS = dict(zip("零〇一二两三四五六七八九", (0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9), strict=True))
_CN_SMALL_SCALES = {"十": 10, "百": 100, "千": 1000}
_CN_SCALES = {**_CN_SMALL_SCALES, "万": 10**4, "亿": 10**8}
# Words that are written with numerals but count nothing ("十分" very, "万一" in case, "四川" Sichuan).
_CN_IDIOMS = ("十分", "万一", "一一", "两岸", "两会", "四川", "三峡", "三亚", "九江", "十堰", "千万", "百姓", "一半")

# Currency symbols, codes and words -> one code; "¥" is yen or yuan.
_CURRENCY_CODES = {
    "$": "USD", "us$": "USD", "u.s.$": "USD", "usd": "USD", "dollar": "USD", "us dollar": "USD",
    "u.s. dollar": "USD", "hk$": "HKD", "hkd": "HKD", "hong kong dollar": "HKD", "港元": "HKD", "港币": "HKD",
    "c$": "CAD", "canadian dollar": "CAD", "a$": "AUD", "australian dollar": "AUD", "s$": "SGD", "nz$": "NZD",
    "€": "EUR", "eur": "EUR", "euro": "EUR", "欧元": "EUR", "£": "GBP", "gbp": "GBP", "pound": "GBP",
    "pound sterling": "GBP", "英镑": "GBP", "yen": "JPY", "jpy": "JPY", "日元": "JPY", "yuan": "CNY",
    "renminbi": "CNY", "rmb": "CNY", "cny": "CNY", "元": "CNY", "人民币": "CNY", "块": "CNY", "美元": "USD",
    "¥": "¥", "￥": "¥",
}  # fmt: skip
_CURRENCY_NAMES = {
    "USD": "dollars", "HKD": "Hong Kong dollars", "CAD": "Canadian dollars", "AUD": "Australian dollars",
    "SGD": "Singapore dollars", "NZD": "New Zealand dollars", "EUR": "euros", "GBP": "pounds", "JPY": "yen",
    "CNY": "yuan", "¥": "yen or yuan",
}  # fmt: skip


# --- patterns ------------------------------------------------------------------------------------------------

_LATIN = r"A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"  # letters of Latin scripts, accented ones included
_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"

# A word of a Latin script, with inner hyphens, apostrophes and dots: "Jean-Paul", "O'Brien", "Smith's", "U.S".
_WORD = re.compile(rf"[{_LATIN}]+(?:[-'’.][{_LATIN}]+)*")
_POSSESSIVE = re.compile(r"['’]s\Z", re.IGNORECASE)

# Quoted strings: straight, curly and corner quotes. Single quotes are left alone: they double as apostrophes.
_QUOTE = re.compile(r'"([^"\n]+)"|“([^”\n]+)”|「([^」]+)」|『([^』]+)』')
# The words of a quote as compared: Han characters one by one, other words whole.
_QUOTE_TOKEN = re.compile(rf"[{_HAN}]|[^\W_{_HAN}]+")

# Figures in digits: 5,000 / 5 000 / 5000 / 3.5, not the tail of a word or code ("G7", "COVID-19", "v1.2").
_DIGITS = re.compile(
    rf"""(?<![{_LATIN}\d_.,])(?<![{_LATIN}]-)
    (?:\d{{1,3}}(?:(?:,|[ \u00a0\u202f])\d{{3}})+(?!\d)|\d+)  # grouped thousands, or a plain run of digits
    (?:\.\d+)?                                              # decimals
    """,
    re.VERBOSE,
)
_NUMBER_WORD = "|".join(sorted([*_SMALL_NUMBERS, *_TENS, *_SCALES, "dozen"], key=len, reverse=True))
# Figures in words: "three", "twenty-five", "two hundred thousand", "a million", "a dozen".
_NUMBER_WORDS = re.compile(
    rf"\b(?:an?\s+(?=(?:hundred|thousand|million|billion|trillion|dozen)\b))?"
    rf"(?:{_NUMBER_WORD})\b(?:(?:[ \t]+and[ \t]+|[ \t]+|-)(?:{_NUMBER_WORD})\b)*",
    re.IGNORECASE,
)
_ORDINAL_WORDS = re.compile(rf"\b(?:{'|'.join(_ORDINALS)})\b", re.IGNORECASE)
# Figures in Chinese numerals: 三, 两百, 五千万, 三点五亿.
_CN_NUMBER = re.compile(r"[零〇一二两三四五六七八九十百千万亿]+(?:点[零〇一二三四五六七八九]+[万亿]*)?")
_CN_WEEKDAY = re.compile(r"(?:星期|礼拜|周)[一二三四五六日天]")

# What may follow a figure, in order: a suffix stuck to digits ("40m", "1.5bn", "3rd"), Chinese scales ("5000万"),
# English scale words ("1.5 billion"), a percent sign or word, a currency word, a unit word.
_STUCK_SUFFIX = re.compile(r"(bn|mn|m|k|b|st|nd|rd|th)(?![A-Za-z])", re.IGNORECASE)
_CN_SCALE_RUN = re.compile(r"[十百千万亿]+")
_SCALE_WORDS = re.compile(r"(?:[ \t]+(hundred|thousand|million|billion|trillion)\b)+", re.IGNORECASE)
_PERCENT = re.compile(r"[ \t]*[%％]|[ \t]+(?:percent|per[ \t]+cent|pct|percentage[ \t]+points?)\b", re.IGNORECASE)
_CURRENCY_WORD = re.compile(
    r"[ \t]+(?P<word>(?:(?:us|u\.s\.|hong[ \t]+kong|canadian|australian)[ \t]+)?(?:dollar|euro|pound)s?"
    r"(?:[ \t]+sterling)?|yuan|yen|renminbi|usd|eur|gbp|cny|rmb|jpy|hkd)\b"
    r"|(?P<cn>美元|欧元|英镑|日元|港元|港币|人民币|元|块)",
    re.IGNORECASE,
)
# A unit in lower case, after one adjective at most: "5,000 people", "5,000 new homes", "three-year".
_UNIT_WORD = re.compile(r"(?:[ \t]+|-)(?:(?:new|more|other|additional|extra|old)[ \t]+)?([a-z]+)\b")
_CN_UNIT = re.compile(
    r"平方公里|平方米|公里|千米|公斤|小时|分钟|人次|[人名位个座家辆台件项条种次倍岁天周年户所架艘只头份层栋间处批例米吨]"
)
# A currency just before a figure: "$40", "US$40", "€3.5bn", "USD 40", "人民币3亿".
_CURRENCY_BEFORE = re.compile(
    r"(?:(?<![A-Za-z])(?:US|U\.S\.|HK|NZ|[CAS])\$|\$|€|£|[¥￥]|(?<![A-Za-z])(?:USD|EUR|GBP|CNY|RMB|JPY|HKD)[ \t]?|人民币)\Z"
)

# Dates. Month names count only when capitalised ("may", "march" are verbs); days and years are checked after.
_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\b\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?\b(?![.,]\d)"
_YEAR_AFTER = r"(?:,?[ \t]+(?P<year>\d{4})\b(?![-/]\d))?"
_ENGLISH_DATES = [
    re.compile(rf"\b(?P<month>{_MONTH})[ \t]+{_DAY}{_YEAR_AFTER}", re.IGNORECASE),  # March 3, 2025
    re.compile(rf"\b{_DAY}[ \t]+(?:of[ \t]+)?(?P<month>{_MONTH}){_YEAR_AFTER}", re.IGNORECASE),  # 3 March 2025
    re.compile(rf"\b(?P<month>{_MONTH})[ \t]+(?:of[ \t]+)?(?P<year>\d{{4}})\b", re.IGNORECASE),  # March 2025
]
_ISO_DATE = re.compile(r"(?<![\d-])(?P<year>\d{4})([-/])(?P<month>\d{1,2})\2(?P<day>\d{1,2})(?![\d-])")
_MONTH_ALONE = re.compile(
    r"\b(?:January|February|March|April|May|June|July|August|September|October|November|December)\b"
)
_CN_DATE = re.compile(
    r"(?:(?P<year>\d{4}|[〇零一二三四五六七八九]{4})年)?"
    r"(?P<month>\d{1,2}|十[一二]?|[一二三四五六七八九])月"
    r"(?:(?P<day>\d{1,2}|[一二三]?十[一二三四五六七八九]?|[一二三四五六七八九])[日号])?"
)

_SENTENCE_END = ".!?…;:。！？；："
_OPENERS = "\"'“‘「『(（[—–-•*#>"
_SEGMENT = re.compile(r"[^\n.!?…。！？]+(?:[.!?…。！？]+|$)", re.MULTILINE)
# What may stand between two words of one name: a space, or a particle ("Bank of England", "Charles de Gaulle").
_JOIN = r" (?:of |de |du |la |le |van |von |der |da |di |del )?"
_JOINED = re.compile(_JOIN, re.IGNORECASE)  # Title Case may capitalise the particle too ("Bank Of England")


# --- small helpers -------------------------------------------------------------------------------------------


def _fold(text: str) -> str:
    """Lower case without accents: "Grégory" and "GREGORY" compare equal."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _stems(word: str) -> set[str]:
    """A word and the forms it may have lost an ending from: "approves" and "approved" share "approve", "homes"
    and "home" share "home". Crude on purpose: it only has to say when two words may be one."""
    forms = {word, {"people": "person", "men": "man", "women": "woman", "children": "child"}.get(word, word)}
    if word.endswith(("ies", "ied")):
        forms.add(word[:-3] + "y")
    if word.endswith(("es", "ed")):
        forms |= {word[:-2], word[:-1]}
    if word.endswith("s") and not word.endswith("ss"):
        forms.add(word[:-1])
    if word.endswith("ing"):
        forms |= {word[:-3], word[:-3] + "e"}
    forms |= {f[:-1] for f in list(forms) if len(f) > 3 and f[-1] == f[-2] and f[-1] not in "aeiouls"}  # planned
    return {f for f in forms if f == word or len(f) >= 3 or (len(f) == 2 and len(word) == 3)}  # "oks" -> "ok"


def _is_common(word: str) -> bool:
    return any(f in _FUNCTION_WORDS or f in _HEADLINE_WORDS for f in _stems(_fold(word)))


# A Title Case headline capitalises every word, so its capitals say little: there a run of capitalised words
# the source lacks is a name when it is several words long ("Amber Ruiz", "Ports Authority of Sydney"), follows
# a title ("Mayor Ruiz") or holds a rare word, one below this Zipf frequency (wordfreq's English lists; 3.3 is
# about once in two million words). "Completion" (4.2) and "Approves" (3.4) are words; "Seine" (3.2), "Doucet"
# (2.2), "Yasui" (1.6) are names. The costs, accepted: one frequent word alone ("Paris", 4.8) passes in Title
# Case (running text still catches it), and two ordinary new words side by side ("Golden Curry" and "Sunny
# Outlook" alike) are reported.
_RARE_ZIPF = 3.3
# Words that read as derived from a common word ("Sweeping", "Mixed", "Completion") are not parts of a name in
# Title Case: names seldom take these endings, and headlines use them all the time.
_DERIVED_ALWAYS = ("tion", "sion", "ment", "ness")
_DERIVED_FROM_BASE = ("ing", "ed", "ly")
_COMMON_BASE_ZIPF = 3.5


def _is_rare(word: str) -> bool:
    return zipf_frequency(word, "en") < _RARE_ZIPF


def _is_derived(word: str) -> bool:
    """Whether a word is a common word with an ending ("Sweeping", "Mixed", "Completion"): "Beijing", "Kelly"
    and "Ealing" are not, since "beij", "kel" and "eal" are no words."""
    folded = _fold(word)
    if folded.endswith(_DERIVED_ALWAYS) and len(folded) > 6:
        return True
    for ending in _DERIVED_FROM_BASE:
        base = folded[: -len(ending)]
        if folded.endswith(ending) and len(base) >= 3:
            bases = {base, base + "e", base[:-1] if len(base) > 3 and base[-1] == base[-2] else base}
            return any(zipf_frequency(b, "en") >= _COMMON_BASE_ZIPF for b in bases)
    return False


def _is_name_part(word: str) -> bool:
    """Whether a capitalised word of a Title Case line may be part of a name: not a function word, a common
    headline word or a derived word."""
    return not _is_common(word) and not _is_derived(word)


def _free(spans: Iterable[tuple[int, int]], start: int, end: int) -> bool:
    return not any(a < end and start < b for a, b in spans)


def _figure(amount: Decimal) -> str:
    """A Decimal as plain digits: 4E+7 -> "40000000", 1.50 -> "1.5"."""
    return format(amount.normalize(), "f")


def _to_decimal(digits: str) -> Decimal | None:
    try:
        return Decimal(re.sub(r"[,\s\u00a0\u202f]", "", digits))
    except InvalidOperation:
        return None


def _starts_sentence(text: str, index: int) -> bool:
    """Whether the word at `index` opens a sentence, a line or a quote, where any word is capitalised."""
    j = index - 1
    while j >= 0 and text[j] != "\n" and (text[j].isspace() or text[j] in _OPENERS):
        j -= 1
    if j < 0 or text[j] == "\n":
        return True
    if text[j] not in _SENTENCE_END:
        return False
    if text[j] == ".":  # "Mr. Smith", "J. Smith", "the U.S. Senate": the full stop ends an abbreviation
        before = re.search(rf"([{_LATIN}]+)\.*\Z", text[max(0, j - 12) : j])
        if before and (len(before.group(1)) == 1 or before.group(1).lower() in _ABBREVIATIONS):
            return False
    return True


# --- numbers -------------------------------------------------------------------------------------------------


def _words_value(text: str, start: int, end: int) -> tuple[Decimal, int] | None:
    """The value of a run of number words and where the valid part of it ends: "two hundred thousand" ->
    200000; "three four" stops after "three"."""
    total, current, last, stop = 0, 0, "", start
    for m in re.finditer(r"[A-Za-z]+", text[start:end]):
        word = m.group().lower()
        if word in ("a", "an") and not last:
            current, last = 1, "a"
        elif word == "and" and last in ("hundred", *_SCALES):
            continue
        elif word in _SMALL_NUMBERS or word in _TENS:
            value = _SMALL_NUMBERS.get(word) or _TENS[word]
            if last in _SMALL_NUMBERS or (last in _TENS and value >= 10):
                break  # "three four", "twenty thirty": two figures, keep the first
            current += value
        elif word == "hundred":
            current = (current or 1) * 100
        elif word == "dozen":
            current = (current or 1) * 12
        elif word in _SCALES:
            total, current = total + (current or 1) * _SCALES[word], 0
        else:
            break
        last, stop = word, start + m.end()
    value = total + current
    return (Decimal(value), stop) if value and last not in ("", "a", "an", "and") else None


def _cn_value(numeral: str) -> Decimal | None:
    """The value of a Chinese numeral, Arabic digits allowed before the scales: "五千万", "3.5亿", "二〇二八"."""
    if not numeral:
        return Decimal(0)
    for scale, factor in (("亿", 10**8), ("万", 10**4)):
        if scale in numeral:
            head, _, tail = numeral.rpartition(scale)
            high = _cn_value(head) if head else Decimal(1)
            low = _cn_value(tail)
            return None if high is None or low is None else high * factor + low
    if "点" in numeral:  # 三点五 = 3.5
        whole, _, decimals = numeral.partition("点")
        value = _cn_value(whole)
        fraction = "".join(str(_CN_DIGITS.get(ch, "")) for ch in decimals)
        return None if value is None or not fraction else value + Decimal("0." + fraction)
    if re.fullmatch(r"[\d.]+", numeral):
        return _to_decimal(numeral)
    if len(numeral) > 1 and all(ch in _CN_DIGITS for ch in numeral):  # read digit by digit: 二〇二八
        return Decimal("".join(str(_CN_DIGITS[ch]) for ch in numeral))
    total, digit = 0, None
    for ch in numeral:
        if ch in _CN_DIGITS:
            digit = _CN_DIGITS[ch]
        elif ch in _CN_SMALL_SCALES:
            total, digit = total + (1 if digit is None else digit) * _CN_SMALL_SCALES[ch], None
        else:
            return None
    return Decimal(total + (digit or 0))


def _scale_product(run: str) -> int:
    product = 1
    for ch in run:
        product *= _CN_SCALES[ch]
    return product


def _is_cn_idiom(text: str, start: int, numeral: str) -> bool:
    """Numerals that count nothing: a lone 一 ("一些", "统一"), scales alone ("百姓"), idioms, "第一"/"第二"."""
    if numeral == "一" or not any(ch in _CN_DIGITS or ch == "十" for ch in numeral):
        return True
    if text.startswith("十分", start) and not text.startswith("十分钟", start):
        return True
    if any(text.startswith(idiom, start) for idiom in _CN_IDIOMS if idiom != "十分"):
        return True
    return start > 0 and text[start - 1] == "第" and numeral in ("一", "二", "两")


def _figures(text: str) -> Iterator[tuple[int, int, Decimal, str]]:
    """Every figure in the text, in order: (start, end, value, how it is written: "digits", "words", "ordinal",
    "chinese"). The surroundings (scales, units, currencies) are read by `_quantity`."""
    found = []
    for m in _DIGITS.finditer(text):
        if (value := _to_decimal(m.group())) is not None:
            found.append((m.start(), m.end(), value, "digits"))
    for m in _NUMBER_WORDS.finditer(text):
        if parsed := _words_value(text, m.start(), m.end()):
            found.append((m.start(), parsed[1], parsed[0], "words"))
    for m in _ORDINAL_WORDS.finditer(text):
        found.append((m.start(), m.end(), Decimal(_ORDINALS[m.group().lower()]), "ordinal"))
    for m in _CN_NUMBER.finditer(text):
        if not _is_cn_idiom(text, m.start(), m.group()) and (value := _cn_value(m.group())) is not None:
            found.append((m.start(), m.end(), value, "chinese"))
    yield from sorted(found, key=lambda f: (f[0], -f[1]))


def _quantity(text: str, start: int, end: int, value: Decimal, written: str) -> Claim | None:
    """The claim a figure makes with what surrounds it: "$40 million", "12 per cent", "5,000 people", "2028"."""
    pos, scaled, unit, rule, currency = end, False, None, "number", None
    if written == "ordinal":
        return Claim("number", start, end, text[start:end], _figure(value), value)
    if written == "digits":
        if m := _STUCK_SUFFIX.match(text, pos):
            suffix = m.group(1).lower()
            if suffix in _SUFFIX_SCALES:
                if suffix == "b" and not _CURRENCY_BEFORE.search(text, 0, start):
                    return None  # "2b" is a plan, not two billion, unless it costs money
                value, scaled, pos = value * _SUFFIX_SCALES[suffix], True, m.end()
            else:  # 3rd, 21st: an ordinal, said in full
                return Claim("number", start, m.end(), text[start : m.end()], _figure(value), value)
        if pos < len(text) and re.match(rf"[{_LATIN}]", text[pos]):
            return None  # "3D", "1990s", "4K": not a figure of the story
        if m := _SCALE_WORDS.match(text, pos):
            for word in re.findall(r"[A-Za-z]+", m.group()):
                value *= _SCALES[word.lower()]
            scaled, pos = True, m.end()
    if written == "digits" and (m := _CN_SCALE_RUN.match(text, pos)):
        value, scaled, pos = value * _scale_product(m.group()), True, m.end()
    # "one" alone ("one of them", "no one") is a pronoun more often than a figure; "one million" is a figure
    last_word = text[start:end].split()[-1].split("-")[-1].lower()
    one_alone = written == "words" and value == 1 and last_word not in (*_SCALES, "dozen")
    if before := _CURRENCY_BEFORE.search(text, max(0, start - 8), start):
        currency, start = _CURRENCY_CODES[before.group().strip().lower()], before.start()
    if text.endswith("百分之", 0, start):
        rule, start = "percent", start - 3
    elif m := _PERCENT.match(text, pos):
        rule, pos = "percent", m.end()
    if rule == "number" and (m := _CURRENCY_WORD.match(text, pos)):
        word = _fold(m.group("word") or m.group("cn")).replace("\t", " ")
        word = re.sub(r"\s+", " ", word)
        word = re.sub(r"s(?= sterling|$)", "", word) if m.group("word") else word
        currency, pos = _CURRENCY_CODES.get(word) or _CURRENCY_CODES[word.split()[-1]], m.end()
    if rule == "number" and currency is None:
        if written != "chinese" and (m := _UNIT_WORD.match(text, pos)):
            word = m.group(1)
            if word not in _FUNCTION_WORDS and word not in _SCALES and word != "dozen":
                unit, pos = word, m.end()
        elif m := _CN_UNIT.match(text, pos):
            unit, pos = m.group(), m.end()
    if one_alone and rule == "number" and currency is None:
        return None
    if currency:
        rule, unit = "money", currency
        normal = f"{_figure(value)} {currency}"
    elif rule == "percent":
        unit, normal = "%", f"{_figure(value)}%"
    else:
        bare_year = (
            not scaled and unit in (None, "年") and re.fullmatch(r"\d{4}|[〇零一二三四五六七八九]{4}", text[start:end])
        )
        if bare_year and 1000 <= value <= 2999:
            rule, unit = "year", None
        normal = f"{_figure(value)} {unit}" if unit else _figure(value)
    return Claim(rule, start, pos, text[start:pos], normal, value, unit)


# --- dates ---------------------------------------------------------------------------------------------------


def _date_claim(text: str, m: re.Match, year: str | None, month: int, day: str | None) -> Claim | None:
    year_value = int(_cn_value(year)) if year else None
    day_value = int(_cn_value(day)) if day else None
    if not 1 <= month <= 12 or (day_value is not None and not 1 <= day_value <= 31):
        return None
    if year_value is not None and not 1000 <= year_value <= 2999:
        return None
    value = f"{year_value or '????'}-{month:02d}-{f'{day_value:02d}' if day_value else '??'}"
    return Claim("date", m.start(), m.end(), m.group(), value)


def _dates(text: str) -> list[Claim]:
    """Calendar dates in the forms news uses: "March 3", "3 March 2025", "Mar. 3", "2025-03-03", "March 2025",
    "2025年3月3日", and a capitalised month alone ("in May", not at the start of a sentence)."""
    found: list[Claim] = []

    def add(claim: Claim | None) -> None:
        if claim and _free(((c.start, c.end) for c in found), claim.start, claim.end):
            found.append(claim)

    for m in _ISO_DATE.finditer(text):
        add(_date_claim(text, m, m.group("year"), int(m.group("month")), m.group("day")))
    for m in _CN_DATE.finditer(text):
        add(_date_claim(text, m, m.group("year"), int(_cn_value(m.group("month"))), m.group("day")))
    for pattern in _ENGLISH_DATES:
        for m in pattern.finditer(text):
            if m.group("month")[0].isupper():
                month = _MONTHS[m.group("month").rstrip(".").lower()]
                add(_date_claim(text, m, m.groupdict().get("year"), month, m.groupdict().get("day")))
    for m in _MONTH_ALONE.finditer(text):
        if m.group() != "May" or not _starts_sentence(text, m.start()):
            add(Claim("date", m.start(), m.end(), m.group(), f"????-{_MONTHS[m.group().lower()]:02d}-??"))
    return found


# --- quotes and names ----------------------------------------------------------------------------------------


def _quote_words(text: str) -> str:
    """A text as the sequence of its words, for quotes: case, accents, punctuation and spacing do not count."""
    tokens = _QUOTE_TOKEN.findall(_fold(unicodedata.normalize("NFKC", text)))
    return " " + " ".join(tokens) + " " if tokens else ""


def _quotes(text: str) -> list[Claim]:
    found = []
    for m in _QUOTE.finditer(text):
        inner = next(g for g in m.groups() if g is not None)
        if words := _quote_words(inner).strip():
            found.append(Claim("quote", m.start(), m.end(), m.group(), words))
    return found


def _name_word(match: re.Match) -> tuple[int, int, str]:
    """A word without its possessive: "Smith's" -> "Smith"; the span shrinks with it."""
    word = _POSSESSIVE.sub("", match.group())
    return match.start(), match.start() + len(word), word


def _is_title_case(segment: str) -> bool:
    """A headline in Title Case capitalises every word, so capitals there say nothing about names."""
    content = [w for w in _WORD.findall(segment) if w.lower() not in _FUNCTION_WORDS]
    capitalised = [w for w in content if w[0].isupper()]
    return len(content) >= 2 and len(capitalised) >= 0.7 * len(content)


def _can_be_name(word: str) -> bool:
    folded = _fold(word).replace(".", "")
    common = folded in _WEEKDAYS or folded in _MONTHS or folded in _ABBREVIATIONS
    return len(folded) > 1 and word[0].isupper() and not common


def _title_case_runs(text: str, words: list[tuple[int, int, str]]) -> list[Claim]:
    """The runs of words of a Title Case line that may be names, common headline words left out: "Amber Ruiz",
    "Ports Authority of Sydney", "Golden Curry". Which of their words are names depends on the source
    (see _title_case_findings)."""
    runs: list[list[tuple[int, int, str]]] = []
    for word in words:
        if not _is_name_part(word[2]):
            continue
        if runs and _JOINED.fullmatch(text, runs[-1][-1][1], word[0]):
            runs[-1].append(word)
        else:
            runs.append([word])
    return [
        Claim("name", r[0][0], r[-1][1], text[r[0][0] : r[-1][1]], _fold(text[r[0][0] : r[-1][1]]), headline=True)
        for r in runs
    ]


def _names(text: str, taken: list[tuple[int, int]]) -> list[Claim]:
    """Proper names in English. In running text: capitalised words and runs of them ("Elm River"), except a
    lone capitalised word opening a sentence ("The", "New", "Construction"). In a Title Case headline: the runs
    of capitalised words that are not common headline words (see _RARE_ZIPF)."""
    found = []
    for segment in _SEGMENT.finditer(text):
        title = _is_title_case(segment.group())
        words = [_name_word(m) for m in _WORD.finditer(text, segment.start(), segment.end())]
        words = [w for w in words if _can_be_name(w[2]) and _free(taken, w[0], w[1])]
        if title:
            found += _title_case_runs(text, words)
            continue
        runs: list[list[tuple[int, int, str]]] = []
        for word in words:  # words next to each other, or joined by "of"/"de"/..., make one name
            if runs and re.fullmatch(_JOIN, text[runs[-1][-1][1] : word[0]]):
                runs[-1].append(word)
            else:
                runs.append([word])
        for run in runs:
            while run and run[0][2].lower() in _FUNCTION_WORDS:
                run = run[1:]  # "The Elm River" -> "Elm River"
            if not run or all(w[2].lower() in _FUNCTION_WORDS for w in run):
                continue
            if len(run) == 1 and _starts_sentence(text, run[0][0]):
                continue
            start, end = run[0][0], run[-1][1]
            found.append(Claim("name", start, end, text[start:end], _fold(text[start:end])))
    return found


def claims(text: str) -> list[Claim]:
    """The checkable claims of a text, in order. Dates, figures and names do not overlap one another; a quote
    may hold any of them."""
    taken = [m.span() for m in _CN_WEEKDAY.finditer(text)]  # 星期三 is a weekday, not a figure
    dates = _dates(text)
    taken += [(c.start, c.end) for c in dates]
    quantities = []
    for start, end, value, written in _figures(text):
        claim = _quantity(text, start, end, value, written) if _free(taken, start, end) else None
        if claim and _free(taken, claim.start, claim.end):
            quantities.append(claim)
            taken.append((claim.start, claim.end))
    found = _quotes(text) + dates + quantities + _names(text, taken)
    return sorted(found, key=lambda c: (c.start, -c.end))


# --- matching ------------------------------------------------------------------------------------------------


def _date_fields(claim: Claim) -> tuple[int | None, int | None, int | None]:
    """ "2025-03-03" -> (2025, 3, 3); "????-03-??" -> (None, 3, None)."""
    year, month, day = (None if "?" in part else int(part) for part in claim.value.split("-"))
    return year, month, day


def _context_words(text: str, end: int) -> set[str]:
    """What the two words after a figure's unit may add to it ("5,000 people attended" -> attended), or the Han
    characters after it, as stems."""
    after = text[end : end + 30].split("\n")[0]
    latin = [_fold(w) for w in _WORD.findall(after) if w.lower() not in _FUNCTION_WORDS][:2]
    return {stem for w in latin for stem in _stems(w)} | set(re.findall(rf"[{_HAN}]", after[:4]))


def _same_unit(output: str, claim: Claim, source: str, known: Claim) -> bool:
    """Units agree when they are one word in two forms ("people"/"person"), or when one text names the other's
    unit right after the figure ("5,000 attended" against "5,000 people attended")."""
    mine, theirs = _stems(_fold(claim.unit or "")), _stems(_fold(known.unit or ""))
    return bool(mine & theirs or mine & _context_words(source, known.end) or theirs & _context_words(output, claim.end))


class _Source:
    """What the source offers to support claims, gathered once per check."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.claims = claims(text)
        self.quantities = [c for c in self.claims if c.amount is not None]
        self.dates = [_date_fields(c) for c in self.claims if c.rule == "date"]
        # Every figure the source writes, inside larger expressions too: "$40 million" gives 40, "in 2028" 2028,
        # "March 3, 2025" 3 and 2025, "G7" 7.
        self.figures = {c.amount for c in self.quantities}
        self.figures |= {Decimal(part) for fields in self.dates for part in fields[::2] if part is not None}
        for digits in re.findall(r"\d+(?:[.,]\d+)*", text):
            for piece in (digits.replace(",", ""), *re.findall(r"\d+(?:\.\d+)?", digits), *digits.split(",")):
                if (value := _to_decimal(piece)) is not None:
                    self.figures.add(value)
        self.words: set[str] = set()
        for m in _WORD.finditer(text):
            word = _fold(_POSSESSIVE.sub("", m.group()))
            for part in [word.replace(".", ""), *re.split(r"[-'’.]", word)]:
                self.words |= _stems(part)
        self.quote_text = _quote_words(text)

    def has_word(self, word: str) -> bool:
        """Whether the source writes this word in any case, form or spelling of hyphens: "PARIS", "paris",
        "Smith's", "Elm River" for "Elm-River", "approved" for "Approves"."""
        folded = _fold(_POSSESSIVE.sub("", word))
        if _stems(folded.replace(".", "")) & self.words:
            return True
        parts = [p for p in re.split(r"[-'’.]", folded) if len(p) > 1]
        return bool(parts) and all(_stems(p) & self.words for p in parts)


def _reason_missing(claim: Claim) -> str:
    return f'The source gives no "{claim.text}".'


def _judge_quantity(claim: Claim, source: _Source, output: str) -> str | None:
    same = [q for q in source.quantities if q.amount == claim.amount]
    if claim.rule == "percent":
        return None if any(q.rule == "percent" for q in same) else _reason_missing(claim)
    if claim.rule == "year":
        return None if claim.amount in source.figures else _reason_missing(claim)
    if claim.rule == "money":
        for q in same:
            if q.rule == "number" and q.unit is None:
                return None  # the source gives the figure without a currency: nothing to contradict
            if q.rule == "money" and (
                q.unit == claim.unit or ("¥" in (q.unit, claim.unit) and {q.unit, claim.unit} <= {"¥", "JPY", "CNY"})
            ):
                return None
        other = next((q for q in same if q.rule == "money"), None)
        if other:
            return f'The source gives "{other.text}", not {_CURRENCY_NAMES[claim.unit or ""]}.'
        return _reason_missing(claim)
    # a plain number, with or without a unit
    if claim.unit is None:
        if same or claim.amount in source.figures:
            return None
        return _reason_missing(claim)
    for q in same:
        if q.rule == "year" or (q.rule == "number" and (q.unit is None or _same_unit(output, claim, source.text, q))):
            return None
    if same:
        return f'The source gives "{same[0].text}", not {claim.unit}.'
    return _reason_missing(claim)


def _judge_date(claim: Claim, source: _Source) -> str | None:
    year, month, day = _date_fields(claim)
    for y, m, d in source.dates:
        if m != month or (day is not None and d != day):
            continue
        if year is None or y == year or (y is None and Decimal(year) in source.figures):
            return None
    return _reason_missing(claim)


def _name_findings(claim: Claim, source: _Source) -> list[Finding]:
    """One finding per stretch of the name the source lacks: "Anne" of "Anne Smith" when the source has Smith."""
    findings, group = [], []
    words = [*_WORD.finditer(claim.text), None]  # None closes the last stretch
    for m in words:
        if m is not None and _fold(m.group()) in _FUNCTION_WORDS | _TITLES:  # joins a name, never missing
            if group:
                group.append(m)
            continue
        if m is not None and not source.has_word(m.group()):
            group.append(m)
            continue
        while group and _fold(group[-1].group()) in _FUNCTION_WORDS | _TITLES:
            group.pop()
        if group:
            start = claim.start + group[0].start()
            end = claim.start + len(_POSSESSIVE.sub("", claim.text[: group[-1].end()]))
            text = claim.text[group[0].start() : end - claim.start]
            findings.append(Finding("grounding", "name", start, end, text, f'"{text}" is not named in the source.'))
        group = []
    return findings


_AFTER_TITLE = re.compile(rf"\b(?:{'|'.join(sorted(_TITLES))})\.?(?: of)? \Z", re.IGNORECASE)


def _title_case_findings(claim: Claim, source: _Source, output: str) -> list[Finding]:
    """One finding per stretch of a Title Case run that the source lacks (in any case) and that reads as a
    name: several words ("Golden Curry"), a word after a title ("Mayor Ruiz", "Mayor of Riverton"), or
    a rare word ("Riverton"). One ordinary word alone ("Bold", "Increase") is taken for a headline's wording."""
    parts = [m for m in _WORD.finditer(claim.text) if _fold(m.group()) not in _FUNCTION_WORDS]
    after_title = bool(_AFTER_TITLE.search(output, 0, claim.start))
    stretches: list[list[re.Match]] = [[]]
    for m in parts:
        if source.has_word(m.group()):
            stretches.append([])
        else:
            stretches[-1].append(m)
    findings = []
    for group in (g for g in stretches if g):
        words = [_POSSESSIVE.sub("", m.group()) for m in group]
        if len(group) > 1 or any(_is_rare(w) for w in words) or (group[0] is parts[0] and after_title):
            start = claim.start + group[0].start()
            end = claim.start + group[-1].start() + len(words[-1])
            text = output[start:end]
            findings.append(Finding("grounding", "name", start, end, text, f'"{text}" is not named in the source.'))
    return findings


def _findings_for(claim: Claim, source: _Source, output: str) -> list[Finding]:
    if claim.rule == "name":
        return _title_case_findings(claim, source, output) if claim.headline else _name_findings(claim, source)
    if claim.rule == "quote":
        reason = None if f" {claim.value} " in source.quote_text else f"The source does not say {claim.text}."
    elif claim.rule == "date":
        reason = _judge_date(claim, source)
    else:
        reason = _judge_quantity(claim, source, output)
    return [Finding("grounding", claim.rule, claim.start, claim.end, claim.text, reason)] if reason else []


def check(source: str, output: str) -> list[Finding]:
    """Findings for the claims of `output` that `source` does not support, in output order. Where spans
    overlap (a made-up quote holding a made-up name) only the first, widest finding is kept."""
    known = _Source(source)
    findings: list[Finding] = []
    for claim in claims(output):
        for finding in _findings_for(claim, known, output):
            if _free(((f.start, f.end) for f in findings), finding.start, finding.end):
                findings.append(finding)
    return findings
