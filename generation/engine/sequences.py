"""The state of a request in flight, shared by every local backend: its candidates (rows), its sampler, where
it reports, and its timings. The scheduler moves requests; the output processor writes their rows; a backend's
runner holds only tensors or KV sequences that point back at them."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field


@dataclass
class Row:
    """One output candidate being decoded."""

    ids: list[int] = field(default_factory=list)  # tokens generated so far (end-of-text excluded)
    text: str = ""
    emitted: int = 0  # characters of `text` already sent as deltas
    finish: str | None = None
    generated: int = 0  # tokens sampled, end-of-text included (what usage counts)
    detokenizer: object = None


@dataclass(eq=False)  # compared and hashed by identity: each is one request
class Active:
    request: object
    prompt: list[int]
    seed: int
    future: Future
    on_delta: object
    generator: object  # the backend's seeded random generator, used for this request's rows only
    rows: list[Row]
    holdback: int
    started: float
    prefill_s: float = 0.0
    first_token_at: float | None = None  # wall-clock time of the first token, to measure stream latency
    first_token_s: float | None = None
    steps: int = 0
    preempted: int = 0

    @property
    def fresh(self) -> bool:
        """Nothing generated yet: its candidates can share one prefilled prompt."""
        return not any(row.ids or row.finish for row in self.rows)

    def live_rows(self) -> list[int]:
        return [i for i, row in enumerate(self.rows) if not row.finish]
