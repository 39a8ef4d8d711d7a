"""Output processing, the same for every local backend: tokens in, text out.

Per candidate: incremental detokenising (each backend supplies a detokenizer that turns one more token into
the text it completes), end-of-text, stop strings, the length limit, and deltas that hold back a tail which
might still turn out to start a stop string. Per request: cancel and deadline checks between steps, and the
final result.

Deltas and results are delivered by a thread of its own (`Delivery`), so a slow reader of a job's stream (a
Redis round trip per delta) never holds up the next decoding step of every other request; a candidate's deltas
are sent at most every 50 ms after its first.
"""

from __future__ import annotations

import codecs
import logging
import queue
import threading
import time

from .errors import GenerationTimeout
from .sequences import Active, Row
from .types import GenerationResult

log = logging.getLogger("generation.engine")


class ByteDetokenizer:
    """For vocabularies whose tokens are byte strings (llama.cpp's pieces): bytes are joined and decoded as
    UTF-8 as they complete, so a character split over two tokens appears once both have arrived."""

    def __init__(self, piece) -> None:
        self._piece = piece
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, token: int) -> str:
        return self._utf8.decode(self._piece(token))


class OffsetDetokenizer:
    """For Hugging Face tokenizers: decodes a short window of recent tokens and keeps what it adds to the
    window's earlier text (sentencepiece drops a leading space when a token is decoded alone), waiting while the
    window ends in an incomplete character. Constant work per token, unlike decoding the whole row each step."""

    def __init__(self, tokenizer) -> None:
        self._decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=True)
        self._ids: list[int] = []
        self._prefix = self._read = 0

    def add(self, token: int) -> str:
        self._ids.append(token)
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self._ids)
            return after[len(before) :]
        return ""


class Delivery:
    """Calls delta callbacks and completes futures in the order the model thread produced them.

    A candidate's first text goes out at once; after that its deltas are sent at most every `interval` seconds
    (what arrived meanwhile as one), as vLLM's stream interval does: at 80 tokens a second, a Redis append, a
    stream read and a server-sent event per token cost the machine more CPU than the model's step can spare,
    and 50 ms is below what a reader can see. With many candidates streaming the interval grows (one more
    `interval` per 8 of them): the callbacks run Python that holds the GIL the model thread needs between
    steps. A request's pending text is always sent before its result."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="generation-output", daemon=True)
        self._thread.start()

    def delta(self, active: Active, index: int, text: str, tokens: int) -> None:
        if active.on_delta is not None:
            self._queue.put(("delta", active, index, text, tokens))

    def done(self, active: Active, result: GenerationResult) -> None:
        self._queue.put(("done", active, result))

    def fail(self, active: Active, exc: BaseException) -> None:
        self._queue.put(("fail", active, exc))

    def _loop(self) -> None:
        pending: dict[tuple[Active, int], list] = {}  # text not yet sent, per candidate
        started: set[tuple[Active, int]] = set()  # candidates whose first text went out
        flushed = time.monotonic()
        while True:
            interval = self.interval * max(1.0, len(started) / 8)
            wait = max(0.0, interval - (time.monotonic() - flushed)) if pending else None
            try:
                items = [self._queue.get(timeout=wait)]
            except queue.Empty:
                items = []
            while True:  # everything waiting now is handled together
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for item in items:
                if item[0] == "delta":
                    _, active, index, text, tokens = item
                    merged = pending.setdefault((active, index), ["", 0])
                    merged[0] += text
                    merged[1] = tokens
                    if (active, index) not in started:
                        started.add((active, index))
                        self._send({(active, index): pending.pop((active, index))})
                    continue
                _, active, outcome = item
                self._send({key: pending.pop(key) for key in [k for k in pending if k[0] is active]})
                started.difference_update([k for k in started if k[0] is active])
                if not active.future.done():
                    (active.future.set_exception if isinstance(outcome, BaseException) else active.future.set_result)(
                        outcome
                    )
            if pending and time.monotonic() - flushed >= interval:
                self._send(pending)
                pending = {}
            if not pending:
                flushed = time.monotonic()

    @staticmethod
    def _send(pending: dict) -> None:
        for (active, index), (text, tokens) in pending.items():
            try:
                active.on_delta(index, text, tokens)
            except Exception:  # a caller's callback must not stop the others' deliveries
                log.exception("a delta callback failed")


class OutputProcessor:
    """Applies each step's sampled tokens to the rows of a request."""

    def __init__(self, is_end, new_detokenizer, delivery: Delivery) -> None:
        self.is_end = is_end  # token id -> whether it ends the text
        self.new_detokenizer = new_detokenizer
        self.delivery = delivery

    def advance(self, active: Active, tokens: dict[int, int], now: float) -> bool:
        """Apply one step's token to each given candidate; True when the whole request is finished (its result
        is on its way) or failed."""
        r = active.request
        active.steps += 1
        if active.first_token_at is None:
            active.first_token_at, active.first_token_s = time.time(), now - active.started
        for index, token in tokens.items():
            row = active.rows[index]
            row.generated += 1
            if self.is_end(token):
                row.finish = "stop"
            else:
                row.ids.append(token)
                self._extend(row, r.stop)
            if row.finish is None and row.generated >= r.max_new_tokens:
                row.finish = "length"
            self._emit(active, index, row)
        if all(row.finish for row in active.rows):
            self.finish(active)
            return True
        if r.cancelled is not None and r.cancelled():
            for index in active.live_rows():
                active.rows[index].finish = "cancelled"
                self._emit(active, index, active.rows[index])
            self.finish(active)
            return True
        if r.time_limit and now - active.started > r.time_limit:
            self.fail(
                active,
                GenerationTimeout.after(r.time_limit, len(active.prompt), sum(row.generated for row in active.rows)),
            )
            return True
        return False

    def _extend(self, row: Row, stop: list[str]) -> None:
        if row.detokenizer is None:
            row.detokenizer = self.new_detokenizer()
        piece = row.detokenizer.add(row.ids[-1])
        if not piece:
            return
        start = len(row.text)
        row.text += piece
        cuts = [i for s in stop if s and (i := row.text.find(s, max(0, start - len(s) + 1))) != -1]
        if cuts:
            row.text = row.text[: min(cuts)]
            row.finish = "stop"

    def _emit(self, active: Active, index: int, row: Row) -> None:
        """Send the text not yet sent, holding back a tail that might still turn out to start a stop string."""
        upto = len(row.text) if row.finish else max(row.emitted, len(row.text) - active.holdback)
        if upto > row.emitted:
            self.delivery.delta(active, index, row.text[row.emitted : upto], row.generated)
            row.emitted = upto

    def finish(self, active: Active) -> None:
        timings = {
            "prefill_s": round(active.prefill_s, 4),
            "first_token_s": round(active.first_token_s or 0.0, 4),
            "first_token_at": active.first_token_at,
            "total_s": round(time.monotonic() - active.started, 4),
            "steps": active.steps,
            "preempted": active.preempted,
        }
        self.delivery.done(
            active,
            GenerationResult(
                texts=[row.text for row in active.rows],
                finish_reasons=[row.finish or "length" for row in active.rows],
                prompt_tokens=len(active.prompt),
                completion_tokens=sum(row.generated for row in active.rows),
                seed=active.seed,
                timings=timings,
            ),
        )

    def fail(self, active: Active, exc: BaseException) -> None:
        self.delivery.fail(active, exc)
