import json

import pytest

from slu_lightning.data.records import Entity, SLUExample
from slu_lightning.task import (
    END_OF_TURN,
    ParseStatus,
    PromptTemplate,
    format_target,
    parse_prediction,
    target_for,
)

EXAMPLE = SLUExample("u1", "en-US", "wake me up at seven am", "alarm", "set", (Entity("time", "seven am"),))


def test_target_is_one_line_json_with_fixed_key_order_and_end_token():
    target = target_for(EXAMPLE)
    assert target.endswith(END_OF_TURN)
    body = target.removesuffix(END_OF_TURN)
    assert "\n" not in body
    assert list(json.loads(body)) == ["scenario", "action", "entities"]
    assert json.loads(body)["entities"] == [{"type": "time", "filler": "seven am"}]


def test_non_ascii_fillers_stay_readable():
    assert "réveil" in format_target("alarm", "set", (Entity("time", "réveil"),))


def test_text_and_audio_prompts_differ_only_in_the_input_slot():
    template = PromptTemplate()
    text, audio = template.render_prompt("hello there"), template.render_prompt(None)
    assert text.replace("hello there", "<|audio_bos|><|AUDIO|><|audio_eos|>") == audio


def test_prompt_matches_the_chat_template_of_the_backbone(tiny_backbone):
    from slu_lightning.model.backbone import load_processor

    processor = load_processor(tiny_backbone)
    template = PromptTemplate()
    messages = [
        {"role": "system", "content": template.system},
        {"role": "user", "content": template.user_turn("play jazz")},
    ]
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == template.render_prompt("play jazz")


@pytest.mark.parametrize(
    "bad",
    [
        {"instruction": "no slot"},
        {"text_input": "no transcript"},
        {"audio_input": "no audio"},
    ],
)
def test_invalid_templates_are_refused(bad):
    with pytest.raises(ValueError, match="invalid prompt template"):
        PromptTemplate(**bad)


VALID = '{"scenario": "alarm", "action": "set", "entities": [{"type": "time", "filler": "seven am"}]}'


@pytest.mark.parametrize(
    ("output", "status", "scenario", "entities"),
    [
        (VALID, ParseStatus.VALID, "alarm", (Entity("time", "seven am"),)),
        (VALID + END_OF_TURN, ParseStatus.VALID, "alarm", (Entity("time", "seven am"),)),
        (VALID + " and more text {", ParseStatus.TRAILING, "alarm", (Entity("time", "seven am"),)),
        ("Sure! " + VALID + END_OF_TURN, ParseStatus.LEADING, "alarm", (Entity("time", "seven am"),)),
        ("ok " + VALID + " more", ParseStatus.LEADING, "alarm", (Entity("time", "seven am"),)),
        (" \n" + VALID, ParseStatus.VALID, "alarm", (Entity("time", "seven am"),)),
        ('Sure: {"scenario": "alarm"}', ParseStatus.MISSING_KEYS, "alarm", ()),
        (  # a stray brace before the answer is text before it, not the answer
            'Note {x}: {"scenario": "alarm", "action": "set", "entities": []}' + END_OF_TURN,
            ParseStatus.LEADING,
            "alarm",
            (),
        ),
        ("{x} " + VALID + " {y}", ParseStatus.LEADING, "alarm", (Entity("time", "seven am"),)),
        (  # an object nested in one that does not parse is not the answer
            '{"scenario": "alarm", "action": set, "entities": [{"type": "t", "filler": "f"}]}' + END_OF_TURN,
            ParseStatus.MALFORMED,
            "alarm",
            (),
        ),
        (VALID[:-2], ParseStatus.TRUNCATED, "alarm", (Entity("time", "seven am"),)),
        (VALID[:-12], ParseStatus.TRUNCATED, "alarm", (Entity("time", ""),)),
        (VALID[:-30], ParseStatus.TRUNCATED, "alarm", ()),
        (
            '{"scenario": "alarm", "action": "set", "entities": [{"type": "time", "filler": "sev',
            ParseStatus.TRUNCATED,
            "alarm",
            (Entity("time", "sev"),),
        ),
        ('{"scenario": "alarm"}', ParseStatus.MISSING_KEYS, "alarm", ()),
        ('{"scenario": 3, "action": "set", "entities": "x"}', ParseStatus.MISSING_KEYS, "", ()),
        ("I think it is an alarm", ParseStatus.INVALID, "", ()),
        ("", ParseStatus.INVALID, "", ()),
        ("[1, 2]", ParseStatus.INVALID, "", ()),
        ('{"a": "\\', ParseStatus.TRUNCATED, "", ()),
        ('{"scenario": "alarm" "action": "se', ParseStatus.TRUNCATED, "alarm", ()),
        (
            '{"scenario": "alarm" "action": "set", "entities": []}' + END_OF_TURN,
            ParseStatus.MALFORMED,
            "alarm",
            (),
        ),
        ('{"scenario": "alarm", "action": set}}' + END_OF_TURN, ParseStatus.MALFORMED, "alarm", ()),
        (VALID[:-12] + END_OF_TURN, ParseStatus.MALFORMED, "alarm", (Entity("time", ""),)),
    ],
)
def test_parser_never_raises_and_reports_what_it_saw(output, status, scenario, entities):
    prediction = parse_prediction(output)
    assert prediction.status is status
    assert prediction.scenario == scenario
    assert prediction.entities == entities
    assert prediction.is_valid == (status is ParseStatus.VALID)


def test_parser_survives_nesting_past_pythons_recursion_limit():
    """A degenerate model can emit thousands of brackets; json recurses once per level."""
    prediction = parse_prediction('{"scenario": "alarm", "action": "set", "entities": ' + "[" * 3000)
    assert prediction.status is ParseStatus.TRUNCATED
    assert (prediction.scenario, prediction.action, prediction.entities) == ("alarm", "set", ())


def test_parser_keeps_good_entities_and_flags_bad_ones():
    output = '{"scenario": "a", "action": "b", "entities": [{"type": "t", "filler": "f"}, {"type": 1}]}'
    prediction = parse_prediction(output)
    assert prediction.status is ParseStatus.MISSING_KEYS
    assert prediction.entities == (Entity("t", "f"),)


def test_a_lone_surrogate_escape_in_an_answer_is_replaced_so_it_can_be_written():
    answer = (
        '{"scenario": "alarm", "action": "set", "entities": [{"type": "date\\udc00", "filler": "\\ud83d x"}]}'
    )
    prediction = parse_prediction(answer)
    assert prediction.status is ParseStatus.VALID
    assert prediction.entities == (Entity("date\ufffd", "\ufffd x"),)
    json.dumps(prediction.to_json(), ensure_ascii=False).encode("utf-8")  # raised UnicodeEncodeError
    paired = parse_prediction(
        '{"scenario": "a", "action": "b", "entities": [{"type": "t", "filler": "\\ud83d\\ude00"}]}'
    )
    assert paired.entities[0].filler == "\U0001f600"  # a pair is one character, kept
