"""The one parser of what people send: JSON too deep, NaN, NUL and CSV values past csv's own limit are errors
that say where, which every entry point turns into a 400 or a form error naming the field."""

import csv
import json

import pytest

from generation.content import safeparse


def test_json_nested_past_the_stack_names_the_path_where_it_went_too_deep():
    text = '{"a": [1, {"b": ' + "[" * 100_000 + "]" * 100_000 + "}]}"
    with pytest.raises(safeparse.JSONInputError) as err:
        safeparse.loads(text)
    # The same path a value parsed whole would be named by (safeparse.problem).
    assert err.value.where == "a.1.b" + ".0" * 30 and "Nested deeper than 32 levels" in err.value.msg
    assert not err.value.syntax
    shallow = '{"a": [1, {"b": ' + "[" * 40 + "]" * 40 + "}]}"
    with pytest.raises(safeparse.JSONInputError) as again:
        safeparse.loads(shallow)
    assert again.value.where == err.value.where


def test_nan_nul_size_and_broken_json_are_refused_and_still_json_decode_errors():
    for text, where, syntax in (
        ('{"t": NaN}', "", True),
        ('{"t": ["ok", "a\\u0000"]}', "t.1", False),
        ('{"a\\u0000": 1}', "", False),
        ('{"seed": ' + "9" * 5000 + "}", "", False),  # past int()'s own limit: a ValueError json does not wrap
        ("{oops", "", True),
    ):
        with pytest.raises(json.JSONDecodeError) as err:  # what callers of json.loads already catch
            safeparse.loads(text)
        assert (err.value.where, err.value.syntax) == (where, syntax), text
    with pytest.raises(safeparse.JSONInputError, match="Longer than 10 characters"):
        safeparse.loads('"' + "a" * 20 + '"', max_chars=10)
    assert safeparse.loads(b'{"ok": [1, 2.5, "\xc3\xa9"]}') == {"ok": [1, 2.5, "é"]}


def test_a_csv_value_past_csvs_own_limit_names_its_row_and_column():
    text = "kind,text\nsummary,fine\nsummary," + "a" * 200_000 + "\n"
    rows = safeparse.csv_rows(text)
    assert next(rows) == (1, ["kind", "text"]) and next(rows) == (2, ["summary", "fine"])
    with pytest.raises(safeparse.CSVInputError, match=r"^Row 3, column text: 200,000 characters; at most 131,072"):
        next(rows)
    with pytest.raises(KeyError, match="Row 1, column 1"):  # the caller's own error type
        list(safeparse.csv_rows("a" * 140_000 + ",b\n", error=KeyError))
    # A quoted value spanning lines is one row, measured whole.
    with pytest.raises(safeparse.CSVInputError, match=r"^Row 2, column b: 7 characters; at most 5"):
        list(safeparse.csv_rows('a,b\nx,"y\n\nzzzz"\n', max_field_chars=5))


def test_csv_dicts_reads_as_dictreader_does():
    text = "a,b\n1,2\n\n3\n4,5,6\n"
    assert list(safeparse.csv_dicts(text)) == list(csv.DictReader(text.splitlines()))
