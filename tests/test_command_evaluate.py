"""`manage.py evaluate`: CI for prompts. It runs the experiment (here in-process, on the bundled model), prints
the table, writes JSON, and its exit status says whether the gate would let the version through."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from generation.models import Experiment, PromptTemplate
from tests.support.evaluation import equal_version, small_dataset, worse_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def gated(fast_headline, curator):
    PromptTemplate.objects.filter(pk=fast_headline.pk).update(gate_dataset="gate")
    fast_headline.refresh_from_db()
    small_dataset(fast_headline, curator)
    return fast_headline


def evaluate(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("evaluate", *args, "--in-process", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_a_worse_version_exits_1_with_the_numbers_and_an_equal_one_exits_0(gated, curator, tmp_path):
    worse = worse_version(gated, curator)
    report = tmp_path / "worse.json"
    with pytest.raises(CommandError) as refused:
        evaluate("headline", "--version", str(worse.number), "--json", str(report))
    assert refused.value.returncode == 1 and "contract_rate" in str(refused.value)
    written = json.loads(report.read_text())
    assert written["gate"]["passed"] is False and written["candidate"]["version"] == worse.number
    assert written["comparison"]["metrics"][0]["key"] == "contract_rate"

    equal = equal_version(gated, curator)
    out, err = evaluate("headline", "--version", str(equal.number), "--baseline", "production")
    assert "gate: passes" in out and "Contract met" in out and "identical outputs: 2" in out
    assert "cases measured" in err  # progress while it runs
    assert Experiment.objects.count() == 2  # the baseline's run was reused by the second


def test_what_cannot_run_exits_2():
    for args, message in (
        (["nope", "--version", "1"], "No template 'nope'"),
        (["headline"], "Give --version N or --label NAME"),
        (["headline", "--version", "1"], "has no gate dataset"),
    ):
        with pytest.raises(CommandError, match=message) as failed:
            evaluate(*args)
        assert failed.value.returncode == 2


def test_import_dataset_reads_a_jsonl_file_all_or_nothing(tmp_path, fast_headline):
    good = tmp_path / "cases.jsonl"
    good.write_text('{"inputs": {"text": "A storm hit the coast."}, "reference": "Storm hits coast", "seed": 1}\n')
    out = io.StringIO()
    call_command("import_dataset", "headline", "gate", str(good), stdout=out)
    assert out.getvalue().strip() == "headline/gate v1: 1 cases."
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"inputs": {"text": "ok"}}\n{"inputs": {"text": ""}}\n')
    with pytest.raises(CommandError, match=r"items\.1\.inputs\.text"):
        call_command("import_dataset", "headline", "gate", str(bad))
    assert fast_headline.datasets.count() == 1
