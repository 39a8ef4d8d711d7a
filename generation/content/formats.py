"""What each output format and each kind of job means, as data: one spec per format (how raw text is shaped,
the stop string, the re-sampling rounds, the word bounds of a candidate, what is acceptable, whether candidates
must differ, how a download lays it out) and one rule per kind (how a word budget is read, whether the output
has a source). Shaping, the candidate loop, the contracts, the forms and the downloads all read these; no
other module compares a format's or a kind's name. Pure: no Django, no engine."""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from . import prompts, shaping

# Python as a job's `language` input names it: code in it must parse, and docstrings go in through its syntax tree.
PYTHON = ("python", "py", "python3")
# Documenting code: a sentence per function, sampled again when empty.
DOCSTRING_TRIES = 3
DOCSTRING_MAX_TOKENS = 64
# A word budget becomes a token budget: ~1.4 tokens per English word.
TOKENS_PER_WORD = 1.4


def distinct_key(text: str) -> str:
    """What makes two candidates the same to a reader: case, spacing and punctuation aside."""
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


@dataclass(frozen=True)
class OutputFormat:
    """One output format. `shape(text, truncated, max_words)` turns raw model text into the output."""

    name: str
    label: str
    shape: Callable[[str, bool, int | None], str]
    stop: tuple[str, ...] = ()  # ends a candidate (a headline is one line)
    top_up_rounds: int = 1  # further sampled rounds for candidates that miss the contract
    words: tuple[int, int] | None = None  # the words one candidate may have, inclusive
    distinct: bool = False  # candidates must differ (see distinct_key)
    many: bool = False  # several candidates per job: the studio asks how many, a download lists them
    code: bool = False  # code: fenced in Markdown downloads; it must parse when the language is Python
    documents: bool = False  # the given code with docstrings added (through the syntax tree for Python)
    bulleted: bool = False  # the output is already a bulleted list

    @property
    def display(self) -> str:
        """How a page shows one output: highlighted code, a single line, or sanitised Markdown."""
        return "code" if self.code else "line" if "\n" in self.stop else "markdown"

    def shaped(self, text: str, finish_reason: str = "stop", max_words: int | None = None) -> str:
        return self.shape(shaping.strip_control(text), finish_reason == "length", max_words)

    def acceptable(self, text: str, *, language: str = "python", min_words: int = 0) -> bool:
        """Whether a shaped candidate meets the contract well enough to keep without another try."""
        words = shaping.count_words(text)
        if not text.strip() or words < min_words:
            return False
        if self.words and not self.words[0] <= words <= self.words[1]:
            return False
        if self.code and language.lower() in PYTHON:
            try:
                ast.parse(text)
            except SyntaxError:
                return False
        return True

    def problems(self, text: str) -> list[str]:
        """The contract's complaints about one candidate, for people (see contracts.py)."""
        out = []
        if self.stop and any(s in text for s in self.stop):
            out.append(f"not one line: {text!r}")
        if self.words and not self.words[0] <= shaping.count_words(text) <= self.words[1]:
            out.append(f"{shaping.count_words(text)} words: {text!r}")
        return out

    def keep_distinct(self, texts: list[str]) -> list[str]:
        """The candidates that may be kept together: first occurrences only when they must differ."""
        if not self.distinct:
            return list(texts)
        seen, kept = set(), []
        for text in texts:
            key = distinct_key(text)
            if key and key not in seen:
                seen.add(key)
                kept.append(text)
        return kept

    def download(self, texts: list[str], markdown: bool, language: str) -> str:
        """The job's outputs as one file: a list for several candidates, fenced code in Markdown, else prose."""
        if (self.many or len(texts) > 1) and not self.bulleted:
            return "\n".join(f"- {t}" if markdown else t for t in texts)
        if self.code and markdown:
            return "\n\n".join(f"```{language}\n{t}\n```" for t in texts)
        return "\n\n".join(texts)


def _prose(text: str, truncated: bool, max_words: int | None) -> str:
    return shaping.clean_prose(text, truncated=truncated, max_words=max_words)


def _list(text: str, truncated: bool, max_words: int | None) -> str:
    return shaping.clean_list(text, max_words)


def _headline(text: str, truncated: bool, max_words: int | None) -> str:
    return shaping.clean_headline(text)


def _code(text: str, truncated: bool, max_words: int | None) -> str:
    return shaping.extract_code(text)


TEXT = OutputFormat("text", "Text", _prose)
FORMATS = {
    f.name: f
    for f in (
        TEXT,
        OutputFormat("list", "Bulleted list", _list, bulleted=True),
        # One-line headlines are cheap: four more rounds to find distinct ones of 3-20 words.
        OutputFormat(
            "headline",
            "One headline per output",
            _headline,
            stop=("\n",),
            top_up_rounds=4,
            words=(3, 20),
            distinct=True,
            many=True,
        ),
        OutputFormat("code", "Code only", _code, code=True),
        OutputFormat(
            "docstrings",
            "The given Python code with a docstring added to each function",
            _code,
            code=True,
            documents=True,
        ),
    )
}
OUTPUT_FORMATS = tuple(FORMATS)
CHOICES = [(f.name, f.label) for f in FORMATS.values()]


def spec(name: str) -> OutputFormat:
    """The format a template version names; one this release does not know shapes as plain text."""
    return FORMATS.get(name, TEXT)


@dataclass(frozen=True)
class Length:
    """How a kind reads its word budget: an output may land within low-high times the words asked (and, with
    `source_share`, within that share of its longest text input)."""

    low: float = 0.0
    high: float = 1.0
    source_share: float | None = None

    def bounds(self, asked: int) -> tuple[int, int]:
        return math.ceil(asked * self.low), math.floor(asked * self.high)

    def max_words(self, asked: int | None, inputs: dict) -> int | None:
        """The most words an output may keep: the asked budget (times `high`), and, for a kind that condenses
        its source, less than the source whatever was asked."""
        most = math.floor(asked * self.high) if asked else None
        if self.source_share is not None:
            source = max((shaping.count_words(v) for v in inputs.values() if isinstance(v, str)), default=0)
            most = max(1, min(most or source, math.floor(source * self.source_share)))
        return most

    def min_words(self, asked: int | None) -> int:
        """Fewer words than this and a candidate is sampled again."""
        return math.ceil(asked * self.low) if asked else 0

    def max_new_tokens(self, asked: int) -> int:
        """The token budget of `asked` words: room to reach `high` times the budget and a little more."""
        return math.ceil(asked * (self.high + 0.2) * TOKENS_PER_WORD) + 16


@dataclass(frozen=True)
class KindRule:
    """What a kind of job means beyond its format: how it reads a word budget, and whether its output condenses
    an input (a headline or summary of a story), which its claims are then checked against."""

    length: Length = Length()
    has_source: bool = False


# Writing may land within 0.5-1.5x of the asked length; a summary stays under 80% of its source; any other
# word budget is a maximum. Headlines and summaries state what their story says.
KINDS = {
    "writing": KindRule(Length(low=0.5, high=1.5)),
    "summary": KindRule(Length(source_share=0.8), has_source=True),
    "headline": KindRule(has_source=True),
}


def kind_rule(kind: str) -> KindRule:
    return KINDS.get(kind, KindRule())


def length(kind: str) -> Length:
    return kind_rule(kind).length


def word_budget(version, inputs: dict) -> int | None:
    """The words asked for, when the template version has a length input and it is set."""
    value = inputs.get(version.length_variable) if version.length_variable else None
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


def documents_python(version, inputs: dict) -> bool:
    """Docstrings placed through Python's syntax tree (the model never rewrites the code)."""
    return spec(version.output_format).documents and str(inputs.get("language", "python")).lower() in PYTHON


def docstring_messages(version, inputs: dict, fn) -> list[dict]:
    """The prompt of one function's docstring: the template rendered with that function as `code`."""
    return prompts.render_messages(version.system_prompt, version.user_template, {**inputs, "code": fn.source})


def docstring_tokens(params: dict) -> int:
    return min(params["max_new_tokens"], DOCSTRING_MAX_TOKENS)
