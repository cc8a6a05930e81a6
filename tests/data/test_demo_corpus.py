import json
import os
import re
import time
from collections import defaultdict
from importlib.metadata import version
from pathlib import Path

import pytest
import soundfile

from slu_lightning.data import demo_corpus
from slu_lightning.data.demo_corpus import SIZES, SPLITS, default_demo_dir, make_demo_corpus
from slu_lightning.data.demo_lexicon import (
    ENTITY_TYPES,
    INTENTS,
    LOCALES,
    TEMPLATES,
    SlotSampler,
    render,
    split_intent,
    template_slots,
)
from slu_lightning.data.partition import FEMALE_VARIANTS, MALE_VARIANTS, USES, partition, voice_name
from slu_lightning.data.readers.manifest import read_manifest


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """The full tiny corpus (6 locales), built once."""
    return make_demo_corpus(tmp_path_factory.mktemp("demo") / "tiny", size="tiny", seed=0)


@pytest.fixture(scope="module")
def examples(tiny):
    return {split: read_manifest(tiny / f"{split}.jsonl") for split in SPLITS}


def test_label_inventory_meets_the_minimums():
    scenarios = {split_intent(intent)[0] for intent in INTENTS}
    assert len(scenarios) >= 8 and len(INTENTS) >= 25 and len(ENTITY_TYPES) >= 10 and len(LOCALES) >= 6
    used = {
        slot
        for locale in LOCALES
        for templates in TEMPLATES[locale].values()
        for t in templates
        for slot in template_slots(t)
    }
    assert used == set(ENTITY_TYPES)  # every entity type occurs, and no template uses an unknown one
    for locale in LOCALES:
        assert set(TEMPLATES[locale]) == set(INTENTS)
        fewest = min(len(templates) for templates in TEMPLATES[locale].values())
        assert fewest >= (8 if locale == "en-US" else 6)


def test_rendered_slots_are_spoken_words_and_fillers_are_substrings():
    for locale in LOCALES:
        sampler = SlotSampler(locale, seed=3)
        for templates in TEMPLATES[locale].values():
            for template in templates:
                text, entities = render(template, sampler)
                assert text == text.lower() and not re.search(r"[\d\[\]{}.,;:!?]", text), (locale, text)
                assert [e.type for e in entities] == list(template_slots(template))
                assert all(e.filler and e.filler in text for e in entities), (locale, text, entities)


def test_partition_is_disjoint_covers_everything_and_depends_on_the_seed():
    shares = partition(seed=0)
    for locale in LOCALES:
        by_use = shares[locale]
        voices = [set(by_use[use].voices) for use in USES]
        language = by_use["train"].voices[0].partition("+")[0]
        assert sum(map(len, voices)) == len(set().union(*voices))  # disjoint
        assert set().union(*voices) == {voice_name(language, v) for v in MALE_VARIANTS + FEMALE_VARIANTS}
        assert by_use["pretrain"].templates == {}
        for intent in INTENTS:
            train, heldout = set(by_use["train"].templates[intent]), set(by_use["heldout"].templates[intent])
            assert train and heldout and not train & heldout
            assert train | heldout == set(range(len(TEMPLATES[locale][intent])))
    assert partition(seed=0) == shares
    assert partition(seed=1) != shares
    assert partition(seed=0, locales=["it-IT"])["it-IT"] == shares["it-IT"]


def test_counts_per_split_and_locale(tiny, examples):
    summary = json.loads((tiny / "corpus.json").read_text())
    for split in SPLITS:
        for locale in LOCALES:
            n = sum(e.locale == locale for e in examples[split])
            assert n == SIZES["tiny"][split] == summary["counts"][split][locale]
    assert summary["config"]["seed"] == 0 and summary["config"]["size"] == "tiny"


def test_corpus_json_records_the_audio_libraries_outside_the_config_key(tiny):
    """FLAC bytes embed libsndfile's libFLAC version and the resampler is torch's: say which made them."""
    summary = json.loads((tiny / "corpus.json").read_text())
    assert summary["audio_versions"] == {
        "espeakng-loader": version("espeakng-loader"),
        "soundfile": version("soundfile"),
        "torch": version("torch"),
        "torchaudio": version("torchaudio"),
        "libsndfile": soundfile.__libsndfile_version__,
    }
    assert "audio_versions" not in summary["config"]  # recorded, not keyed: an upgrade keeps the corpus
    first_clip = next((tiny / "audio" / "train").glob("*.flac")).read_bytes()
    assert b"libFLAC" in first_clip  # the encoder's vendor string, which is why libsndfile is recorded


def test_every_intent_in_every_split_of_every_locale(examples):
    for split in SPLITS:
        for locale in LOCALES:
            assert {e.intent for e in examples[split] if e.locale == locale} == set(INTENTS), (split, locale)


def test_fillers_are_substrings_of_the_text(examples):
    for example in (e for split in SPLITS for e in examples[split]):
        assert example.source == "demo"
        assert all(entity.filler in example.text for entity in example.entities), example
        assert not re.search(r"\d", example.text)


def test_dev_and_test_voices_and_templates_never_occur_in_train(examples):
    seen: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for split in SPLITS:
        for example in examples[split]:
            seen[split]["voices"].add(example.meta["voice"])
            seen[split]["templates"].add(f"{example.locale}/{example.meta['template']}")
    for heldout in ("dev", "test"):
        for kind in ("voices", "templates"):
            assert seen[heldout][kind] and not seen[heldout][kind] & seen["train"][kind], (heldout, kind)


def test_audio_files_are_16khz_mono_and_add_up_to_the_reported_hours(tiny, examples):
    total_seconds = 0.0
    for example in (e for split in SPLITS for e in examples[split]):
        path = Path(example.audio)
        assert path.parent == tiny / "audio" / path.parent.name and path.suffix == ".flac"
        info = soundfile.info(path)
        assert info.samplerate == 16_000 and info.channels == 1
        assert 0.3 < info.duration < 10.0
        total_seconds += info.duration
    summary = json.loads((tiny / "corpus.json").read_text())
    assert summary["hours"] == pytest.approx(total_seconds / 3600, abs=1e-3)
    assert {meta for e in examples["train"] for meta in e.meta} == {"voice", "rate", "pitch", "template"}


def test_second_call_returns_at_once_without_rewriting(tiny):
    files = sorted(p for p in tiny.rglob("*") if p.is_file())
    mtimes = [p.stat().st_mtime_ns for p in files]
    started = time.perf_counter()
    assert make_demo_corpus(tiny, size="tiny", seed=0) == tiny
    assert time.perf_counter() - started < 1.0
    assert [p.stat().st_mtime_ns for p in files] == mtimes


def test_same_seed_gives_identical_files_whatever_the_locales_and_workers(tmp_path, examples):
    one = make_demo_corpus(tmp_path / "one", size="tiny", seed=0, locales=["pt-PT"], workers=1)
    two = make_demo_corpus(tmp_path / "two", size="tiny", seed=0, locales=["pt-PT"], workers=1)
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl", "corpus.json"):
        assert (one / name).read_bytes() == (two / name).read_bytes()
    # The Portuguese part of the six-locale corpus is the same too.
    alone = read_manifest(one / "dev.jsonl")
    within = [e for e in examples["dev"] if e.locale == "pt-PT"]
    for a, b in zip(alone, within, strict=True):
        assert (a.id, a.text, a.entities, a.meta) == (b.id, b.text, b.entities, b.meta)
        assert Path(a.audio).read_bytes() == Path(b.audio).read_bytes()
    other = make_demo_corpus(tmp_path / "other", size="tiny", seed=1, locales=["pt-PT"], workers=1)
    assert (other / "train.jsonl").read_bytes() != (one / "train.jsonl").read_bytes()


@pytest.mark.slow  # ~10 s: each spawned worker imports torch
def test_worker_processes_write_the_same_files(tmp_path):
    one = make_demo_corpus(tmp_path / "one", size="tiny", seed=0, locales=["es-ES"], workers=1)
    two = make_demo_corpus(tmp_path / "two", size="tiny", seed=0, locales=["es-ES"], workers=2)
    assert (one / "corpus.json").read_bytes() == (two / "corpus.json").read_bytes()  # holds the content hash


def test_interrupted_build_leaves_nothing_that_looks_finished(tmp_path, monkeypatch):
    calls = []

    def failing_synthesis(clip):
        calls.append(clip)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return 1.0

    monkeypatch.setattr(demo_corpus, "_speak_and_write", failing_synthesis)
    with pytest.raises(KeyboardInterrupt):
        make_demo_corpus(tmp_path / "corpus", size="tiny", locales=["en-US"], workers=1)
    assert [p.name for p in tmp_path.iterdir()] == [".corpus.lock"]  # no corpus, no staging folder


def test_refuses_to_replace_a_folder_that_is_not_a_demo_corpus(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a demo corpus"):
        make_demo_corpus(tmp_path / "mine", size="tiny")
    with pytest.raises(ValueError, match="unknown locales"):
        make_demo_corpus(tmp_path / "x", size="tiny", locales=["xx-XX"])


def test_a_locale_named_twice_is_refused_before_anything_is_planned(tmp_path):
    """Twice the same locale would plan each of its clips twice, under one id and one audio path."""
    with pytest.raises(ValueError, match=r"locales \['en-US'\] are named more than once"):
        make_demo_corpus(tmp_path / "x", size="tiny", locales=["en-US", "fr-FR", "en-US"])
    assert not (tmp_path / "x").exists()


def test_default_location_follows_the_cache_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("SLU_LIGHTNING_CACHE", str(tmp_path))
    assert default_demo_dir("small", 3) == tmp_path / "demo-small-seed3"
    monkeypatch.delenv("SLU_LIGHTNING_CACHE")
    assert default_demo_dir("tiny", 0) == Path.home() / ".cache" / "slu-lightning" / "demo-tiny-seed0"


def test_slot_values_do_not_depend_on_the_python_hash_seed():
    """Faker builds some value lists from sets; place names are drawn from a sorted copy instead."""
    import subprocess
    import sys

    code = (
        "from slu_lightning.data.demo_lexicon import SlotSampler; s = SlotSampler('it-IT', 3); "
        "print([s.sample('place_name') for _ in range(20)])"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_every_demo_config_decodes_long_enough_for_every_demo_answer(examples):
    """A budget below an answer's length cuts its JSON short, and the cut is scored invalid."""
    import yaml

    from slu_lightning.model.backbone import load_processor
    from slu_lightning.model.tiny import ensure_tiny_backbone
    from slu_lightning.task import END_OF_TURN, target_for

    tokenizer = load_processor(ensure_tiny_backbone("tiny")).tokenizer
    answers = [target_for(example) + END_OF_TURN for split in SPLITS for example in examples[split]]
    longest = max(len(tokenizer(answer, add_special_tokens=False)["input_ids"]) for answer in answers)
    configs = {
        path.name: yaml.safe_load(path.read_text())
        for path in Path(__file__).parents[2].glob("configs/demo/*.yaml")
    }
    budgets = {
        name: config["model"]["init_args"]["generation"]["max_new_tokens"]
        for name, config in configs.items()
        if "model" in config  # the sweep grid has none
    }
    assert budgets and longest > 64 and all(budget >= longest for budget in budgets.values()), (
        longest,
        budgets,
    )


def test_demo_texts_are_the_corpus_text_without_its_audio_at_any_size(examples):
    count = SIZES["tiny"]["train"]
    planned = demo_corpus.demo_texts("train", count, seed=0)
    assert [(e.id, e.text, e.intent) for e in planned] == [
        (e.id, e.text, e.intent) for e in examples["train"]
    ]
    assert all(example.audio is None for example in planned)
    longer = demo_corpus.demo_texts("train", 3 * count, seed=0, locales=["de-DE"])
    assert len(longer) == 3 * count and {e.locale for e in longer} == {"de-DE"}
    heldout = {
        e.meta["template"] for split in ("dev", "test") for e in examples[split] if e.locale == "de-DE"
    }
    assert not {e.meta["template"] for e in longer} & heldout  # more text, still only train templates
