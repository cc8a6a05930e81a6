"""Speech synthesised for transcripts (the ``tts`` source): labels, audio, voices, determinism, cache."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import soundfile

from slu_lightning.cli import main
from slu_lightning.data.corpora import DemoCorpus, DemoTtsCorpus
from slu_lightning.data.demo_corpus import audio_versions
from slu_lightning.data.errors import DataError, SkipLog
from slu_lightning.data.partition import partition
from slu_lightning.data.readers.manifest import read_manifest, write_manifest
from slu_lightning.data.records import SLUExample
from slu_lightning.data.tts_augment import spelled_out, synthesise_manifest


@pytest.fixture(scope="module")
def demo() -> DemoCorpus:
    """The tiny demo corpus in the session cache, where ``DemoTtsCorpus`` looks for it."""
    corpus = DemoCorpus("tiny", 0)
    corpus.prepare()
    return corpus


@pytest.fixture(scope="module")
def few_rows(demo, tmp_path_factory) -> Path:
    """Two rows in each of three locales (one of them a text row), then a repeated transcript."""
    rows = read_manifest(demo.paths["train"])
    picked = [
        row for locale in ("en-US", "de-DE", "es-ES") for row in [r for r in rows if r.locale == locale][:2]
    ]
    picked[1] = picked[1].as_text()
    picked.append(replace(picked[0], id="again", utterance_id="again"))
    return write_manifest(tmp_path_factory.mktemp("few") / "train.jsonl", picked)


@pytest.fixture(scope="module")
def synthesised(few_rows, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tts") / "few"
    main(["synthesize", "--manifest", str(few_rows), "--out", str(out), "--workers", "1"])
    return out


def test_each_transcript_is_spoken_once_with_its_labels_as_16_khz_audio(few_rows, synthesised):
    source, spoken = read_manifest(few_rows)[:6], read_manifest(synthesised / "train.jsonl")
    assert len(spoken) == 6  # the repeated transcript is spoken once
    for row, clip in zip(source, spoken, strict=True):
        labels = ("locale", "text", "scenario", "action", "entities")
        assert [getattr(clip, key) for key in labels] == [getattr(row, key) for key in labels]
        assert clip.source == "tts" and clip.meta["utterance"] == row.utterance_id
        assert {"voice", "rate", "pitch"} <= set(clip.meta) and clip.id.startswith("tts-")
        info = soundfile.info(clip.audio)
        assert info.samplerate == 16_000 and info.channels == 1 and info.duration > 0.3
    summary = json.loads((synthesised / "corpus.json").read_text())
    assert summary["config"]["kind"] == "tts" and summary["hours"] > 0
    assert summary["counts"]["train"] == {"de-DE": 2, "en-US": 2, "es-ES": 2}


def test_synthesis_is_deterministic_cached_and_seeded(few_rows, synthesised, tmp_path):
    again = synthesise_manifest(few_rows, tmp_path / "again", workers=1)
    first, second = (json.loads((path / "corpus.json").read_text()) for path in (synthesised, again))
    assert first["content_sha256"] == second["content_sha256"]  # every audio and manifest byte
    assert (again / "train.jsonl").read_bytes() == (synthesised / "train.jsonl").read_bytes()
    stamp = (again / "corpus.json").stat().st_mtime_ns
    assert (
        synthesise_manifest(few_rows, again) == again and (again / "corpus.json").stat().st_mtime_ns == stamp
    )
    other = synthesise_manifest(few_rows, tmp_path / "seed1", seed=1, workers=1)
    assert json.loads((other / "corpus.json").read_text())["content_sha256"] != first["content_sha256"]


def test_demo_tts_speaks_every_train_transcript_with_voices_no_real_speech_has(demo):
    tts = DemoTtsCorpus("tiny", 0)
    tts.prepare()
    clips = tts.speech("train", SkipLog())
    train = demo.speech("train", SkipLog())
    assert {(c.locale, c.text) for c in clips} == {(e.locale, e.text) for e in train}
    assert tts.speech("test", SkipLog()) == []  # training data only
    shares = partition(0)
    real_voices = {
        e.meta["voice"] for split in ("train", "dev", "test") for e in demo.speech(split, SkipLog())
    }
    for clip in clips:
        pretrain = shares[clip.locale]["pretrain"]
        assert clip.meta["voice"] in pretrain.voices and clip.meta["voice"] not in real_voices
        assert pretrain.rate[0] <= int(clip.meta["rate"]) <= pretrain.rate[1]
        assert pretrain.pitch[0] <= int(clip.meta["pitch"]) <= pretrain.pitch[1]


def test_corpus_json_records_the_audio_libraries_that_made_the_clips(synthesised):
    assert json.loads((synthesised / "corpus.json").read_text())["audio_versions"] == audio_versions()


def test_unsupported_locales_heldout_voices_and_foreign_folders_are_refused(demo, few_rows, tmp_path):
    row = SLUExample(id="x", locale="ja-JP", text="arigatou", scenario="general", action="quirky")
    manifest = write_manifest(tmp_path / "ja.jsonl", [row])
    with pytest.raises(DataError, match="ja-JP"):
        synthesise_manifest(manifest, tmp_path / "ja")
    with pytest.raises(ValueError, match="heldout"):
        synthesise_manifest(few_rows, tmp_path / "held", voices="heldout")
    with pytest.raises(FileExistsError, match="not a TTS corpus"):
        synthesise_manifest(few_rows, demo.root)


def test_transcripts_a_latin_script_voice_would_not_say_as_written_are_counted_and_named(
    few_rows, tmp_path, caplog
):
    rows = read_manifest(few_rows)
    rows[2] = replace(rows[2], text=rows[2].text + " Москва")
    rows[4] = replace(rows[4], text=rows[4].text + " 🙂")
    manifest = write_manifest(tmp_path / "odd.jsonl", rows)
    with caplog.at_level("WARNING", logger="slu_lightning.data.tts_augment"):
        synthesise_manifest(manifest, tmp_path / "odd", workers=1)
    (warning,) = [record.getMessage() for record in caplog.records]
    assert warning.startswith(f"2 of 6 transcripts in {manifest} hold letters of another script or symbols")
    assert f"e.g. {rows[2].utterance_id}: {rows[2].text!r}" in warning
    assert spelled_out("Ça coûte 5 € à Zürich, n'est-ce pas?") == []  # accents, digits, currency


def test_a_transcript_the_voice_cannot_speak_stops_the_build_with_its_clip_named(few_rows, tmp_path):
    """A clip of near-silence labelled with the row's intent would teach the wrong thing quietly."""
    rows = read_manifest(few_rows)
    rows[3] = replace(rows[3], text="...", entities=())
    manifest = write_manifest(tmp_path / "dots.jsonl", rows)
    with pytest.raises(ValueError, match=r"clip tts-de-de-\w+ of split train: '...' gives no speech"):
        synthesise_manifest(manifest, tmp_path / "dots", workers=1)
    assert not (tmp_path / "dots").exists()
