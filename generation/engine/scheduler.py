"""Continuous batching, the same for every local backend: which requests run in the next step.

One thread owns the model. Each step it samples the next token of every running row (each request from its own
seeded generator, so its output does not depend on which other requests share the batch), hands the tokens to
the output processor, lets finished, cancelled or timed-out rows leave, and asks the backend's runner for one
forward step holding the next token of every remaining row plus the prompts of the requests admitted now.

Decisions live here; computing lives in the runner (transformers_backend.TorchRunner, llamacpp.LlamaRunner):
- admission: waiting requests join when the batch has rows for them and the runner has room (`has_room`: the
  llama.cpp runner needs a free sequence per row and room in the step's decode call);
- preemption: a runner that runs out of memory mid-step (`OutOfRoom`) gets the newest half of the requests
  taken out and queued again with their tokens; they resume later, exactly where they stopped. Only a
  request that does not fit alone fails. Admitting too many at once admits fewer.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from concurrent.futures import Future

from .errors import EngineError
from .output import OutputProcessor
from .sequences import Active

log = logging.getLogger("generation.engine")


class OutOfRoom(Exception):
    """The runner could not take the step (device memory, KV slots); its state is as before the failed part.
    `admitting`: the running rows' step was taken and only the admitted prompts failed."""

    def __init__(self, admitting: bool) -> None:
        super().__init__("out of room")
        self.admitting = admitting


class Scheduler:
    """Feeds requests from many threads (Celery's thread pool) into shared forward steps."""

    def __init__(self, runner, output: OutputProcessor, max_rows: int = 64) -> None:
        self.runner = runner
        self.output = output
        self.max_rows = max_rows
        self.row_limit = max_rows  # lowered after running out of memory, restored when the batch drains
        self._waiting: queue.Queue[Active] = queue.Queue()
        self._preempted: collections.deque[Active] = collections.deque()  # model thread only
        self._thread = threading.Thread(target=self._loop, name="generation-scheduler", daemon=True)
        self._thread.start()

    def submit(self, active: Active) -> Future:
        self._waiting.put(active)
        return active.future

    @property
    def rows(self) -> int:
        return len(self.runner.slots)

    # --- the model thread ----------------------------------------------------------------------------------

    def _loop(self) -> None:
        with self.runner.thread_context():
            while True:
                try:
                    self._iterate()
                except Exception as exc:  # never let one bad step kill the thread: fail the requests in flight
                    log.exception("batch step failed")
                    for active in {a for a, _ in self.runner.slots} | set(self._preempted):
                        self.output.fail(active, exc)
                    self.runner.reset()
                    self._preempted.clear()

    def _iterate(self) -> None:
        if not self.runner.slots:
            self.row_limit = self.max_rows
        admitted = self._admit(block=not self.runner.slots and not self._preempted)
        feed = self._sample_and_advance() if self.runner.slots else []
        if feed or admitted:
            self._forward(feed, admitted)

    def _next_waiting(self, block: bool) -> Active | None:
        if self._preempted:
            return self._preempted.popleft()
        try:
            return self._waiting.get(block=block, timeout=None if block else 0)
        except queue.Empty:
            return None

    def _admit(self, block: bool) -> list[Active]:
        """Every waiting request that fits, in order of arrival; the first that does not waits at the front."""
        admitted: list[Active] = []
        rows = len(self.runner.slots)
        while True:
            active = self._next_waiting(block)
            if active is None:
                return admitted
            block = False
            if active.future.done():  # cancelled by its caller while waiting
                continue
            need = len(active.live_rows())
            if not self.runner.has_room(active, admitted):
                if not rows and not admitted:
                    self.output.fail(active, EngineError("The request does not fit in the model's memory, even alone."))
                    continue
                self._preempted.appendleft(active)
                return admitted
            if rows and rows + need > self.row_limit:  # no room now: first in line for the next step
                self._preempted.appendleft(active)
                return admitted
            admitted.append(active)
            rows += need

    def _sample_and_advance(self) -> list[int]:
        """Sample every running row, apply the tokens, drop what finished; the tokens the kept rows feed next."""
        slots = self.runner.slots
        groups: dict[Active, list[int]] = {}
        for i, (active, _) in enumerate(slots):
            groups.setdefault(active, []).append(i)
        tokens = self.runner.sample(groups)
        now = time.monotonic()
        keep: list[int] = []
        for active, rows in groups.items():
            if self.output.advance(active, {slots[i][1]: tokens[i] for i in rows}, now):
                continue
            keep.extend(i for i in rows if not active.rows[slots[i][1]].finish)
        keep.sort()
        self.runner.keep(keep)
        return [tokens[i] for i in keep]

    def _forward(self, feed: list[int], admitted: list[Active]) -> None:
        while True:
            try:
                self.runner.step(feed, admitted)
                return
            except OutOfRoom as exc:
                if exc.admitting:
                    feed, admitted = [], self._admit_fewer(admitted)
                else:
                    if len({a for a, _ in self.runner.slots}) < 2:
                        raise EngineError("The request does not fit in the model's memory, even alone.") from None
                    feed = self._preempt_newest(feed)
                if not feed and not admitted:
                    return

    def _admit_fewer(self, admitted: list[Active]) -> list[Active]:
        """Admitting ran out of memory: prefill half of them; the rest wait for room."""
        if len(admitted) == 1 and not self.runner.slots:
            self.output.fail(admitted[0], EngineError("The request does not fit in the model's memory, even alone."))
            return []
        keep = len(admitted) // 2
        self._preempted.extendleft(reversed(admitted[keep:]))
        admitted = admitted[:keep]
        self.row_limit = max(1, len(self.runner.slots) + sum(len(a.live_rows()) for a in admitted))
        log.warning("out of memory while admitting requests: batch capped at %d rows", self.row_limit)
        return admitted

    def _preempt_newest(self, feed: list[int]) -> list[int]:
        """Out of memory mid-step: the newest half of the requests leave the batch and wait, keeping their
        tokens (including the one just sampled); the rest retry the step. Returns the rest's input tokens."""
        slots = self.runner.slots
        order = list(dict.fromkeys(a for a, _ in slots))
        leaving = set(order[(len(order) + 1) // 2 :])
        keep = [i for i, (owner, _) in enumerate(slots) if owner not in leaving]
        for active in reversed([a for a in order if a in leaving]):
            active.preempted += 1
            self._preempted.appendleft(active)
        feed = [feed[i] for i in keep]
        self.runner.keep(keep)
        self.row_limit = max(1, len(self.runner.slots))
        log.warning(
            "out of memory in a decoding step: %d requests wait, batch capped at %d rows", len(leaving), self.row_limit
        )
        return feed
