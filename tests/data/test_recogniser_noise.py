"""The character channel that makes transcripts read as the recogniser hears them."""

import random

import pytest

from slu_lightning.data.corpora import ManifestCorpus
from slu_lightning.data.errors import DataError, SkipLog
from slu_lightning.data.readers.manifest import write_manifest
from slu_lightning.data.recogniser_noise import CharChannel, RecogniserNoise, aligned_characters
from slu_lightning.data.records import SLUExample


def test_alignment_pairs_every_character_with_its_counterpart_or_a_gap():
    assert aligned_characters("cat", "cat") == [("c", "c"), ("a", "a"), ("t", "t")]
    assert aligned_characters("cat", "ct") == [("c", "c"), ("a", ""), ("t", "t")]
    assert aligned_characters("cat", "cart") == [("c", "c"), ("a", "a"), ("", "r"), ("t", "t")]
    assert aligned_characters("cat", "cut") == [("c", "c"), ("a", "u"), ("t", "t")]
    assert aligned_characters("", "ab") == [("", "a"), ("", "b")]


def test_the_channel_counts_what_the_recogniser_did_to_each_character():
    channel = CharChannel.estimate([("Turn on", "trn om"), ("on", "on!")])  # compared normalised
    assert channel.seen["n"] == 3 and channel.deleted["u"] == 1 and channel.replaced["n"]["m"] == 1
    assert channel.rates == {
        "deletion": pytest.approx(1 / 9),  # u of 9 reference characters (the space counts)
        "substitution": pytest.approx(1 / 9),  # n -> m
        "insertion": 0.0,  # "!" is not a word character: normalised away
    }


def test_corrupted_text_carries_the_estimated_error_rates():
    pairs = [("abcdefghij" * 3, "abcdefghij" * 2 + "xbcdefhij")]  # one substitution, one deletion in 30
    channel = CharChannel.estimate(pairs * 20, smoothing=0.0)
    rng = random.Random(0)
    text = "abcdefghij" * 3
    corrupted = [channel.corrupt(text, rng) for _ in range(2000)]  # standard errors below: 0.02
    assert sum(c.count("g") for c in corrupted) / 2000 == pytest.approx(2.0, abs=0.06)  # 1 in 3 deleted
    assert sum(c.count("x") for c in corrupted) / 2000 == pytest.approx(1.0, abs=0.06)  # 1 a in 3 -> x
    assert all(len(c) <= len(text) for c in corrupted)  # nothing was ever inserted
    assert {ch for c in corrupted for ch in c} <= set("abcdefghijx")  # a replaces into x only


def test_a_channel_without_errors_leaves_text_alone_and_corruption_follows_the_seed():
    clean = CharChannel.estimate([("wake me up", "wake me up")])
    assert clean.corrupt("Wake me up", random.Random(1)) == "wake me up"
    noisy = CharChannel.estimate([("wake me up", "wak mi upp")])
    first = [noisy.corrupt("wake me up at seven", random.Random(3)) for _ in range(2)]
    assert first[0] == first[1] and first[0] != "wake me up at seven"
    with pytest.raises(ValueError, match="no characters"):
        CharChannel.estimate([])


def test_the_uniform_channel_keeps_the_rates_and_forgets_the_confusions():
    channel = CharChannel.estimate([("abcdefghij" * 3, "abcdefghij" * 2 + "xbcdefhij")] * 20)
    flat = channel.uniform("abcdefghijkl")
    assert flat.rates == channel.rates and not flat.seen and not flat.replaced
    rng = random.Random(0)
    corrupted = "".join(flat.corrupt("abcdefghij" * 3, rng) for _ in range(2000))
    assert "x" not in corrupted and {"k", "l"} <= set(corrupted)  # replacements from the alphabet
    # each g is deleted or replaced at the overall rates (1/30 each); each other character, replaced
    # at 1/30, becomes a g 1 time in 11
    assert corrupted.count("g") / 2000 == pytest.approx(3 * (1 - 2 / 30) + 27 / 30 / 11, abs=0.06)


def test_the_lm_holdout_key_leaves_out_each_sentence_sharing_a_calibration_clips_value(tmp_path):
    def row(i: int, locale: str, template: str | None) -> SLUExample:
        meta = {"template": template} if template else {}
        return SLUExample(f"u{i}", locale, f"sentence {i}", "alarm", "set", meta=meta)

    rows = [row(0, "en-US", "A"), row(1, "en-US", "A"), row(2, "fr-FR", "A"), row(3, "en-US", "B")]
    write_manifest(tmp_path / "train.jsonl", rows)
    corpus = ManifestCorpus(*(str(tmp_path / "train.jsonl") for _ in range(3)))
    clips = rows[:1]
    by_sentence = RecogniserNoise(readout="rescored", domain_lm=True)
    assert by_sentence.domain_text(corpus, clips, SkipLog()) == ["sentence 1", "sentence 2", "sentence 3"]
    by_template = RecogniserNoise(readout="rescored", domain_lm=True, lm_holdout_key="template")
    assert by_template.domain_text(corpus, clips, SkipLog()) == ["sentence 2", "sentence 3"]
    write_manifest(tmp_path / "train.jsonl", [*rows, row(4, "en-US", None)])
    with pytest.raises(DataError, match="record u4: recogniser_noise.lm_holdout_key: no meta field"):
        by_template.domain_text(corpus, clips, SkipLog())
    with pytest.raises(ValueError, match="lm_holdout_key needs domain_lm"):
        RecogniserNoise(lm_holdout_key="template")


def test_each_read_out_and_language_model_hold_out_keeps_its_own_transcripts_file(monkeypatch, tmp_path):
    monkeypatch.setenv("SLU_LIGHTNING_CACHE", str(tmp_path))
    clips = [SLUExample("u0", "en-US", "wake me up", "alarm", "set")]
    settings = [
        RecogniserNoise(),
        RecogniserNoise(readout="rescored"),
        RecogniserNoise(readout="rescored", domain_lm=True),
        RecogniserNoise(readout="rescored", domain_lm=True, lm_holdout_key="template"),
        RecogniserNoise(readout="rescored", domain_lm=True, lm_holdout_key="scenario"),
    ]
    paths = [setting._path(clips) for setting in settings]
    assert len(set(paths)) == len(settings) and all(p.parent == tmp_path / "recognised" for p in paths)
    assert paths[3].name.startswith("tiny-heard-rescored-lm-notemplate-1clips-")
