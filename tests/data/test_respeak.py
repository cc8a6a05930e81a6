"""Test splits spoken again by voices outside the partition's family (``data/respeak.py``)."""

import shutil

import numpy as np
import pytest
import soundfile

from slu_lightning.data.corpora import DemoCorpus
from slu_lightning.data.demo_corpus import default_demo_dir, make_demo_corpus
from slu_lightning.data.errors import SkipLog
from slu_lightning.data.partition import extra_pretrain_voices, partition, unheard_voices
from slu_lightning.data.readers.manifest import read_manifest
from slu_lightning.data.respeak import make_unheard_test, unheard_test_dir


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("respeak") / "demo-tiny-seed0"
    shutil.copytree(make_demo_corpus(default_demo_dir("tiny", 0), size="tiny", seed=0), root)
    return root


def test_the_unheard_test_split_says_the_same_in_voices_no_split_uses(demo):
    unheard = make_unheard_test(demo)
    assert unheard == unheard_test_dir(demo) == demo.with_name("demo-tiny-seed0-test-unheard")
    before, after = read_manifest(demo / "test.jsonl"), read_manifest(unheard / "test.jsonl")
    assert [(e.id, e.text, e.scenario, e.action, e.entities) for e in after] == [
        (e.id, e.text, e.scenario, e.action, e.entities) for e in before
    ]
    family = {
        voice for shares in partition(0).values() for share in shares.values() for voice in share.voices
    }
    for old, new in zip(before, after, strict=True):
        assert (new.meta["rate"], new.meta["pitch"]) == (old.meta["rate"], old.meta["pitch"])
        assert new.meta["voice"] in unheard_voices(new.locale) and new.meta["voice"] not in family
        heard, spoken = soundfile.read(old.audio)[0], soundfile.read(new.audio)[0]
        assert spoken.size > 0.3 * 16000 and not np.array_equal(heard[: spoken.size], spoken[: heard.size])
    assert len({e.meta["voice"].split("+")[-1] for e in after}) > 20  # drawn per utterance


def test_a_second_call_returns_at_once_and_a_corpus_that_is_not_built_is_named(demo, tmp_path):
    manifest = unheard_test_dir(demo) / "test.jsonl"
    written = manifest.stat().st_mtime_ns
    assert make_unheard_test(demo) == manifest.parent and manifest.stat().st_mtime_ns == written
    with pytest.raises(FileNotFoundError, match="no finished demo corpus"):
        make_unheard_test(tmp_path / "nothing-here")


def test_a_demo_corpus_asked_for_unheard_test_voices_tests_on_them_and_trains_as_before(demo):
    usual, unheard = (
        DemoCorpus("tiny", root=str(demo)),
        DemoCorpus("tiny", root=str(demo), test_voices="unheard"),
    )
    unheard.prepare()
    for split in ("train", "dev"):
        assert unheard.speech(split, SkipLog()) == usual.speech(split, SkipLog())
    tested, usual_test = unheard.speech("test", SkipLog()), usual.speech("test", SkipLog())
    assert [e.id for e in tested] == [e.id for e in usual_test]
    assert all(a.meta["voice"] != b.meta["voice"] for a, b in zip(tested, usual_test, strict=True))
    assert unheard.text("test", SkipLog()) == usual.text("test", SkipLog())
    assert "test split in unheard voices" in unheard.describe()
    for example in tested:  # by default no voice tiny-heard-voices heard (--extra-voices 12, seed 0)
        assert example.meta["voice"] in unheard_voices(example.locale, 12)
        assert example.meta["voice"] not in extra_pretrain_voices(example.locale, 12)
    with pytest.raises(ValueError, match="test_voices"):
        DemoCorpus("tiny", test_voices="far")
