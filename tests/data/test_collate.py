from dataclasses import replace

import numpy as np
import pytest
import torch

from slu_lightning.data.collate import IGNORE_INDEX, SLUCollator, SLUItem
from slu_lightning.data.errors import DataError
from slu_lightning.data.features import LogMelExtractor
from slu_lightning.data.records import Entity, SLUExample
from slu_lightning.model.backbone import load_processor
from slu_lightning.task import END_OF_TURN, PromptTemplate, target_for

TEXT = SLUExample("t1", "en-US", "play some jazz", "play", "music", (Entity("music_genre", "jazz"),))
SPEECH = SLUExample("s1", "en-US", "what is the weather", "weather", "query", (), audio="unused.flac")


@pytest.fixture(scope="module")
def processor(tiny_backbone):
    return load_processor(tiny_backbone)


def speech_item(samples: int) -> tuple[SLUItem, np.ndarray]:
    wave = np.random.default_rng(0).standard_normal(samples).astype(np.float32) * 0.1
    features, n_frames = LogMelExtractor()(torch.from_numpy(wave))
    return SLUItem(SPEECH, features, n_frames), wave


def test_loss_mask_trains_only_the_answer_and_its_end_token(processor):
    collate = SLUCollator(processor.tokenizer, PromptTemplate())
    item, _ = speech_item(23_456)
    batch = collate([SLUItem(TEXT), item])
    tokenizer = processor.tokenizer
    for row, example in enumerate([TEXT, SPEECH]):
        labels, ids = batch["labels"][row], batch["input_ids"][row]
        trained = labels != IGNORE_INDEX
        assert tokenizer.decode(ids[trained]) == target_for(example)
        assert tokenizer.decode(ids[trained][-1:]) == END_OF_TURN
        untrained = tokenizer.decode(ids[~trained & (batch["attention_mask"][row] == 1)])
        assert untrained.startswith("<|im_start|>system") and untrained.endswith("<|im_start|>assistant\n")
    audio_positions = batch["input_ids"] == tokenizer.convert_tokens_to_ids("<|AUDIO|>")
    assert (batch["labels"][audio_positions] == IGNORE_INDEX).all()
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()


def test_audio_prompt_matches_the_processors_expansion(processor):
    for samples in (8_000, 23_456, 47_999):
        item, wave = speech_item(samples)
        collate = SLUCollator(processor.tokenizer, PromptTemplate(), with_labels=False, with_prompts=True)
        ours = collate([item])["prompt_ids"][0].tolist()
        reference = processor(
            text=[PromptTemplate().render_prompt(None)],
            audio=[wave],
            sampling_rate=16000,
            return_tensors="pt",
        )["input_ids"][0].tolist()
        assert ours == reference


def test_a_clip_without_an_audio_token_is_named_not_collated(processor):
    """load_audio refuses such clips; a waveform that bypassed it must not reach CTC compression."""
    item, _ = speech_item(320)  # 20 ms at 16 kHz: 2 mel frames, no token after the encoder's pooling
    with pytest.raises(DataError, match="record s1: 2 mel frames give Qwen2-Audio no audio token"):
        SLUCollator(processor.tokenizer, PromptTemplate())([item])


def test_features_are_cut_to_the_longest_clip_not_30_seconds(processor):
    collate = SLUCollator(processor.tokenizer, PromptTemplate())
    short, _ = speech_item(16_000)
    long, _ = speech_item(40_000)
    batch = collate([short, SLUItem(TEXT), long])
    assert batch["input_features"].shape == (2, 128, long.features.shape[-1])
    assert batch["feature_attention_mask"].sum(dim=1).tolist() == [short.n_frames, long.n_frames]
    assert batch["is_speech"].tolist() == [True, False, True]


def test_generation_form_is_left_padded(processor):
    collate = SLUCollator(processor.tokenizer, PromptTemplate(), with_labels=False, with_prompts=True)
    batch = collate([SLUItem(TEXT), SLUItem(SPEECH.as_text())])
    mask = batch["prompt_attention_mask"]
    assert (mask[:, -1] == 1).all() and mask[:, 0].min() == 0
    assert "labels" not in batch


def test_a_labels_slot_is_filled_with_the_label_inventory(processor):
    from slu_lightning.task import label_inventory

    prompt = PromptTemplate(instruction="{input}\n{labels}\nAnswer with one line of JSON.")
    collate = SLUCollator(processor.tokenizer, prompt, with_labels=False, with_prompts=True)
    inventory = label_inventory([TEXT, SPEECH])
    assert inventory == "Scenarios: play, weather. Actions: music, query. Entity types: music_genre."
    collate.set_labels(inventory)
    item, _ = speech_item(16_000)
    for row in collate([SLUItem(TEXT), item])["prompt_ids"]:
        assert inventory in processor.tokenizer.decode(row)


def test_a_clip_that_failed_to_decode_keeps_its_row_with_no_target(processor):
    collate = SLUCollator(processor.tokenizer, PromptTemplate(), with_prompts=True)
    item, _ = speech_item(16_000)
    error = DataError("audio contains NaN or infinite samples", file="bad.wav", record="s1")
    batch = collate([SLUItem(TEXT), replace(item, error=error), item])
    trained = batch["labels"] != IGNORE_INDEX
    assert trained[0].any() and not trained[1].any() and trained[2].any()
    assert 1 in batch["skipped"] and 0 not in batch["skipped"] and batch["skipped"].errors() == [error]
    assert batch["input_features"].shape[0] == 2 and batch["prompt_ids"].shape[0] == 3  # shapes unchanged
