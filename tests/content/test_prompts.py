import pytest

from generation.content import prompts
from generation.content.prompts import InvalidInput, ParamLimits, clean_inputs, clean_params, render_messages

VARIABLES = [
    {"name": "text", "required": True, "max_length": 50},
    {"name": "words", "required": False, "default": "60", "max_length": 5},
]
LIMITS = ParamLimits(max_new_tokens=512, max_candidates=8)


def errors_of(fn, *args):
    with pytest.raises(InvalidInput) as info:
        fn(*args)
    return info.value.errors


def test_defaults_fill_missing_optional_inputs():
    assert clean_inputs(VARIABLES, {"text": "  A story.  "}) == {"text": "A story.", "words": "60"}


def test_every_bad_input_is_named_at_once():
    errors = errors_of(clean_inputs, VARIABLES, {"text": "x" * 51, "colour": "red", "words": ["1"]})
    assert set(errors) == {"inputs.text", "inputs.colour", "inputs.words"}
    assert "At most 50 characters" in errors["inputs.text"][0]
    assert "Unknown input" in errors["inputs.colour"][0]


def test_required_input_blank_or_missing():
    assert errors_of(clean_inputs, VARIABLES, {"text": "   "}) == {"inputs.text": ["This field is required."]}
    assert errors_of(clean_inputs, VARIABLES, {}) == {"inputs.text": ["This field is required."]}
    assert "inputs" in errors_of(clean_inputs, VARIABLES, ["text"])


def test_substitution_is_one_plain_pass():
    """User text that looks like a placeholder or a format spec is inserted literally, never evaluated."""
    values = {"text": "{words} {text.__class__} {0}", "words": "60"}
    messages = render_messages("System {words}", "Summarise in {words} words: {text} {unknown}", values)
    assert messages == [
        {"role": "system", "content": "System 60"},
        {"role": "user", "content": "Summarise in 60 words: {words} {text.__class__} {0} {unknown}"},
    ]


def test_chinese_inputs_work_like_english():
    cleaned = clean_inputs(VARIABLES, {"text": "城市议会投票决定修建新桥。"})
    assert render_messages("", "标题：{text}", cleaned) == [
        {"role": "user", "content": "标题：城市议会投票决定修建新桥。"}
    ]


def test_params_merge_template_defaults_and_request():
    params = clean_params({"temperature": 0, "seed": 5}, {"n": 5, "max_new_tokens": 32}, LIMITS)
    assert params == {"max_new_tokens": 32, "temperature": 0.0, "top_p": 0.95, "n": 5, "seed": 5}


def test_template_default_above_the_cap_is_clamped_but_a_request_above_it_is_refused():
    assert clean_params({}, {"max_new_tokens": 4096}, LIMITS)["max_new_tokens"] == 512
    assert "params.max_new_tokens" in errors_of(clean_params, {"max_new_tokens": 4096}, {}, LIMITS)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"temperature": 2.5}, "params.temperature"),
        ({"top_p": 0}, "params.top_p"),
        ({"n": 0}, "params.n"),
        ({"n": 9}, "params.n"),
        ({"n": True}, "params.n"),
        ({"max_new_tokens": "10"}, "params.max_new_tokens"),
        ({"seed": -1}, "params.seed"),
        ({"seed": 1.5}, "params.seed"),
        ({"beam_width": 4}, "params.beam_width"),
    ],
)
def test_params_out_of_range_or_wrong_type(params, field):
    assert field in errors_of(clean_params, params, {}, LIMITS)


def test_params_must_be_an_object():
    assert errors_of(clean_params, [1, 2], {}, LIMITS) == {"params": ["Must be an object."]}


def test_nul_characters_in_inputs_are_refused():
    assert errors_of(clean_inputs, VARIABLES, {"text": "a\x00b"}) == {
        "inputs.text": ["Must not contain NUL characters."]
    }


def test_limits_no_input_could_meet_are_refused_on_their_key():
    bad = [
        {"name": "text", "max_length": "lots", "default": "x"},
        {"name": "n", "type": "number", "min": 10, "max": 2},
        {"name": "m", "type": "number", "max": "ten"},
        {"name": "k", "max_length": 0},
    ]
    with pytest.raises(prompts.InvalidInput) as err:
        prompts.check_variables(bad, {"user_template": "{text} {n} {m} {k}"})
    assert err.value.errors == {
        "variables.0.max_length": ["A whole number of characters, at least 1."],
        "variables.1.min": ["Must not be above the maximum (2)."],
        "variables.2.max": ["Must be a number."],
        "variables.3.max_length": ["A whole number of characters, at least 1."],
    }
    prompts.check_variables([{"name": "n", "type": "number", "min": 1, "max": 1}], {"user_template": "{n}"})
