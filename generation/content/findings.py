"""A finding: one thing a check says about a span of an output (a claim its source does not support, a word
the house style bans). Grounding, language and style checks all report them; they are stored with the
output as JSON and shown inline. Pure."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Finding:
    check: str  # which check: "grounding", "language", "style"
    rule: str  # what in that check: "number", "percent", "money", "date", "year", "quote", "name", "banned", ...
    start: int  # the span in the output, as Python string offsets; 0, 0 for the output as a whole
    end: int
    text: str  # output[start:end]
    reason: str  # for people, shown on hover/focus: 'The source gives no "2030".'
    fixed: bool = False  # applied already (a safe style fix): reported, nothing left to do
    replacement: str | None = None  # what the rule would put instead, when it knows

    def as_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict) -> Finding:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
