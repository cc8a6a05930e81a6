import json

import pytest

from slu_lightning.data.errors import DataError, SkipLog
from slu_lightning.data.readers.manifest import read_manifest, write_manifest
from slu_lightning.data.records import Entity, SLUExample


def test_round_trip_keeps_everything_and_writes_audio_relative_to_the_manifest(tmp_path):
    audio = tmp_path / "audio" / "a.flac"
    examples = [
        SLUExample(
            "a",
            "fr-FR",
            "réveille-moi à sept heures",
            "alarm",
            "set",
            (Entity("time", "sept heures"),),
            audio=str(audio),
            utterance_id="u1",
            source="demo",
            meta={"voice": "fr+m3"},
        ),
        SLUExample("b", "en-US", "play jazz", "play", "music", (Entity("music_genre", "jazz"),)),
    ]
    path = write_manifest(tmp_path / "train.jsonl", examples)
    assert json.loads(path.read_text().splitlines()[0])["audio"] == "audio/a.flac"
    moved = tmp_path.rename(tmp_path.with_name("moved")) / "train.jsonl"  # a corpus folder moves as a whole
    again = read_manifest(moved)
    assert again[0].audio == str(moved.parent / "audio" / "a.flac")
    assert [(e.id, e.text, e.entities, e.utterance_id, e.meta) for e in again] == [
        (e.id, e.text, e.entities, e.utterance_id, e.meta) for e in examples
    ]
    assert again[1].source == "manifest" and again[1].audio is None


GOOD_KEYS = '"id": "x", "locale": "en-US", "text": "hi", "scenario": "a", "action": "b", "entities": []'
BAD_ROWS = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"id": "x", "locale": "en-US", "text": "hi", "scenario": "a"}', "missing keys"),
    (
        '{"id": "x", "locale": "en-US", "text": "  ", "scenario": "a", "action": "b", "entities": []}',
        "'text'",
    ),
    (
        '{"id": "x", "locale": "en-US", "text": "hi", "scenario": "a", "action": "b", '
        '"entities": [{"type": 1}]}',
        "entities",
    ),
    (
        '{"id": "x", "locale": "en-US", "text": "hi", "scenario": "a", "action": "b", '
        '"entities": [{"type": "date", "filler": " "}]}',
        "has an empty type or filler",
    ),
    (
        '{"id": "x", "locale": "en-US", "text": "hi", "scenario": "a", "action": "b", '
        '"entities": [], "audio": 3}',
        "audio",
    ),
    *(
        (f"{{{GOOD_KEYS}, {extra}}}", message)
        for extra, message in [
            ('"meta": "x"', "'meta' must be an object of attributes, got 'x'"),
            ('"meta": [1, 2]', "'meta' must be an object"),
            ('"audio": ""', "'audio' must be a non-empty path string, got ''"),
            ('"source": 5', "'source' must be a string, got 5"),
            ('"utterance_id": true', "'utterance_id' must be a non-empty string"),
        ]
    ),
    (b'{"id": "caf\xe9", "locale": "en-US"}', r"not UTF-8 \(byte 0xe9 at column 12\)"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_ROWS)
def test_a_bad_row_is_named_by_file_and_line_or_counted(tmp_path, bad, message):
    good = '{"id": "g", "locale": "en-US", "text": "hi", "scenario": "a", "action": "b", "entities": []}'
    path = tmp_path / "m.jsonl"
    path.write_bytes(f"{good}\n\n".encode() + (bad if isinstance(bad, bytes) else bad.encode()) + b"\n")
    with pytest.raises(DataError, match=message) as error:
        read_manifest(path)
    assert error.value.file == str(path) and error.value.record == "line 3"
    skips = SkipLog("skip")
    assert [e.id for e in read_manifest(path, skips)] == ["g"] and skips.total == 1


def test_an_integer_utterance_id_is_read_as_a_string_as_slurp_ids_are(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(f'{{{GOOD_KEYS}, "utterance_id": 5, "meta": null}}\n')
    (example,) = read_manifest(path)
    assert (example.utterance_id, example.meta, example.source) == ("5", {}, "manifest")


@pytest.mark.parametrize("blank", ['""', '"  "', "null"])
def test_a_blank_utterance_id_is_absent_the_example_its_own_utterance(tmp_path, blank):
    path = tmp_path / "m.jsonl"
    path.write_text(f'{{{GOOD_KEYS}, "utterance_id": {blank}}}\n')
    (example,) = read_manifest(path)
    assert example.utterance_id == example.id


def test_a_missing_manifest_is_named(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_manifest(tmp_path / "nope.jsonl")
