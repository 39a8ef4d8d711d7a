"""Training pairs from approved edits: the exact messages a job ran with and the approved text, lessons only by
default, one pair per prompt (the newest approval), a held-out split that stays put, per desk, as JSONL."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from generation import selectors
from generation.models import DeskRole, JobOutput, Membership, PromptTemplate
from generation.selectors import training
from tests.support.desks import desk, join
from tests.support.training import approved, approved_choosing

pytestmark = pytest.mark.django_db

STORIES = [f"Story {i}: the council met on day {i} and voted on the Elm River bridge plan." for i in range(12)]


@pytest.fixture
def headline():
    return PromptTemplate.objects.get(slug="headline")


def test_pairs_are_the_job_s_messages_and_the_approved_edit(user, reviewer, headline):
    edited = approved(user, reviewer, STORIES[0], wrote="Council Votes On Bridge.", edit="Council backs bridge")
    approved(user, reviewer, STORIES[1], wrote="Council meets")  # approved as written: not a lesson
    (pair,) = selectors.training_pairs(headline)
    assert pair.job_id == str(edited.pk) and pair.messages == edited.messages  # exactly what the model saw
    assert (pair.answer, pair.edited) == ("Council backs bridge", True)
    assert len(selectors.training_pairs(headline, edited_only=False)) == 2
    chat = json.loads(selectors.training_jsonl([pair]))
    assert chat["messages"][:-1] == edited.messages
    assert chat["messages"][-1] == {"role": "assistant", "content": "Council backs bridge"}


def test_a_prompt_approved_twice_is_one_pair_with_the_newest_text(user, reviewer, headline):
    approved(user, reviewer, STORIES[0], wrote="A", edit="Council backs bridge")
    approved(user, reviewer, STORIES[0], wrote="B", edit="Council approves the bridge")
    approved(user, reviewer, STORIES[1], wrote="C", edit="Bridge plan passes")
    pairs = selectors.training_pairs(headline)
    assert [p.answer for p in pairs] == ["Council approves the bridge", "Bridge plan passes"]


def test_the_held_out_split_is_decided_by_the_prompt_and_stays_put(user, reviewer, headline):
    for i, story in enumerate(STORIES):
        approved(user, reviewer, story, wrote=f"Headline {i}", edit=f"Edited headline {i}")
    pairs = selectors.training_pairs(headline)
    held = {p.key for p in pairs if p.split == selectors.TRAINING_HELD_OUT}
    assert 1 <= len(held) < len(pairs)
    for i in range(3):  # more approved work does not move an earlier pair to the other side
        approved(user, reviewer, f"Another story {i} about the bridge vote.", wrote="x", edit=f"More {i}")
    later = {p.key: p.split for p in selectors.training_pairs(headline)}
    assert all(later[p.key] == p.split for p in pairs)


def test_two_pairs_hold_one_out(user, reviewer, headline):
    approved(user, reviewer, STORIES[0], wrote="A", edit="One")
    approved(user, reviewer, STORIES[1], wrote="B", edit="Two")
    splits = [p.split for p in selectors.training_pairs(headline)]
    assert sorted(splits) == [selectors.TRAINING_HELD_OUT, "train"]


def test_a_desk_s_pairs_are_its_jobs_only(user, other_user, reviewer, headline):
    sport = desk("sport")
    join(user, sport)
    Membership.objects.create(desk=sport, user=reviewer, role=DeskRole.REVIEWER)  # and still on the default desk
    approved(user, reviewer, STORIES[0], wrote="A", edit="Sport one")
    approved(other_user, reviewer, STORIES[1], wrote="B", edit="Newsroom one")
    assert [p.answer for p in selectors.training_pairs(headline, desk=sport)] == ["Sport one"]


def test_export_training_writes_each_split(user, reviewer, headline, tmp_path, capsys):
    for i, story in enumerate(STORIES[:6]):
        approved(user, reviewer, story, wrote=f"H{i}", edit=f"Edited {i}")
    out = tmp_path / "train.jsonl"
    call_command("export_training", "headline", "--output", str(out))
    train = [json.loads(line) for line in out.read_text().splitlines()]
    call_command("export_training", "headline", "--split", "heldout")
    held = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert train and held and len(train) + len(held) == 6
    assert {m["messages"][-1]["content"] for m in train}.isdisjoint(m["messages"][-1]["content"] for m in held)


def test_the_streamed_lines_are_the_pairs_read_a_few_jobs_at_a_time(user, reviewer, headline, monkeypatch):
    """An export holds only each pair's job, hash and split, and reads the texts CHUNK jobs at a time: the same
    JSONL as the pairs themselves, in the same order."""
    monkeypatch.setattr(training, "CHUNK", 2)
    for i, story in enumerate(STORIES[:7]):
        approved(user, reviewer, story, wrote=f"H{i}", edit=f"Edited {i}")
    approved(user, reviewer, STORIES[0], wrote="again", edit="Edited again")  # the newer approval wins
    pairs, refs = selectors.training_pairs(headline), selectors.training_index(headline)
    assert [(p.job_id, p.key, p.split, p.desk) for p in pairs] == [(r.job_id, r.key, r.split, r.desk) for r in refs]
    for split in (None, *selectors.TRAINING_SPLITS):
        assert "".join(selectors.training_lines(refs, split)) == selectors.training_jsonl(pairs, split)
    assert selectors.desk_shares(refs) == {pairs[0].desk: 7}


INVENTED = "Amber Ruiz, Mayor of Riverton, Opens Bridge"


def test_the_pair_is_the_chosen_candidate_s_final_text_never_the_first(user, reviewer, headline):
    edited = approved_choosing(
        user, reviewer, STORIES[0], wrote=[INVENTED, "Council Votes On Bridge."], choose=1, edit="Council backs bridge"
    )
    as_written = approved_choosing(user, reviewer, STORIES[1], wrote=[INVENTED, "Bridge plan passes"], choose=1)
    (pair,) = selectors.training_pairs(headline)
    assert (pair.job_id, pair.answer, pair.edited) == (str(edited.pk), "Council backs bridge", True)
    answers = {p.job_id: p.answer for p in selectors.training_pairs(headline, edited_only=False)}
    assert answers == {str(edited.pk): "Council backs bridge", str(as_written.pk): "Bridge plan passes"}
    lines = "".join(training.training_lines(selectors.training_index(headline, edited_only=False), edited_only=False))
    assert "Council backs bridge" in lines and "Bridge plan passes" in lines and "Amber Ruiz" not in lines
    # Approved with nothing chosen (no such approval is made now): no approved text, so no pair.
    JobOutput.objects.filter(job=as_written).update(chosen=False)
    assert [p.job_id for p in selectors.training_pairs(headline, edited_only=False)] == [str(edited.pk)]
