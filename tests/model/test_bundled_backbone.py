"""The committed stand-ins (``slu_lightning/backbones/``): small, documented, and hearing as well as
their model cards say, on fresh held-out samples."""

import json
import random

import pytest

from slu_lightning.data.asr_corpus import default_asr_dir, make_asr_corpus
from slu_lightning.data.demo_corpus import default_demo_dir, make_demo_corpus
from slu_lightning.data.readers.manifest import read_manifest
from slu_lightning.data.respeak import in_unheard_voices, speak
from slu_lightning.model.backbone import bundled_backbones, load_model, load_processor
from slu_lightning.pretrain.asr_eval import CARD_READOUTS, measure_error_rates
from slu_lightning.pretrain.data import heldout_sample
from slu_lightning.pretrain.module import TinyPretrainModule
from slu_lightning.pretrain.recipe import command_line, model_card

# The card's rates come from 240 clips per set; these samples are 36, 48 and 36 clips of the test-scale
# corpora (other sentences, the same kinds of voices). Over random 36-clip subsets of the card's 240
# clips, word error rates spread with a standard deviation of 0.03-0.06.
TOLERANCE = 0.12


@pytest.fixture(scope="module", params=sorted(bundled_backbones()))
def bundled(request):
    path = bundled_backbones()[request.param]
    return path, json.loads((path / "pretraining.json").read_text(encoding="utf-8"))


def test_both_stand_ins_are_bundled():
    assert {"tiny-heard", "tiny-heard-voices"} <= set(bundled_backbones())


def test_the_bundled_stand_in_is_small_loads_and_says_how_it_was_made(bundled):
    path, record = bundled
    assert sum(f.stat().st_size for f in path.iterdir()) < 20e6
    model, processor = load_model(path), load_processor(path)
    assert processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>") == model.config.audio_token_id
    card = (path / "README.md").read_text(encoding="utf-8")
    for command in [*(stage["command"] for stage in record["lineage"]), command_line(record["settings"])]:
        assert command in card
    assert f"steps: {record['steps_done']} of the {record['settings']['steps']} planned" in card
    assert card == model_card(record), "the committed card is not what pretrain-tiny writes for its record"


def test_the_bundled_stand_in_reaches_its_stated_error_rates_on_held_out_and_unheard_voices(
    bundled, tmp_path
):
    path, record = bundled
    asr = make_asr_corpus(default_asr_dir("tiny", 0), size="tiny", seed=0)
    demo = make_demo_corpus(default_demo_dir("tiny", 0), size="tiny", seed=0)
    heldout = heldout_sample(asr, 36, seed=0)
    unheard = in_unheard_voices(heldout, tmp_path, extra_voices=record["settings"].get("extra_voices", 0))
    speak(tmp_path, "unheard", unheard)
    samples = {
        "heldout": heldout,
        "slu-phrased": random.Random(0).sample(read_manifest(demo / "test.jsonl"), 48),
        "unheard-voices": unheard,
    }
    assert set(samples) == set(record["error_rates"])
    module = TinyPretrainModule(backbone=path.name)
    for name, examples in samples.items():
        measured, stated = measure_error_rates(module, examples), record["error_rates"][name]
        for readout in CARD_READOUTS:
            assert measured[readout]["wer"] <= stated[readout]["wer"] + TOLERANCE, (name, readout, measured)
            assert measured[readout]["cer"] <= stated[readout]["cer"] + TOLERANCE, (name, readout, measured)
