"""The voice probe: the same held-out sentences spoken by other eSpeak variants, scored per variant."""

from pathlib import Path

import numpy as np
import pytest

from benchmarks.voice_probe import drawn_mask, main, spoken_by
from slu_lightning.data.demo_lexicon import LOCALES, STYLES
from slu_lightning.data.partition import (
    FEMALE_VARIANTS,
    MALE_VARIANTS,
    extra_pretrain_voices,
    unused_variants,
)
from slu_lightning.data.records import SLUExample
from slu_lightning.data.tts import EspeakSynthesizer


def sentence(locale: str, index: int) -> SLUExample:
    meta = {"voice": STYLES[locale].espeak, "rate": "150", "pitch": "40", "kind": "template"}
    return SLUExample(f"{locale}-{index}", locale, "hello there", "s", "a", audio="x.flac", meta=meta)


def test_unused_variants_are_every_installed_variant_no_split_hands_out():
    unused = unused_variants()
    assert unused == sorted(unused) and len(unused) == 92
    assert not set(unused) & {*MALE_VARIANTS, *FEMALE_VARIANTS}
    assert {"m8", "f5", "klatt", "whisper"} <= set(unused) and "fast" not in unused


def test_the_fast_variant_is_the_default_voice_and_no_extra_voice_draws_it():
    """eSpeak's fast variant speaks as the default voice, which the partition hands out: drawn as
    an extra pretraining voice, it gave de-DE's pretraining the default voice (seed 0, 12 voices)."""
    speaker = EspeakSynthesizer()
    for rate in (150, 190):
        default = speaker.synthesize("guten morgen", "de", rate)
        assert np.array_equal(default, speaker.synthesize("guten morgen", "de+fast", rate))
    assert "de+fast" not in extra_pretrain_voices("de-DE", 12)
    assert "de+Gene2" in extra_pretrain_voices("de-DE", 12)  # the next variant of the same draw
    for locale in LOCALES:
        assert "fast" not in {voice.partition("+")[2] for voice in extra_pretrain_voices(locale, 92)}


def test_drawn_mask_marks_exactly_the_voices_extra_voices_draws_in_each_locale():
    sentences = [sentence(locale, i) for locale in LOCALES for i in range(2)]
    variants = unused_variants()
    mask = drawn_mask(variants, sentences, 12, seed=0)  # (variants, sentences)
    assert mask.shape == (len(variants), len(sentences)) and (mask.sum(0) == 12).all()
    for column, example in enumerate(sentences):
        marked = {f"{STYLES[example.locale].espeak}+{variants[row]}" for row in mask[:, column].nonzero()[0]}
        assert marked == set(extra_pretrain_voices(example.locale, 12))
    assert not drawn_mask(variants, sentences, 0, seed=0).any()


def test_spoken_by_keeps_sentence_rate_and_pitch_and_changes_only_the_voice(tmp_path):
    examples = [sentence("fr-FR", 0), sentence("de-DE", 1)]
    clips = spoken_by(examples, "Mr serious", "v007", tmp_path)
    assert [clip.voice for clip in clips] == ["fr+Mr serious", "de+Mr serious"]
    for clip, example in zip(clips, examples, strict=True):
        again = clip.example
        assert (again.id, again.text, clip.rate, clip.pitch) == (example.id, example.text, 150, 40)
        assert clip.path == tmp_path / "audio" / "v007" / f"{example.id}.flac" == Path(clip.example.audio)
        assert again.meta["voice"] == clip.voice and example.meta["voice"] != clip.voice


def test_the_probe_prints_a_row_per_voice_and_the_pooled_lines(capsys):
    main(["--backbone", "tiny-heard", "--variants", "m8", "fast", "--per-locale", "1", "--extra-voices", "4"])
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert {"held-out voices", "m8", "fast"} <= set(rows)
    for voice in ("held-out voices", "m8", "fast"):
        assert 0 <= float(rows[voice].split("|")[2]) <= 2
    assert "on 6 held-out template sentences" in out
    pooled = [line for line in out.splitlines() if line.startswith("| tiny-heard |")]
    assert pooled and pooled[0].split("|")[2].strip() == "every variant heard"


def test_an_unknown_variant_is_refused_before_anything_is_spoken(capsys):
    with pytest.raises(SystemExit):
        main(["--backbone", "tiny-heard", "--variants", "m99"])
    assert "unknown eSpeak variants ['m99']" in capsys.readouterr().err
