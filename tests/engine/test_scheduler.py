"""The scheduler alone, over a runner whose forward step is arithmetic instead of a model: admission by free
rows, rows leaving as they finish, one step for all rows, and preemption when the runner runs out of room.
(The backends' runners are tested with real models in test_engine.py and test_batching.py.)"""

import contextlib
import threading

from generation.engine.local import LocalEngine
from generation.engine.output import ByteDetokenizer
from generation.engine.scheduler import OutOfRoom
from generation.engine.types import GenerationRequest

END = 0


class CountingRunner:
    """Each row's next token is its last token + 1 (the prompt's last, at first); token 0 is never produced,
    so rows end by length or stop string. Raises OutOfRoom once when asked to decode more than `room` rows."""

    def __init__(self, max_rows: int, room: int | None = None) -> None:
        self.slots, self.last, self.steps, self.max_rows, self.room = [], [], [], max_rows, room
        self.hold = threading.Event()  # the first step waits for it: requests submitted meanwhile wait together
        self.hold.set()

    @contextlib.contextmanager
    def thread_context(self):
        yield

    def new_generator(self, seed):
        return None

    def has_room(self, active, admitted):
        return len(self.slots) + sum(len(a.live_rows()) for a in admitted) + len(active.live_rows()) <= self.max_rows

    def sample(self, groups):
        return [(t % 200) + 1 for t in self.last]

    def keep(self, rows):
        self.slots, self.last = [self.slots[i] for i in rows], [self.last[i] for i in rows]

    def reset(self):
        self.slots, self.last = [], []

    def step(self, feed, admitted):
        self.hold.wait(10)
        if self.room is not None and len(feed) > self.room:
            self.room = None
            raise OutOfRoom(admitting=False)
        self.steps.append((len(feed), len(admitted)))
        self.last = list(feed)
        for a in admitted:
            for i in a.live_rows():
                self.slots.append((a, i))
                self.last.append(a.rows[i].ids[-1] if a.rows[i].ids else a.prompt[-1])


class CountingEngine(LocalEngine):
    def __init__(self, runner):
        super().__init__(
            runner=runner, model_name="counting", weights_sha256="", context_length=1000, max_rows=runner.max_rows
        )

    def encode_chat(self, messages):
        return [int(m["content"]) for m in messages]

    def is_end(self, token):
        return token == END

    def new_detokenizer(self):
        return ByteDetokenizer(lambda t: f"{t},".encode())


def req(start: int, **kw) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": str(start)}], **{"max_new_tokens": 4, "temperature": 0, **kw}
    )


def test_requests_beyond_the_free_rows_wait_and_all_finish_with_their_own_text():
    runner = CountingRunner(max_rows=3)
    engine = CountingEngine(runner)
    futures = [engine.submit(req(s, n=2)) for s in (10, 20, 30)]
    results = [f.result(timeout=10) for f in futures]
    assert [r.texts for r in results] == [["11,12,13,14,"] * 2, ["21,22,23,24,"] * 2, ["31,32,33,34,"] * 2]
    assert all(feed <= 3 for feed, _ in runner.steps)  # never more rows than the runner has


def test_a_finished_candidate_leaves_while_its_siblings_go_on():
    runner = CountingRunner(max_rows=4)
    engine = CountingEngine(runner)
    result = engine.generate(req(10, n=2, stop=["12,"], max_new_tokens=6))
    assert result.texts == ["11,", "11,"] and result.finish_reasons == ["stop", "stop"]
    long = engine.generate(req(10, max_new_tokens=6))
    assert long.texts == ["11,12,13,14,15,16,"] and long.timings["steps"] == 6


def test_running_out_of_room_preempts_the_newest_and_they_resume_exactly():
    runner = CountingRunner(max_rows=4, room=1)
    engine = CountingEngine(runner)
    runner.hold.clear()
    futures = [engine.submit(req(s, max_new_tokens=5)) for s in (10, 20)]
    runner.hold.set()
    results = [f.result(timeout=10) for f in futures]
    assert [r.texts for r in results] == [["11,12,13,14,15,"], ["21,22,23,24,25,"]]
    assert sum(r.timings["preempted"] for r in results) >= 1
