"""Output processing alone, without a model: detokenising, stop strings across token boundaries, hold-back."""

import threading
from concurrent.futures import Future

from generation.engine.output import ByteDetokenizer, Delivery, OffsetDetokenizer, OutputProcessor
from generation.engine.sequences import Active, Row
from generation.engine.types import GenerationRequest

# A byte vocabulary: token i is the i-th piece below; 9 ends the text.
PIECES = [b"Bri", b"dge", b" opens", b"\n", b"\xe5\x9f", b"\x8e", b"END", b" today", b".", b""]
END = 9


def active(**kw) -> Active:
    request = GenerationRequest(messages=[], **{"max_new_tokens": 20, **kw})
    return Active(
        request=request,
        prompt=[1, 2, 3],
        seed=0,
        future=Future(),
        on_delta=None,
        generator=None,
        rows=[Row() for _ in range(request.n)],
        holdback=max((len(s) for s in request.stop), default=1) - 1,
        started=0.0,
    )


def run(tokens: list[int], **kw):
    """Feed one candidate's tokens step by step; return (result, deltas)."""
    deltas, done = [], threading.Event()
    a = active(**kw)
    a.on_delta = lambda index, text, n: deltas.append(text)
    a.future.add_done_callback(lambda f: done.set())
    processor = OutputProcessor(lambda t: t == END, lambda: ByteDetokenizer(lambda t: PIECES[t]), Delivery())
    for token in tokens:
        if processor.advance(a, {0: token}, now=0.0):
            break
    assert done.wait(5)
    return a.future.result(), deltas


def test_text_is_the_pieces_joined_and_end_of_text_finishes():
    result, deltas = run([0, 1, 2, 7, END, 8])
    assert result.texts == ["Bridge opens today"] and result.finish_reasons == ["stop"]
    assert result.completion_tokens == 5  # end-of-text counts as generated; nothing after it is read
    assert "".join(deltas) == "Bridge opens today"


def test_a_character_split_over_two_tokens_is_sent_once_whole():
    result, deltas = run([0, 4, 5, END])
    assert result.texts == ["Bri城"]
    assert all("\ufffd" not in d for d in deltas) and "".join(deltas) == "Bri城"


def test_a_stop_string_spanning_tokens_cuts_the_text_and_is_never_streamed():
    result, deltas = run([0, 1, 2, 7, 8, END], stop=[" opens tomorrow"])
    assert result.texts == ["Bridge opens today."] and "".join(deltas) == "Bridge opens today."  # never completed
    result, deltas = run([0, 1, 2, 7, 8], stop=["ns to"])
    assert result.texts == ["Bridge ope"] and result.finish_reasons == ["stop"]
    assert "".join(deltas) == "Bridge ope"  # the held-back tail that turned out to be the stop string was not sent


def test_the_length_limit_finishes_with_length():
    result, _ = run([0, 1, 2, 7, 8, 8], max_new_tokens=3)
    assert result.texts == ["Bridge opens"] and result.finish_reasons == ["length"] and result.completion_tokens == 3


def test_offset_detokenizer_keeps_spaces_that_single_token_decoding_drops():
    """Sentencepiece decodes '▁opens' alone as 'opens'; in context it is ' opens'."""

    class Spm:
        vocab = {0: "▁Bridge", 1: "▁opens", 2: "▁today"}

        def decode(self, ids, skip_special_tokens=True):
            return "".join(self.vocab[i] for i in ids).replace("▁", " ").lstrip(" ")

    detok = OffsetDetokenizer(Spm())
    assert "".join(detok.add(t) for t in (0, 1, 2)) == "Bridge opens today"
