import io
import json
import pickle
import re
import shutil
import typing
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
import torch
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

from slu_lightning.data.audio import StoredClip, checked_seconds, load_audio
from slu_lightning.data.corpora import CombinedCorpus, MassiveTextCorpus, SpeechMassiveCorpus
from slu_lightning.data.errors import DataError, SkipLog
from slu_lightning.data.readers import read_italic, read_massive, read_slurp, read_speech_massive
from slu_lightning.data.readers.massive import massive_example
from slu_lightning.data.records import Entity, SLUExample

FIXTURES = Path(__file__).parent.parent / "fixtures"
SLURP_TEST = FIXTURES / "slurp" / "test.jsonl"
MASSIVE_DATA = FIXTURES / "massive" / "data"


def clip(seconds: float, format: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    tone = 0.1 * np.sin(np.linspace(0, 2 * np.pi * 440 * seconds, int(16000 * seconds), dtype=np.float32))
    sf.write(buffer, tone, 16000, format=format)
    return buffer.getvalue()


def write_lines(path: Path, rows: list) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def slurp_rows() -> list[dict]:
    return [json.loads(line) for line in SLURP_TEST.read_text().splitlines()]


# --- SLURP -------------------------------------------------------------------------------------


def test_slurp_text_is_one_example_per_sentence_with_scorer_labels():
    examples = read_slurp(SLURP_TEST, modality="text")
    assert [e.id for e in examples] == ["9054", "13035", "962", "6744"]
    first = examples[0]
    assert (first.text, first.locale, first.source, first.audio) == (
        "event reminder mona tuesday",
        "en-US",
        "slurp",
        None,
    )
    assert first.entities == (Entity("event_name", "mona"), Entity("date", "tuesday"))
    # Fillers are token surfaces joined by spaces, as the official scorer builds its gold.
    assert examples[1].entities == (Entity("person", "jessica 's"),)
    assert examples[3].entities[-1] == Entity("time", "ten am")
    # Row 962 has intent "hue_lightup"; the label is built from scenario and action.
    assert (examples[2].scenario, examples[2].action, examples[2].intent) == (
        "iot",
        "hue_lightup",
        "iot_hue_lightup",
    )
    assert examples[2].entities == ()


def test_slurp_speech_is_one_example_per_recording_keyed_by_file(tmp_path):
    examples = read_slurp(SLURP_TEST, tmp_path, modality="speech")
    assert len(examples) == 2 + 3 + 1 + 10
    by_id = {e.id: e for e in examples}
    assert len(by_id) == len(examples)
    recording = by_id["audio-1490954377.flac"]
    assert recording.audio == str(tmp_path / "audio-1490954377.flac")
    assert recording.utterance_id == "13035"
    assert recording.meta == {"mic": "far_field"}
    assert recording.entities == (Entity("person", "jessica 's"),)
    assert by_id["audio-1490954377-headset.flac"].meta == {"mic": "headset"}
    assert recording.as_text() == read_slurp(SLURP_TEST, modality="text")[1]


@pytest.mark.parametrize(("mics", "count"), [("headset", 1 + 2 + 1 + 4), ("far_field", 1 + 1 + 0 + 6)])
def test_slurp_microphone_filter(tmp_path, mics, count):
    examples = read_slurp(SLURP_TEST, tmp_path, modality="speech", recordings=mics)
    assert len(examples) == count
    assert {e.meta["mic"] for e in examples} == {mics}
    assert all(("-headset" in e.id) == (mics == "headset") for e in examples)


def test_slurp_synthetic_file_uses_the_given_audio_folder(tmp_path):
    row = slurp_rows()[2] | {
        "recordings": [{"file": "audio--1504190166.flac", "wer": 0.0, "ent_wer": None, "status": "correct"}]
    }
    synthetic = write_lines(tmp_path / "train_synthetic.jsonl", [row])
    (example,) = read_slurp(synthetic, tmp_path / "slurp_synth", modality="speech")
    assert example.audio == str(tmp_path / "slurp_synth" / "audio--1504190166.flac")


def test_slurp_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="audio_dir is required"):
        read_slurp(SLURP_TEST, modality="speech")
    with pytest.raises(ValueError, match="modality"):
        read_slurp(SLURP_TEST, modality="audio")
    with pytest.raises(ValueError, match="recordings"):
        read_slurp(SLURP_TEST, modality="text", recordings="headset")
    with pytest.raises(DataError, match="file not found"):
        read_slurp(tmp_path / "missing.jsonl", modality="text")


def _bad_slurp_rows() -> list[tuple[str, object, str]]:
    good = slurp_rows()[0]
    return [
        ("bad json", '{"slurp_id": 1, "sentence": ', "not valid JSON"),
        ("not an object", "[1, 2]", "not a JSON object"),
        ("missing key", {k: v for k, v in good.items() if k != "action"}, "missing keys ['action']"),
        ("empty sentence", good | {"sentence": "  "}, "'sentence' must be a non-empty string"),
        ("span not in tokens", good | {"entities": [{"span": [2, 9], "type": "date"}]}, "token ids [9]"),
        ("bad tokens", good | {"tokens": [{"surface": "x"}]}, "'tokens' must be a list"),
        (
            "missing recordings",
            {k: v for k, v in good.items() if k != "recordings"},
            "missing keys ['recordings']",
        ),
        ("recording without file", good | {"recordings": [{"wer": 0.0}]}, "'recordings' must be a list"),
        ("span of objects", good | {"entities": [{"span": [{"a": 1}], "type": "date"}]}, "integer token ids"),
        ("span of a boolean", good | {"entities": [{"span": [True], "type": "date"}]}, "integer token ids"),
        ("span repeats a token", good | {"entities": [{"span": [2, 2], "type": "date"}]}, "token id twice"),
        ("boolean token id", good | {"tokens": [{"surface": "x", "id": True}]}, "'tokens' must be a list"),
        (
            "repeated token id",
            good | {"tokens": [*good["tokens"], good["tokens"][0] | {"surface": "other"}]},
            "'tokens' repeats the token ids [0]",
        ),
    ]


@pytest.mark.parametrize(
    ("case", "bad_row", "message"), _bad_slurp_rows(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_slurp_bad_row_names_file_and_line_or_is_counted(tmp_path, case, bad_row, message):
    first, second = slurp_rows()[:2]  # 2 and 3 recordings
    path = write_lines(tmp_path / "devel.jsonl", [first, bad_row, second])
    with pytest.raises(DataError, match=re.escape(message)) as raised:
        read_slurp(path, tmp_path, modality="speech")
    assert (raised.value.file, raised.value.record) == (str(path), "line 2")
    assert str(path) in str(raised.value)
    skips = SkipLog("skip")
    assert len(read_slurp(path, tmp_path, modality="speech", skips=skips)) == 2 + 3
    assert skips.total == 1


def test_a_repeated_id_is_named_with_where_it_first_appeared_or_skipped(tmp_path):
    first, second = slurp_rows()[:2]
    path = write_lines(tmp_path / "devel.jsonl", [first, second, first | {"sentence": "another"}])
    with pytest.raises(DataError, match=r"line 3: id '\d+' repeats the one at line 1"):
        read_slurp(path, tmp_path, modality="text")
    skips = SkipLog("skip")
    kept = read_slurp(path, tmp_path, modality="text", skips=skips)
    assert len(kept) == 2 and kept[0].text == first["sentence"] and skips.total == 1


def test_a_repeated_slurp_id_with_other_recordings_is_caught_on_the_speech_side_too(tmp_path):
    """Recordings are keyed by file name, so only the slurp_id shows that two lines are one utterance."""
    first, second = slurp_rows()[:2]
    recording = {"file": "audio-other.flac", "wer": 0.0, "ent_wer": 0.0, "status": "correct"}
    again = first | {"sentence": "another", "recordings": [recording]}
    path = write_lines(tmp_path / "devel.jsonl", [first, second, again])
    with pytest.raises(DataError, match=r"line 3: utterance id '\d+' repeats the one at line 1"):
        read_slurp(path, tmp_path, modality="speech")
    skips = SkipLog("skip")
    kept = read_slurp(path, tmp_path, modality="speech", skips=skips)
    assert "audio-other.flac" not in {e.id for e in kept} and skips.total == 1


def test_a_recording_listed_twice_in_one_row_is_named_or_skipped(tmp_path):
    """Within one row it would be scored twice; skipped, only the repeat goes."""
    first, second = slurp_rows()[:2]  # 2 and 3 recordings
    twice = first | {"recordings": [*first["recordings"], first["recordings"][0]]}
    path = write_lines(tmp_path / "devel.jsonl", [second, twice])
    name = first["recordings"][0]["file"]
    where = f"slurp_id {first['slurp_id']}, recording {name}: listed twice in its utterance's recordings"
    with pytest.raises(DataError, match=re.escape(where)):
        read_slurp(path, tmp_path, modality="speech")
    skips = SkipLog("skip")
    kept = read_slurp(path, tmp_path, modality="speech", skips=skips)
    assert [e.id for e in kept] == [r["file"] for r in second["recordings"] + first["recordings"]]
    assert skips.total == 1


def test_a_recording_real_slurp_lists_under_two_utterances_is_kept_under_the_first(tmp_path, caplog):
    """The real train.jsonl gives audio-1502309360-headset.flac to "compose an email to parisa" and
    "compose an email to aran" (pswietojanski/slurp#7). Refusing it would stop every run on SLURP's
    training speech; skipping the second row would lose its other recordings."""
    first, second = slurp_rows()[:2]  # 2 and 3 recordings
    shared = first["recordings"][0]
    claimed = second | {"recordings": [*second["recordings"], shared]}
    path = write_lines(tmp_path / "train.jsonl", [first, claimed])
    for policy in ("error", "skip"):
        skips = SkipLog(policy)
        with caplog.at_level("WARNING", logger="slu_lightning.data.errors"):
            kept = read_slurp(path, tmp_path, modality="speech", skips=skips)
        assert [e.id for e in kept] == [r["file"] for r in first["recordings"] + second["recordings"]]
        assert next(e for e in kept if e.id == shared["file"]).utterance_id == str(first["slurp_id"])
        assert skips.counts == {"a recording an earlier utterance lists too": 1}
    assert f"kept under slurp_id {first['slurp_id']}" in caplog.text


def slurp_bytes_with_latin1_line() -> bytes:
    """The fixture with its second line's sentence holding a Latin-1 byte (``é``), not UTF-8."""
    lines = SLURP_TEST.read_bytes().splitlines(keepends=True)
    latin1 = json.dumps(slurp_rows()[1] | {"sentence": "café"}, ensure_ascii=False).encode("latin-1")
    return lines[0] + latin1 + b"\n" + b"".join(lines[2:])


def test_a_line_that_is_not_utf8_is_named_or_skipped_like_any_bad_line(tmp_path):
    path = tmp_path / "devel.jsonl"
    path.write_bytes(slurp_bytes_with_latin1_line())
    with pytest.raises(DataError, match=r"not UTF-8 \(byte 0xe9 at column \d+\)") as raised:
        read_slurp(path, modality="text")
    assert (raised.value.file, raised.value.record) == (str(path), "line 2")
    skips = SkipLog("skip")
    assert [e.id for e in read_slurp(path, modality="text", skips=skips)] == ["9054", "962", "6744"]
    assert skips.total == 1


def test_a_massive_line_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "fr-FR.jsonl"
    path.write_bytes((MASSIVE_DATA / "fr-FR.jsonl").read_bytes().replace("à".encode(), "à".encode("latin-1")))
    with pytest.raises(DataError, match="not UTF-8") as raised:
        read_massive(path, "test")
    assert raised.value.file == str(path) and raised.value.record.startswith("line ")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_a_utf16_or_utf32_file_is_refused_as_not_utf8_whatever_the_policy(tmp_path, encoding):
    path = tmp_path / "devel.jsonl"
    path.write_text(SLURP_TEST.read_text(encoding="utf-8"), encoding=encoding)
    with pytest.raises(DataError, match="not UTF-8: .*UTF-16 or UTF-32") as raised:
        read_slurp(path, modality="text", skips=SkipLog("skip"))
    assert (raised.value.file, raised.value.record) == (str(path), None)


def test_a_predictions_line_that_is_not_utf8_is_a_wrong_prediction_for_its_key(tmp_path):
    """The scorer reads predictions through jsonl_records too: the line counts as malformed."""
    from slu_lightning.evaluation.scoring import read_predictions

    good = {"file": "audio-1.flac", "scenario": "alarm", "action": "set", "entities": []}
    path = tmp_path / "predictions.jsonl"
    bad = json.dumps({"file": "audio-2.flac", "scenario": "café"}, ensure_ascii=False).encode("latin-1")
    path.write_bytes(json.dumps(good).encode() + b"\n" + bad + b"\n")
    lines, warnings, malformed = read_predictions(path)
    assert [(line.key, line.malformed) for line in lines] == [("audio-1.flac", False), ("audio-2.flac", True)]
    assert malformed == 1 and warnings[0].startswith("line 2: not UTF-8 (byte 0xe9")


# --- MASSIVE -----------------------------------------------------------------------------------


def test_massive_reads_one_partition_with_locale_ids_and_split_intents():
    examples = read_massive(MASSIVE_DATA / "fr-FR.jsonl", "test")
    assert [e.id for e in examples] == ["fr-FR/1", "fr-FR/12"]
    alarm = examples[1]
    assert (alarm.locale, alarm.source, alarm.audio) == ("fr-FR", "massive", None)
    assert (alarm.scenario, alarm.action) == ("alarm", "set")
    assert alarm.text == "mets une alarme à 5:30 demain"
    assert alarm.entities == (Entity("time", "5:30"), Entity("date", "demain"))


def test_an_entity_is_found_in_its_utterance_whatever_the_spacing_and_case():
    row = {
        "id": "7",
        "utt": "Wake me at 5:30 Tomorrow's",
        "annot_utt": "wake me at [time : 5 :30] [date : tomorrow]'s",
    }
    (time, date) = massive_example(row, "en-US", "alarm_set").entities
    assert (time.filler, date.filler) == ("5 :30", "tomorrow")


def test_massive_folder_plus_locale_and_underscored_actions():
    (train,) = read_massive(MASSIVE_DATA, "train", locale="fr-FR")
    assert (train.id, train.scenario, train.action, train.entities) == ("fr-FR/2", "audio", "volume_mute", ())
    (dev,) = read_massive(MASSIVE_DATA, "dev", locale="fr-FR")
    assert dev.entities == (Entity("house_place", "cuisine"),)


def test_massive_errors_list_what_exists():
    with pytest.raises(DataError, match=re.escape("available locales: ['fr-FR', 'it-IT']")):
        read_massive(MASSIVE_DATA, "test", locale="xx-XX")
    with pytest.raises(ValueError, match="pass locale"):
        read_massive(MASSIVE_DATA, "test")
    with pytest.raises(ValueError, match=re.escape("['train', 'dev', 'test']")):
        read_massive(MASSIVE_DATA / "fr-FR.jsonl", "validation")
    with pytest.raises(DataError, match=re.escape("row is locale 'fr-FR', expected 'it-IT'")):
        read_massive(MASSIVE_DATA / "fr-FR.jsonl", "test", locale="it-IT")


def test_a_massive_partition_of_another_name_is_named_not_silently_left_out(tmp_path):
    rows = [json.loads(line) for line in (MASSIVE_DATA / "fr-FR.jsonl").read_text().splitlines()]
    dev = next(index for index, row in enumerate(rows) if row["partition"] == "dev")
    rows[dev]["partition"] = "validation"
    path = write_lines(tmp_path / "fr-FR.jsonl", rows)
    with pytest.raises(DataError, match=re.escape("partition 'validation' is not one of")) as raised:
        read_massive(path, "dev")
    assert raised.value.record == f"line {dev + 1}"
    skips = SkipLog("skip")
    assert read_massive(path, "dev", skips=skips) == [] and skips.total == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"annot_utt": "mets une alarme à [time : 5:30 demain"}, "unbalanced '['"),
        ({"annot_utt": "mets une alarme à [time 5:30] demain"}, "no ' : '"),
        ({"intent": "alarmset"}, "not of the form scenario_action"),
        ({"intent": "iot_hue_lightoff"}, "does not start with scenario 'alarm'"),
        ({"utt": ""}, "'utt' must be a non-empty string"),
        ({"utt": "quelque chose de tout autre"}, "annot_utt's entity '5:30' is not in utt"),
    ],
)
def test_massive_bad_row_names_file_and_line_or_is_counted(tmp_path, change, message):
    rows = [json.loads(line) for line in (MASSIVE_DATA / "fr-FR.jsonl").read_text().splitlines()]
    rows[3] |= change
    path = write_lines(tmp_path / "fr-FR.jsonl", rows)
    with pytest.raises(DataError, match=re.escape(message)) as raised:
        read_massive(path, "test")
    assert (raised.value.file, raised.value.record) == (str(path), "line 4")
    skips = SkipLog("skip")
    assert [e.id for e in read_massive(path, "test", skips=skips)] == ["fr-FR/1"]
    assert skips.total == 1


# --- Speech-MASSIVE ----------------------------------------------------------------------------

SPEECH_MASSIVE_FEATURES = Features(
    {
        "id": Value("string"),
        "locale": Value("string"),
        "partition": Value("string"),
        "scenario": ClassLabel(names=["alarm", "iot"]),
        "scenario_str": Value("string"),
        "intent_str": Value("string"),
        "utt": Value("string"),
        "annot_utt": Value("string"),
        "tokens": Sequence(Value("string")),
        "labels": Sequence(Value("string")),
        "audio": {"bytes": Value("binary"), "path": Value("string")},
        "path": Value("string"),
        "is_transcript_reported": Value("bool"),
        "is_validated": Value("bool"),
        "speaker_id": Value("string"),
        "speaker_sex": Value("string"),
        "speaker_age": Value("string"),
    }
)


def speech_massive_table(rows: list[dict]) -> Dataset:
    """A table with Speech-MASSIVE's columns and a real ``Audio`` feature.

    Built with a plain struct and cast: encoding through ``Audio`` needs torchcodec, which fails here.
    """
    columns = {name: [row[name] for row in rows] for name in SPEECH_MASSIVE_FEATURES}
    table = Dataset.from_dict(columns, features=SPEECH_MASSIVE_FEATURES)
    return table.cast_column("audio", Audio(sampling_rate=16000))


def sm_row(locale: str, id: str, intent: str, utt: str, annot: str, audio: bytes | None, path: str) -> dict:
    scenario = intent.split("_")[0]
    return {
        "id": id,
        "locale": locale,
        "partition": "dev",
        "scenario": scenario,
        "scenario_str": scenario,
        "intent_str": intent,
        "utt": utt,
        "annot_utt": annot,
        "tokens": utt.split(),
        "labels": ["Other"] * len(utt.split()),
        "audio": {"bytes": audio, "path": path},
        "path": path,
        "is_transcript_reported": False,
        "is_validated": True,
        "speaker_id": "5f3c",
        "speaker_sex": "Female",
        "speaker_age": "40",
    }


CLIP_A, CLIP_B, CLIP_DE = clip(0.25), clip(0.5, "FLAC"), clip(0.3)
FR_ROWS = [
    sm_row(
        "fr-FR",
        "12",
        "alarm_set",
        "mets une alarme à 5:30 demain",
        "mets une alarme à [time : 5:30] [date : demain]",
        CLIP_A,
        "12.wav",
    ),
    sm_row(
        "fr-FR",
        "5",
        "iot_hue_lightoff",
        "éteins les lumières de la cuisine",
        "éteins les lumières de la [house_place : cuisine]",
        CLIP_B,
        "5.flac",
    ),
]
DE_ROW = sm_row(
    "de-DE",
    "12",
    "alarm_set",
    "stell einen wecker auf 5:30",
    "stell einen wecker auf [time : 5:30]",
    CLIP_DE,
    "12.wav",
)


@pytest.fixture(scope="module")
def speech_massive_dirs(tmp_path_factory) -> dict[str, Path]:
    """The same rows in the hub parquet layout and in three save_to_disk layouts."""
    root = tmp_path_factory.mktemp("speech_massive")
    hub = root / "hub"
    for index, row in enumerate(FR_ROWS):  # two shards, as large splits are on the hub
        speech_massive_table([row]).to_parquet(
            str(hub / "fr-FR" / f"validation-{index:05d}-of-00002.parquet")
        )
    speech_massive_table(FR_ROWS[:1]).to_parquet(str(hub / "fr-FR" / "train_115-00000-of-00001.parquet"))
    speech_massive_table([DE_ROW]).to_parquet(str(hub / "de-DE" / "validation-00000-of-00001.parquet"))
    DatasetDict({"validation": speech_massive_table(FR_ROWS)}).save_to_disk(
        str(root / "per_locale" / "fr-FR")
    )
    DatasetDict({"validation": speech_massive_table(FR_ROWS)}).save_to_disk(str(root / "one_locale"))
    DatasetDict({"validation": speech_massive_table([DE_ROW, *FR_ROWS])}).save_to_disk(str(root / "all"))
    return {
        "hub": hub,
        "per_locale": root / "per_locale",
        "one_locale": root / "one_locale",
        "all": root / "all",
    }


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    """Keep load_dataset's parquet cache out of the user's home."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")


@pytest.mark.parametrize("layout", ["hub", "per_locale", "one_locale", "all"])
def test_speech_massive_layouts_give_the_same_speech_examples(speech_massive_dirs, layout):
    examples = read_speech_massive(speech_massive_dirs[layout], "fr-FR", "validation")
    assert [e.id for e in examples] == ["fr-FR/12", "fr-FR/5"]
    alarm, lights = examples
    assert (alarm.locale, alarm.source, alarm.utterance_id) == ("fr-FR", "speech-massive", "fr-FR/12")
    assert (alarm.scenario, alarm.action) == ("alarm", "set")
    assert (lights.scenario, lights.action) == ("iot", "hue_lightoff")
    assert alarm.entities == (Entity("time", "5:30"), Entity("date", "demain"))
    assert alarm.meta == {"speaker_id": "5f3c", "is_validated": "True", "is_transcript_reported": "False"}
    assert (alarm.audio.encoded(), lights.audio.encoded()) == (CLIP_A, CLIP_B)
    samples, rate = sf.read(io.BytesIO(lights.audio.encoded()))
    assert (len(samples), rate) == (8000, 16000)


def test_a_bad_clip_held_in_a_parquet_shard_is_named_by_the_shard_its_path_and_its_record(tmp_path):
    folder = tmp_path / "fr-FR"
    rows = [FR_ROWS[0] | {"audio": {"bytes": b"RIFF not a wave file", "path": "12.wav"}}]
    speech_massive_table(rows).to_parquet(str(folder / "validation-00000-of-00001.parquet"))
    (example,) = read_speech_massive(tmp_path, "fr-FR", "validation")
    in_a_worker = pickle.loads(pickle.dumps(example))  # what a loader worker is handed
    for clip in (example, in_a_worker):
        with pytest.raises(DataError) as error:
            load_audio(clip.audio, record=clip.id)
        assert str(error.value).startswith(
            f"file {folder / 'validation-*.parquet'}, audio 12.wav (20 bytes in memory), record fr-FR/12: "
            "unreadable, corrupt or unsupported audio"
        )


def test_speech_massive_clips_stay_in_the_table_until_decoded(tmp_path):
    """Examples of a split pickle (to loader workers) without its audio, which stays memory-mapped:
    held bytes would cost the whole split in every process (about 3.6 GB for fr-FR train)."""
    clips = [clip(2.0), clip(2.5, "FLAC"), clip(3.0)]
    rows = [FR_ROWS[0] | {"id": str(n), "audio": {"bytes": a, "path": "x.wav"}} for n, a in enumerate(clips)]
    speech_massive_table(rows).to_parquet(str(tmp_path / "fr-FR" / "validation-00000-of-00001.parquet"))
    examples = read_speech_massive(tmp_path, "fr-FR", "validation")
    in_a_worker = pickle.loads(pickle.dumps(examples))
    assert len(pickle.dumps(examples)) < sum(map(len, clips)) / 4
    for example, in_worker, audio in zip(examples, in_a_worker, clips, strict=True):
        assert not isinstance(example.audio, bytes)
        assert in_worker.audio == example.audio and in_worker.audio.encoded() == audio
        assert torch.equal(load_audio(in_worker.audio), load_audio(audio))
    assert checked_seconds(examples[1].audio) == pytest.approx(2.5)


def test_an_example_s_annotations_resolve_with_a_stored_clip():
    """Tools that read signatures and dataclass fields (``typing.get_type_hints``) must resolve
    ``SLUExample.audio``, which names ``StoredClip``."""
    assert StoredClip in typing.get_args(typing.get_type_hints(SLUExample)["audio"])


def test_speech_massive_text_modality_and_other_locale(speech_massive_dirs):
    text = read_speech_massive(speech_massive_dirs["hub"], "fr-FR", "validation", modality="text")
    assert [(e.id, e.audio) for e in text] == [("fr-FR/12", None), ("fr-FR/5", None)]
    (german,) = read_speech_massive(speech_massive_dirs["all"], "de-DE", "validation")
    assert (german.id, german.text) == ("de-DE/12", "stell einen wecker auf 5:30")
    assert german.audio.encoded() == CLIP_DE
    assert [e.id for e in read_speech_massive(speech_massive_dirs["hub"], "fr-FR", "train_115")] == [
        "fr-FR/12"
    ]


def test_speech_massive_row_without_bytes_points_to_its_file(tmp_path):
    folder = tmp_path / "fr-FR"
    (folder / "clips").mkdir(parents=True)
    (folder / "clips" / "12.wav").write_bytes(CLIP_A)
    rows = [row | {"audio": {"bytes": None, "path": f"clips/{row['path']}"}} for row in FR_ROWS]
    columns = {name: [row[name] for row in rows] for name in SPEECH_MASSIVE_FEATURES}
    # save_to_disk embeds the files of an Audio column; a plain {bytes, path} column keeps paths only.
    paths_only = Dataset.from_dict(columns, features=SPEECH_MASSIVE_FEATURES)
    DatasetDict({"test": paths_only}).save_to_disk(str(folder))
    skips = SkipLog("skip")
    (example,) = read_speech_massive(tmp_path, "fr-FR", "test", skips=skips)
    assert example.audio == str(folder / "clips" / "12.wav")
    assert skips.counts == {
        f"audio has no bytes and its file {str(folder / 'clips' / '5.flac')!r} does not exist": 1
    }


def test_speech_massive_text_is_read_without_the_audio(tmp_path):
    """A text-only run neither loads the recordings nor loses the transcript of a bad one."""
    rows = [row | {"audio": {"bytes": None, "path": f"missing/{row['path']}"}} for row in FR_ROWS]
    columns = {name: [row[name] for row in rows] for name in SPEECH_MASSIVE_FEATURES}
    table = Dataset.from_dict(columns, features=SPEECH_MASSIVE_FEATURES)
    DatasetDict({"test": table}).save_to_disk(str(tmp_path / "fr-FR"))
    corpus = SpeechMassiveCorpus(str(tmp_path), train_locales=["fr-FR"])
    assert [e.id for e in corpus.text("test", SkipLog())] == ["fr-FR/12", "fr-FR/5"]
    with pytest.raises(DataError, match="audio has no bytes"):
        corpus.speech("test", SkipLog())


def test_massive_text_beside_speech_massive_counts_each_shared_utterance_once(speech_massive_dirs, caplog):
    """MASSIVE fr-FR's dev row 5 is Speech-MASSIVE's validation row 5: one example, not two."""
    speech = SpeechMassiveCorpus(str(speech_massive_dirs["hub"]), train_locales=["fr-FR"])
    massive = MassiveTextCorpus(str(FIXTURES / "massive" / "data"), ["fr-FR"])
    assert "fr-FR/5" in {e.id for e in massive.text("dev", SkipLog())}
    with caplog.at_level("INFO", logger="slu_lightning.data.corpora"):
        text = CombinedCorpus([speech, massive]).text("dev", SkipLog())
    ids = [e.id for e in text]
    assert ids.count("fr-FR/5") == 1 and len(ids) == len(set(ids))
    assert set(ids) == {e.id for e in speech.text("dev", SkipLog())} | {
        e.id for e in massive.text("dev", SkipLog())
    }
    assert "dev text: 1 ids an earlier part gave are kept once (e.g. 'fr-FR/5')" in caplog.text
    assert "other labels" not in caplog.text


def test_speech_massive_for_evaluation_only_reads_no_training_split(speech_massive_dirs):
    """``train_locales: []`` beside a training corpus: no French training data slips in."""
    evaluation_only = SpeechMassiveCorpus(
        str(speech_massive_dirs["hub"]), train_locales=[], eval_locales=["fr-FR"]
    )
    assert evaluation_only.speech("train", SkipLog()) == [] and evaluation_only.text("dev", SkipLog())


def test_a_repeated_id_with_other_labels_is_warned_about(tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(FIXTURES / "massive" / "data", data)
    relabelled = tmp_path / "relabelled"
    relabelled.mkdir()
    rows = [json.loads(line) for line in (data / "fr-FR.jsonl").read_text(encoding="utf-8").splitlines()]
    rows[0]["intent"] = "alarm_query"
    (relabelled / "fr-FR.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    parts = [MassiveTextCorpus(str(data), ["fr-FR"]), MassiveTextCorpus(str(relabelled), ["fr-FR"])]
    with caplog.at_level("INFO", logger="slu_lightning.data.corpora"):
        kept = {e.id: e for e in CombinedCorpus(parts).text("test", SkipLog())}
    assert kept["fr-FR/1"].action == "set"
    assert "test text: 1 repeated ids carry other labels in a later part than in the first" in caplog.text


def test_speech_massive_errors_list_what_exists(speech_massive_dirs, tmp_path):
    hub = speech_massive_dirs["hub"]
    with pytest.raises(ValueError, match=re.escape("'ar-SA', 'de-DE'")):
        read_speech_massive(hub, "it-IT", "validation")
    with pytest.raises(ValueError, match=re.escape("['train', 'train_115', 'validation', 'test']")):
        read_speech_massive(hub, "fr-FR", "dev")
    with pytest.raises(ValueError, match="full train split exists only for"):
        read_speech_massive(hub, "es-ES", "train")
    with pytest.raises(DataError, match=re.escape("locales found: ['de-DE', 'fr-FR']")):
        read_speech_massive(hub, "es-ES", "validation")
    with pytest.raises(
        DataError, match=re.escape("splits found: ['train_115', 'validation']; the test split")
    ):
        read_speech_massive(hub, "fr-FR", "test")  # ... is released apart: pass its folder as test_path
    with pytest.raises(DataError, match=re.escape("available splits: ['validation']")):
        read_speech_massive(speech_massive_dirs["per_locale"], "fr-FR", "test")
    with pytest.raises(DataError, match=re.escape("locales in this table: ['fr-FR']")):
        read_speech_massive(speech_massive_dirs["one_locale"], "de-DE", "validation")
    table = speech_massive_table(FR_ROWS).remove_columns("intent_str")
    DatasetDict({"validation": table}).save_to_disk(str(tmp_path / "fr-FR"))
    with pytest.raises(DataError, match=re.escape("missing columns ['intent_str']")):
        read_speech_massive(tmp_path, "fr-FR", "validation")


def test_speech_massive_bad_row_names_file_and_row_or_is_counted(tmp_path):
    bad = FR_ROWS[1] | {"annot_utt": "éteins les lumières de la [house_place cuisine]"}
    DatasetDict({"validation": speech_massive_table([FR_ROWS[0], bad])}).save_to_disk(str(tmp_path / "fr-FR"))
    with pytest.raises(DataError, match="no ' : '") as raised:
        read_speech_massive(tmp_path, "fr-FR", "validation")
    assert (raised.value.file, raised.value.record) == (str(tmp_path / "fr-FR"), "row 1 (id 5)")
    skips = SkipLog("skip")
    assert [e.id for e in read_speech_massive(tmp_path, "fr-FR", "validation", skips=skips)] == ["fr-FR/12"]
    assert skips.total == 1


# --- ITALIC ------------------------------------------------------------------------------------

ITALIC_FEATURES = Features(
    {
        "id": Value("int32"),
        "age": Value("int32"),
        "gender": Value("string"),
        "region": Value("string"),
        "nationality": Value("string"),
        "lisp": Value("string"),
        "education": Value("string"),
        "speaker": Value("int32"),
        "environment": Value("string"),
        "device": Value("string"),
        "is_native": Value("bool"),
        "intent": Value("string"),
        "utt": Value("string"),
        "audio": {"bytes": Value("binary"), "path": Value("string")},
    }
)


def italic_row(id: int, intent: str, utt: str, audio: bytes) -> dict:
    return {
        "id": id,
        "age": 31,
        "gender": "female",
        "region": "Piemonte",
        "nationality": "Italiana",
        "lisp": "",
        "education": "Master",
        "speaker": 17,
        "environment": "silent",
        "device": "phone",
        "is_native": True,
        "intent": intent,
        "utt": utt,
        "audio": {"bytes": audio, "path": f"{id}.wav"},
    }


def italic_table(rows: list[dict]) -> Dataset:
    columns = {name: [row[name] for row in rows] for name in ITALIC_FEATURES}
    return Dataset.from_dict(columns, features=ITALIC_FEATURES).cast_column(
        "audio", Audio(sampling_rate=16000)
    )


@pytest.fixture(scope="module")
def italic_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("italic") / "massive"
    DatasetDict(
        {
            "train": italic_table([italic_row(2, "audio_volume_mute", "silenzio", CLIP_A)]),
            "validation": italic_table(
                [
                    italic_row(12, "alarm_set", "metti una sveglia alle 5:30 domani", CLIP_A),
                    italic_row(5, "iot_hue_lightoff", "spegni le luci della cucina", CLIP_B),
                ]
            ),
            "test": italic_table(
                [
                    italic_row(1, "alarm_set", "svegliami alle cinque di mattina questa settimana", CLIP_B),
                    italic_row(999, "alarm_set", "svegliami domani", CLIP_A),
                ]
            ),
        }
    ).save_to_disk(str(folder))
    return folder


def test_italic_takes_entities_from_massive_it_by_id(italic_dir):
    alarm, lights = read_italic(italic_dir, "validation", massive_it=MASSIVE_DATA / "it-IT.jsonl")
    assert (alarm.id, alarm.locale, alarm.source) == ("it-IT/12", "it-IT", "italic")
    assert (alarm.scenario, alarm.action) == ("alarm", "set")
    assert alarm.entities == (Entity("time", "5:30"), Entity("date", "domani"))
    assert lights.entities == (Entity("house_place", "cucina"),)
    assert (alarm.audio.encoded(), lights.audio.encoded()) == (CLIP_A, CLIP_B)
    assert alarm.meta == {"speaker": "17", "environment": "silent", "device": "phone"}
    (text,) = read_italic(italic_dir, "train", massive_it=MASSIVE_DATA, modality="text")
    assert (text.id, text.action, text.entities, text.audio) == ("it-IT/2", "volume_mute", (), None)


def test_italic_row_without_massive_match_is_an_error_or_counted(italic_dir):
    with pytest.raises(DataError, match="id 999 has no MASSIVE it-IT row") as raised:
        read_italic(italic_dir, "test", massive_it=MASSIVE_DATA / "it-IT.jsonl")
    assert (raised.value.file, raised.value.record) == (str(italic_dir), "row 1 (id 999)")
    skips = SkipLog("skip")
    (example,) = read_italic(italic_dir, "test", massive_it=MASSIVE_DATA / "it-IT.jsonl", skips=skips)
    assert example.entities == (Entity("time", "cinque di mattina"), Entity("date", "questa settimana"))
    assert skips.total == 1


def test_italic_errors_name_the_problem(italic_dir, tmp_path):
    with pytest.raises(ValueError, match=re.escape("['train', 'validation', 'test']")):
        read_italic(italic_dir, "dev", massive_it=MASSIVE_DATA)
    with pytest.raises(DataError, match="no dataset_dict.json"):
        read_italic(tmp_path, "test", massive_it=MASSIVE_DATA)
    shutil.copy(MASSIVE_DATA / "fr-FR.jsonl", tmp_path / "fr-FR.jsonl")
    with pytest.raises(DataError, match=re.escape("no MASSIVE locale 'it-IT'; available locales: ['fr-FR']")):
        read_italic(italic_dir, "test", massive_it=tmp_path)


# --- every reader's gold scores 1.0 against itself through the project's scoring code -----------


def perfect_scores(examples) -> dict[str, float]:
    from slu_lightning.evaluation.counts import count_rows, summarize
    from slu_lightning.task import ParseStatus, Prediction

    assert examples and any(e.entities for e in examples)
    predictions = [Prediction(e.scenario, e.action, e.entities, ParseStatus.VALID) for e in examples]
    return summarize(count_rows(examples, predictions))


def readers_output(speech_massive_dirs, italic_dir, toy_corpus, tmp_path):
    from slu_lightning.data.readers import read_manifest

    yield "slurp-text", read_slurp(SLURP_TEST, modality="text")
    yield "slurp-speech", read_slurp(SLURP_TEST, tmp_path, modality="speech")
    yield (
        "massive",
        read_massive(MASSIVE_DATA, "test", locale="fr-FR")
        + read_massive(MASSIVE_DATA, "train", locale="it-IT"),
    )
    yield "speech-massive", read_speech_massive(speech_massive_dirs["hub"], "fr-FR", "validation")
    yield "italic", read_italic(italic_dir, "validation", massive_it=MASSIVE_DATA / "it-IT.jsonl")
    yield "manifest", read_manifest(toy_corpus / "train.jsonl")


def test_gold_of_every_reader_scores_exactly_one_against_itself(
    speech_massive_dirs, italic_dir, toy_corpus, tmp_path
):
    for name, examples in readers_output(speech_massive_dirs, italic_dir, toy_corpus, tmp_path):
        scores = perfect_scores(examples)
        for metric in (
            "scenario_acc",
            "action_acc",
            "intent_acc",
            "exact_match",
            "entity_f1",
            "word_f1",
            "char_f1",
            "slu_f1",
        ):
            assert scores[metric] == 1.0, (name, metric)
        assert scores["invalid_rate"] == 0.0, name
