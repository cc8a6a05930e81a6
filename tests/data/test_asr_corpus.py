import json
import os
import re
import subprocess
import sys
import time
import unicodedata
from collections import defaultdict
from pathlib import Path

import pytest
import soundfile

from slu_lightning.data.asr_corpus import (
    ACTION,
    KINDS,
    MAX_WORDS,
    MIN_WORDS,
    SCENARIO,
    SIZES,
    SOURCE,
    SPLITS,
    default_asr_dir,
    everyday_vocabulary,
    make_asr_corpus,
    normalise,
    plan_asr_corpus,
    slu_pattern,
)
from slu_lightning.data.demo_corpus import default_demo_dir, make_demo_corpus
from slu_lightning.data.demo_lexicon import LOCALES, TEMPLATES, SlotSampler, render
from slu_lightning.data.partition import extra_pretrain_voices, partition
from slu_lightning.data.readers.manifest import read_manifest
from slu_lightning.pretrain.coverage import uncovered_words, vocabulary


@pytest.fixture(scope="module")
def tiny() -> Path:
    """The full tiny ASR corpus (6 locales), built once in the test cache, which other tests share."""
    return make_asr_corpus(default_asr_dir("tiny", 0), size="tiny", seed=0)


@pytest.fixture(scope="module")
def examples(tiny):
    return {split: read_manifest(tiny / f"{split}.jsonl") for split in SPLITS}


@pytest.fixture(scope="module")
def slu_demo() -> Path:
    return make_demo_corpus(default_demo_dir("tiny", 0), size="tiny", seed=0)


@pytest.fixture(scope="module")
def slu_texts(slu_demo) -> set[str]:
    """Every sentence of the tiny demo corpus (all splits, all locales)."""
    demo = slu_demo
    return {e.text for split in ("train", "dev", "test") for e in read_manifest(demo / f"{split}.jsonl")}


def test_counts_rows_and_summary(tiny, examples):
    summary = json.loads((tiny / "corpus.json").read_text())
    for split in SPLITS:
        counts = defaultdict(int)
        for example in examples[split]:
            counts[example.locale] += 1
            assert (example.scenario, example.action, example.entities) == (SCENARIO, ACTION, ())
            assert example.source == SOURCE
            assert set(example.meta) == {"voice", "rate", "pitch", "kind"}
        assert dict(counts) == {locale: SIZES["tiny"][split] for locale in LOCALES}
        assert summary["counts"][split] == dict(counts)
    assert summary["hours"] > 0 and summary["config_key"] and summary["config"]["size"] == "tiny"
    ids = [e.id for split in SPLITS for e in examples[split]]
    assert len(ids) == len(set(ids))


def test_audio_is_readable_16k_mono(tiny, examples):
    for split in SPLITS:
        for example in examples[split]:
            path = Path(example.audio)
            assert path.is_relative_to(tiny / "audio" / split)
            audio, rate = soundfile.read(path)
            assert rate == 16_000 and audio.ndim == 1 and len(audio) > 0.5 * rate


def test_voices_come_from_the_partition(examples):
    shares = partition(seed=0)
    for split, use in (("train", "pretrain"), ("heldout", "heldout")):
        for example in examples[split]:
            share = shares[example.locale][use]
            assert example.meta["voice"] in share.voices
            assert share.rate[0] <= int(example.meta["rate"]) <= share.rate[1]
            assert share.pitch[0] <= int(example.meta["pitch"]) <= share.pitch[1]
    train_voices = {e.meta["voice"] for e in examples["train"]}
    heldout_voices = {e.meta["voice"] for e in examples["heldout"]}
    assert not train_voices & heldout_voices


def test_sentences_are_spoken_words_of_every_kind(examples):
    for split in SPLITS:
        for locale in LOCALES:
            rows = [e for e in examples[split] if e.locale == locale]
            assert {e.meta["kind"] for e in rows} == set(KINDS), (split, locale)
        for example in examples[split]:
            text = example.text
            assert text == text.lower() and not re.search(r"[\d\[\]{}.,;:!?()&/]", text), text
            assert MIN_WORDS <= len(text.split()) <= MAX_WORDS, text
    texts = [e.text for split in SPLITS for e in examples[split]]
    assert len(texts) == len(set(texts))  # no repeats, and no heldout sentence seen in train


def test_no_slu_phrasing(examples, slu_texts):
    texts = [e.text for split in SPLITS for e in examples[split]]
    for slu in slu_texts:  # the demo corpus's renderings of SLU templates
        pattern = re.compile(rf"(?<!\S){re.escape(slu)}(?!\S)")
        assert not any(pattern.search(text) for text in texts), slu
    # the guard used while generating matches every rendering of every SLU template
    for locale in LOCALES:
        sampler = SlotSampler(locale, seed=5)
        for templates in TEMPLATES[locale].values():
            for template in templates:
                assert slu_pattern(locale).search(f"one two {render(template, sampler)[0]} three")


def test_planning_is_deterministic_and_covers_small(tmp_path):
    first = plan_asr_corpus(tmp_path, size="small", seed=0, locales=["de-DE"])
    assert first == plan_asr_corpus(tmp_path, size="small", seed=0, locales=["de-DE"])
    assert first != plan_asr_corpus(tmp_path, size="small", seed=1, locales=["de-DE"])
    assert {split: len(rows) for split, rows in first.items()} == SIZES["small"]
    kinds = defaultdict(int)
    for example in first["train"]:
        kinds[example.meta["kind"]] += 1
    assert kinds == {"words": 600, "chunks": 450, "template": 450}
    words = {word for example in first["train"] for word in example.text.split()}
    assert len(words) > 2000  # lexically varied


def test_sentences_do_not_depend_on_the_hash_seed(tmp_path):
    """Faker's it_IT city list comes from a set: its order changes with PYTHONHASHSEED."""
    script = (
        "import json, sys; from slu_lightning.data.asr_corpus import plan_asr_corpus; "
        "plans = [plan_asr_corpus(sys.argv[1], size='tiny'), "
        "plan_asr_corpus(sys.argv[1], size='small', locales=['it-IT'])]; "
        "print(json.dumps([[e.text for split in p.values() for e in split] for p in plans]))"
    )
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        ).stdout
        for hash_seed in ("1", "2")
    ]
    assert outputs[0] == outputs[1]


def test_same_seed_same_bytes_and_locales_are_independent(tiny, tmp_path):
    again = make_asr_corpus(tmp_path / "again", size="tiny", seed=0)
    for split in SPLITS:
        assert (again / f"{split}.jsonl").read_bytes() == (tiny / f"{split}.jsonl").read_bytes()
    assert json.loads((again / "corpus.json").read_text()) == json.loads((tiny / "corpus.json").read_text())
    alone = make_asr_corpus(tmp_path / "it", size="tiny", seed=0, locales=["it-IT"])
    for split in SPLITS:
        lines = [line for line in (tiny / f"{split}.jsonl").read_text().splitlines() if '"it-IT"' in line]
        assert (alone / f"{split}.jsonl").read_text().splitlines() == lines
    first = json.loads(lines[0])["audio"]
    assert (alone / first).read_bytes() == (tiny / first).read_bytes()


def test_second_call_is_cached_and_staging_is_cleaned(tiny):
    manifest = tiny / "train.jsonl"
    mtime = manifest.stat().st_mtime_ns
    started = time.perf_counter()
    assert make_asr_corpus(tiny, size="tiny", seed=0) == tiny
    assert time.perf_counter() - started < 1.0
    assert manifest.stat().st_mtime_ns == mtime
    assert not [p for p in tiny.parent.iterdir() if p.name.endswith(".partial")]


def test_refuses_foreign_folder_and_bad_arguments(tmp_path, slu_demo):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        make_asr_corpus(tmp_path, size="tiny")
    with pytest.raises(FileExistsError):  # a demo corpus is not an outdated ASR corpus
        make_asr_corpus(slu_demo, size="tiny")
    with pytest.raises(ValueError):
        make_asr_corpus(tmp_path / "x", size="huge")
    with pytest.raises(ValueError):
        make_asr_corpus(tmp_path / "x", size="tiny", locales=["xx-XX"])


def test_a_locale_named_twice_or_unknown_is_refused_by_the_build_and_the_plan(tmp_path):
    """Twice the same locale would plan each of its clips twice, under one id and one audio path."""
    for make in (make_asr_corpus, plan_asr_corpus):
        with pytest.raises(ValueError, match=r"locales \['de-DE'\] are named more than once"):
            make(tmp_path / "x", size="tiny", locales=["de-DE", "de-DE"])
        with pytest.raises(ValueError, match="unknown locales"):
            make(tmp_path / "x", size="tiny", locales=["xx-XX"])
    assert not (tmp_path / "x").exists()


def test_default_dir_is_next_to_the_demo_corpus():
    assert default_asr_dir("small", 3).parent == default_demo_dir("small", 3).parent
    assert default_asr_dir("small", 3).name == "asr-small-seed3"
    assert default_asr_dir("small", 3, everyday_words=500).name == "asr-small-seed3-everyday500"
    assert default_asr_dir("small", 3, 500, extra_voices=8).name == "asr-small-seed3-everyday500-voices8"


def test_everyday_words_are_the_most_frequent_spoken_words():
    words = everyday_vocabulary("fr-FR", 300)
    assert words[:3] == ["de", "la", "le"]  # most frequent first
    assert "à" in words and "l" not in words and "d" not in words  # clitics split off "l'homme" dropped
    assert not [word for word in words if re.search(r"[\d°]", word)]
    assert 250 < len(words) < 300 and len(set(words)) == len(words)


def test_everyday_words_cover_the_common_words_of_requests(tmp_path, slu_demo):
    test = [e for e in read_manifest(slu_demo / "test.jsonl") if e.locale == "pt-PT"]
    plain = plan_asr_corpus(tmp_path, size="small", locales=["pt-PT"])
    everyday = plan_asr_corpus(tmp_path, size="small", locales=["pt-PT"], everyday_words=5000)
    missing = {
        name: uncovered_words(test, vocabulary(plan["train"]))["all"]["uncovered"]
        for name, plan in (("plain", plain), ("everyday", everyday))
    }
    assert missing["everyday"] < 0.6 * missing["plain"], missing
    texts = [e.text for split in SPLITS for e in everyday[split]]
    assert not any(slu_pattern("pt-PT").search(text) for text in texts)  # still no SLU phrasing
    assert [e.text for e in everyday["train"]] != [e.text for e in plain["train"]]


def test_everyday_words_are_part_of_the_corpus_key(tiny, tmp_path):
    corpus = make_asr_corpus(tmp_path / "e", size="tiny", locales=["en-US"], everyday_words=500)
    config = json.loads((corpus / "corpus.json").read_text())["config"]
    assert config["everyday_words"] == 500 and "wordfreq" in config["versions"]
    plain = json.loads((tiny / "corpus.json").read_text())["config"]
    assert "everyday_words" not in plain and "wordfreq" not in plain["versions"]  # old keys still valid


def test_extra_voices_are_variants_no_split_uses_and_grow_by_prefix():
    shares = partition(0)
    for locale in LOCALES:
        taken = {voice for share in shares[locale].values() for voice in share.voices}
        extra = extra_pretrain_voices(locale, 48)
        assert len(set(extra)) == 48 and not taken & set(extra)
        assert set(extra_pretrain_voices(locale, 10)) < set(extra)  # more voices add, never swap
    assert extra_pretrain_voices("fr-FR", 10) != extra_pretrain_voices("fr-FR", 10, seed=1)
    with pytest.raises(ValueError, match="extra voices"):
        extra_pretrain_voices("fr-FR", 1000)


def test_extra_voices_speak_the_same_train_sentences_and_leave_heldout_alone(tmp_path):
    plain = plan_asr_corpus(tmp_path, size="small", locales=["it-IT"])
    voiced = plan_asr_corpus(tmp_path, size="small", locales=["it-IT"], extra_voices=20)
    assert [e.text for e in voiced["train"]] == [e.text for e in plain["train"]]
    assert voiced["heldout"] == plain["heldout"]
    allowed = set(partition(0)["it-IT"]["pretrain"].voices) | set(extra_pretrain_voices("it-IT", 20))
    spoken = {e.meta["voice"] for e in voiced["train"]}
    assert spoken <= allowed and len(spoken) > 20  # 24 voices over 1,500 clips: nearly all speak


def test_extra_voices_are_part_of_the_corpus_key(tiny, tmp_path):
    corpus = make_asr_corpus(tmp_path / "v", size="tiny", locales=["en-US"], extra_voices=6)
    config = json.loads((corpus / "corpus.json").read_text())["config"]
    assert config["extra_voices"] == 6
    assert "extra_voices" not in json.loads((tiny / "corpus.json").read_text())["config"]
    extra = set(extra_pretrain_voices("en-US", 6))
    assert {e.meta["voice"] for e in read_manifest(corpus / "train.jsonl")} & extra


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Wake me up at 5 AM, please!", ["wake", "me", "up", "at", "5", "am", "please"]),  # digits count
        ("L’homme a-t-il _vu_ 7h30 ?", ["l'homme", "a-t-il", "vu", "7h30"]),
        ("İstanbul'a git", ["istanbul'a", "git"]),  # not "i" + U+0307 + "stanbul'a"
        ("मुझे सात बजे जगाओ", ["मुझे", "सात", "बजे", "जगाओ"]),  # vowel signs stay in their word
        ("ตั้งนาฬิกาปลุก", ["ตั้งนาฬิกาปลุก"]),
        ("شُكْرًا لَكَ", ["شُكْرًا", "لَكَ"]),
    ],
)
def test_normalise_keeps_digits_and_combining_marks_in_words(text, words):
    assert normalise(text).split() == words


def test_normalise_makes_an_nfd_copy_equal_its_original():
    text = "Il a été élevé à Orléans, İzmir'de"
    expected = "il a été élevé à orléans izmir'de"
    assert normalise(unicodedata.normalize("NFD", text)) == normalise(text) == expected
