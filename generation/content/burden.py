"""The per-output figures of editor burden: how much of the model's text an editor changed, and the percentiles
the aggregates use. Pure (no Django): selectors/burden.py feeds it rows."""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence

# TER's shift search (sacrebleu tries up to 1000 shifted copies, each a fresh edit distance) costs seconds on a
# rewritten summary and ~50 s on a reordered 600-word article, measured; the figures are read per request and per
# scrape. Up to this many tokens (headlines, titles, social posts, short summaries) the full TER is computed;
# beyond, TER's edit distance without the shift search (linear: 0.5 s for 3,000 tokens), which counts a moved
# phrase as deleted and inserted, so an upper bound of TER (within a few points of it on the rewrites measured).
SHIFT_SEARCH_TOKENS = 64


@functools.cache
def _ter():
    # Imported here: sacrebleu is needed only where burden is computed, not by every process importing content.
    from sacrebleu.metrics import TER

    # normalized + asian_support: tercom's tokenisation, which splits punctuation off words and makes each CJK
    # character a token. Chinese is written without spaces, so whitespace tokens would make a whole sentence one
    # "word" (any change 100%); a character is also the unit of sacrebleu's own Chinese tokenizer (zh), and
    # asian_support is what TER has for it. case_sensitive: a capitalisation fix is an edit an editor made.
    return TER(normalized=True, asian_support=True, case_sensitive=True)


def tokens(text: str) -> list[str]:
    """The words TER counts (see _ter): punctuation apart, one token per Chinese character."""
    return _ter().tokenizer(text.rstrip()).split()


@functools.lru_cache(maxsize=4096)  # approved outputs are locked: every scrape asks for the same pairs again
def change_ratio(original: str, final: str) -> float:
    """How much of `original` (the model's text) was changed to get `final` (the editor's): sacrebleu's TER of
    final against original, as a ratio rather than its percent. TER counts the fewest token insertions, deletions,
    substitutions and phrase shifts over the tokens of original: 0 unchanged, 0.1 one word in ten; more than 1
    when the editor wrote more than the model had; 1 for any text where the original was empty. Texts longer
    than SHIFT_SEARCH_TOKENS skip the shift search (see there)."""
    if original == final:
        return 0.0
    ref, hyp = tokens(original), tokens(final)
    if max(len(ref), len(hyp)) <= SHIFT_SEARCH_TOKENS:
        return _ter().sentence_score(final, [original]).score / 100
    from sacrebleu.metrics.lib_ter import BeamEditDistance

    edits, _trace = BeamEditDistance(ref)(hyp)
    return edits / len(ref) if ref else 1.0


def median(values: Sequence[float]) -> float | None:
    """The middle value (the mean of the two middle ones for an even count); None for no values."""
    return float(statistics.median(values)) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least q (0..1] of the values at or below it; no interpolation,
    so it is always a value that was seen. None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(math.ceil(q * len(ordered)), 1) - 1])


def share(part: int, whole: int) -> float | None:
    """part / whole; None when there is nothing to divide (no data is not 0%)."""
    return part / whole if whole else None
