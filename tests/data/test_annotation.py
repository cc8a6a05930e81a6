import re

import pytest

from slu_lightning.data.annotation import parse_annotation
from slu_lightning.data.records import Entity


def test_massive_annotation_gives_text_and_entities_in_order():
    text, entities = parse_annotation("weck mich [date : diese woche] um [time : fünf uhr morgens] auf")
    assert text == "weck mich diese woche um fünf uhr morgens auf"
    assert entities == (Entity("date", "diese woche"), Entity("time", "fünf uhr morgens"))


def test_filler_with_colons_is_split_on_the_first_separator_only():
    text, entities = parse_annotation("wake me up at [time : 5:30] [date : tomorrow]")
    assert text == "wake me up at 5:30 tomorrow"
    assert entities == (Entity("time", "5:30"), Entity("date", "tomorrow"))
    assert parse_annotation("[time : 5 : 30]")[1] == (Entity("time", "5 : 30"),)


def test_slurp_annotation_adjacent_entities_and_no_entities():
    text, entities = parse_annotation("event reminder [event_name : mona] [date : tuesday]")
    assert text == "event reminder mona tuesday"
    assert [e.type for e in entities] == ["event_name", "date"]
    assert parse_annotation("increase the  brightness ") == ("increase the brightness", ())


def test_entity_at_start_and_end_and_extra_spaces_inside():
    text, entities = parse_annotation("[person :  jessica's ] number [device_type : phone]")
    assert text == "jessica's number phone"
    assert entities == (Entity("person", "jessica's"), Entity("device_type", "phone"))


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        ("set [time : five", "unbalanced '['"),
        ("set time : five]", "unbalanced ']'"),
        ("set [time : [five]]", "unbalanced '['"),
        ("set [time five]", "no ' : '"),
        ("set [time :5:30]", "no ' : '"),
        ("set [ : five]", "empty type or filler"),
        ("set [time : ]", "empty type or filler"),
    ],
)
def test_malformed_annotations_raise_a_clear_value_error(annotation, message):
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        parse_annotation(annotation)
    assert repr(annotation) in str(raised.value)
