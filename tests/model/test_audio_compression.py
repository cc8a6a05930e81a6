import logging

import pytest
import torch

from slu_lightning.model.audio_compression import (
    ctc_compress,
    heard_through_ctc,
    place_compressed,
    warn_unless_ctc_backbone,
)
from slu_lightning.model.backbone import resolve_backbone
from slu_lightning.model.module import GenerationSettings, SLUModule
from tests.model.test_module import EXAMPLES, batch_of

BLANK = 0


def unit_table() -> torch.Tensor:
    """Four orthogonal token embeddings, so each frame's best CTC label is the row it copies."""
    return torch.eye(4, 6)


def test_runs_of_one_label_are_averaged_and_blank_frames_dropped():
    table = unit_table()
    labels = [BLANK, 1, 1, BLANK, 2, 2, 2, 1, BLANK]
    scale = torch.arange(1, len(labels) + 1, dtype=torch.float32).unsqueeze(-1)
    clip = table[labels] * scale  # (frames, hidden): frame i is label i's embedding times i + 1
    first, second = ctc_compress([clip, clip[4:]], table, BLANK)  # the second: labels 2, 2, 2, 1, blank
    torch.testing.assert_close(first, torch.stack([table[1] * 2.5, table[2] * 6.0, table[1] * 8.0]))
    torch.testing.assert_close(second, torch.stack([table[2] * 6.0, table[1] * 8.0]))


def test_the_posterior_mode_gives_a_sure_run_its_token_embedding_and_an_unsure_one_a_mix():
    table = unit_table()
    labels = [BLANK, 1, 1, BLANK, 2, 2, 2, 1, BLANK]
    clip = table[labels] * 3.0  # the posterior depends on direction only
    torch.testing.assert_close(
        ctc_compress([clip], table, BLANK, posterior=True)[0], table[[1, 2, 1]], atol=1e-7, rtol=0
    )
    between = (table[1] + table[2]).unsqueeze(0)  # equally close to tokens 1 and 2, far from 3
    mix = ctc_compress([between], table, BLANK, posterior=True)[0][0]
    assert mix[1] == pytest.approx(mix[2]) and 0.49 < mix[1] < 0.5 and mix[0] == 0 and 0 < mix[3] < 1e-5


def test_a_clip_heard_as_all_blank_keeps_its_mean():
    table = unit_table()
    clip = table[[BLANK, BLANK, BLANK]] * torch.tensor([[1.0], [2.0], [6.0]])
    heard, blank = ctc_compress([table[[1, 1]], clip], table, BLANK)
    torch.testing.assert_close(heard, table[[1]])
    torch.testing.assert_close(blank, table[[BLANK]] * 3.0)


def test_unused_audio_slots_are_masked_and_skipped_by_position_ids():
    audio = 7
    ids = torch.tensor([[0, 5, audio, audio, audio, 6], [5, 5, 5, 5, 6, 6]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    embeds = torch.zeros(2, 6, 3)
    clip = torch.ones(2, 3)
    out, new_mask, positions = place_compressed(embeds, ids, mask, [clip], audio)
    assert new_mask.tolist() == [[0, 1, 1, 1, 0, 1], [1, 1, 1, 1, 1, 1]]
    assert positions.tolist() == [[0, 0, 1, 2, 2, 3], [0, 1, 2, 3, 4, 5]]
    assert out[0, 2:4].eq(1).all() and out[0, 4].eq(0).all() and out[1].eq(0).all()
    with pytest.raises(ValueError, match="2 rows with audio tokens but 1"):
        place_compressed(embeds, ids.clone().fill_(audio), mask, [clip], audio)


@pytest.fixture(scope="module", params=["ctc", "ctc_posterior"])
def module(request):
    torch.manual_seed(0)
    module = SLUModule(
        backbone="tiny-test",
        finetuning="full",
        train_audio_encoder=True,
        audio_compression=request.param,
        generation=GenerationSettings(num_beams=1, max_new_tokens=8),
    )
    module.configure_model()
    return module.eval()


def exact_length_prompt(module, row_ids: torch.Tensor, row_mask: torch.Tensor, k: int) -> torch.Tensor:
    """The row's unpadded prompt with exactly ``k`` audio tokens."""
    ids = row_ids[row_mask.bool()]
    slots = torch.nonzero(ids == module.hf.config.audio_token_id).flatten()
    keep = torch.ones_like(ids, dtype=torch.bool)
    keep[slots[k:]] = False
    return ids[keep]


def test_a_compressed_prompt_is_read_as_if_it_held_that_many_audio_tokens(module):
    batch = batch_of(module, EXAMPLES, with_labels=False, with_prompts=True)  # 1 text, 2 speech rows
    ids, mask = batch["prompt_ids"], batch["prompt_attention_mask"]
    with torch.no_grad():
        embeds, new_mask, positions = module.embed(ids, mask, batch)
        lm = module.hf.model.language_model
        batched = lm(inputs_embeds=embeds, attention_mask=new_mask, position_ids=positions).last_hidden_state
    answers = module.generate_texts(batch)
    audio_id = module.hf.config.audio_token_id
    for row in range(len(ids)):
        kept = int((new_mask[row].bool() & (ids[row] == audio_id)).sum())
        if (ids[row] == audio_id).any():
            assert 0 < kept < int((ids[row] == audio_id).sum())  # compression left slots unused
        exact = exact_length_prompt(module, ids[row], mask[row], kept)
        single = {key: batch[key] for key in ("is_speech",)}
        single["prompt_ids"], single["prompt_attention_mask"] = exact[None], torch.ones_like(exact)[None]
        if kept:
            clip = batch["is_speech"].nonzero().flatten().tolist().index(row)
            for key in ("input_features", "feature_attention_mask"):
                single[key] = batch[key][clip : clip + 1]
        with torch.no_grad():
            alone, _, _ = module.embed(exact[None], torch.ones_like(exact)[None], single)
            reference = lm(inputs_embeds=alone).last_hidden_state
        torch.testing.assert_close(batched[row, -1], reference[0, -1], atol=1e-5, rtol=1e-4)
        assert answers[row] == module.generate_texts(single)[0]


def test_gradients_reach_the_audio_encoder_through_the_compressed_vectors(module):
    module.train()
    batch = batch_of(module, EXAMPLES)
    module.zero_grad()
    sums, counts = module.example_losses(batch)
    (sums.sum() / counts.sum()).backward()
    grad = module.hf.model.audio_tower.conv1.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    module.eval()


def test_ctc_compression_warns_on_a_backbone_never_trained_with_ctc(tiny_backbone, caplog):
    assert heard_through_ctc(resolve_backbone("tiny-heard"))
    assert not heard_through_ctc(tiny_backbone)
    with caplog.at_level(logging.WARNING):
        warn_unless_ctc_backbone(tiny_backbone)
        warn_unless_ctc_backbone(resolve_backbone("tiny-heard"))
    assert [str(tiny_backbone) in r.getMessage() for r in caplog.records] == [True]
