"""The dynamic-length audio encoder against the stock 30 s padded path, on a real tiny Qwen2-Audio."""

import functools

import pytest
import torch
from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

from slu_lightning.model.audio_encoder import (
    CONV_MARGIN,
    PADDED_FRAMES,
    audio_token_count,
    encode_audio,
    padded_encode_audio,
    scatter_audio,
    trim_to_longest,
)

AUDIO_TOKEN_ID = 299  # last id of the 300-token vocabulary
PAD_VALUE = -0.75  # Whisper log-mel floor (max_log10 - 8 + 4) / 4 for a clip whose loudest bin is 1.0
EVEN_LONGEST = (130, 271, 400)  # 1.3 s, 2.71 s, 4.0 s at 100 frames/s: cut to 402 frames
ODD_LONGEST = (130, 271, 77)  # cut to 273 frames


@functools.cache
def tiny_model(attn_implementation: str) -> Qwen2AudioForConditionalGeneration:
    """A real Qwen2AudioForConditionalGeneration, 2 + 2 layers of width 64, seeded random weights, fp32.

    Cached, shared by the tests: a test that switches it to train mode switches it back.
    """
    torch.manual_seed(0)
    config = Qwen2AudioConfig(
        audio_config={
            "model_type": "qwen2_audio_encoder",
            "num_mel_bins": 128,
            "d_model": 64,
            "encoder_layers": 2,
            "encoder_attention_heads": 4,
            "encoder_ffn_dim": 128,
            "max_source_positions": 1500,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": 300,
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 128,
        },
        audio_token_id=AUDIO_TOKEN_ID,
    )
    model = Qwen2AudioForConditionalGeneration._from_config(config, attn_implementation=attn_implementation)
    return model.eval()


def padded_batch(lengths: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Random-ish log-mel features for clips of `lengths` frames, padded to 3000 with `PAD_VALUE`."""
    generator = torch.Generator().manual_seed(1)
    features = torch.full((len(lengths), 128, PADDED_FRAMES), PAD_VALUE)  # (n_clips, n_mels, 3000)
    mask = torch.zeros(len(lengths), PADDED_FRAMES, dtype=torch.long)  # (n_clips, 3000)
    for clip, length in enumerate(lengths):
        features[clip, :, :length] = 0.5 * torch.randn(128, length, generator=generator)
        mask[clip, :length] = 1
    return features, mask


@functools.cache
def padded_reference(attn_implementation: str, lengths: tuple[int, ...]) -> torch.Tensor:
    """Audio embeddings of the stock 3000-frame path (the slow part), computed once per model and batch."""
    with torch.no_grad():
        return padded_encode_audio(tiny_model(attn_implementation), *padded_batch(lengths))


@pytest.fixture(params=["sdpa", "eager"])
def model(request: pytest.FixtureRequest) -> Qwen2AudioForConditionalGeneration:
    return tiny_model(request.param)


@pytest.fixture
def sdpa_model() -> Qwen2AudioForConditionalGeneration:
    return tiny_model("sdpa")


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def test_audio_token_count_matches_processor_and_model() -> None:
    lengths = torch.arange(1, PADDED_FRAMES + 1)
    processor_formula = torch.tensor([(((n - 1) // 2 + 1) - 2) // 2 + 1 for n in lengths.tolist()])
    _, model_counts = tiny_model("sdpa").model.audio_tower._get_feat_extract_output_lengths(lengths)
    assert torch.equal(audio_token_count(lengths), processor_formula)
    assert torch.equal(audio_token_count(lengths), model_counts)
    # 30 s -> 750 tokens (one per 40 ms); 1.3 s -> 65 positions -> 32 tokens; 2.71 s -> 136 -> 68
    assert audio_token_count(torch.tensor([3000, 130, 271, 400])).tolist() == [750, 32, 68, 100]


@pytest.mark.parametrize(
    ("attn_implementation", "lengths"),
    [("sdpa", EVEN_LONGEST), ("sdpa", ODD_LONGEST), ("eager", ODD_LONGEST)],
    ids=["sdpa-longest-even", "sdpa-longest-odd", "eager-longest-odd"],
)
def test_dynamic_matches_padded_path(attn_implementation: str, lengths: tuple[int, ...]) -> None:
    model = tiny_model(attn_implementation)
    features, mask = padded_batch(lengths)
    cut_features, cut_mask = trim_to_longest(features, mask)
    with torch.no_grad():
        dynamic = encode_audio(model, cut_features, cut_mask)
    reference = padded_reference(attn_implementation, lengths)
    assert cut_features.shape[-1] == max(lengths) + CONV_MARGIN
    assert dynamic.shape == reference.shape == (int(audio_token_count(mask.sum(-1)).sum()), 64)
    assert max_diff(dynamic, reference) < 1e-5


def test_full_3000_frames_are_bit_identical(sdpa_model: Qwen2AudioForConditionalGeneration) -> None:
    with torch.no_grad():
        full_length = encode_audio(sdpa_model, *padded_batch(ODD_LONGEST))
    assert max_diff(full_length, padded_reference("sdpa", ODD_LONGEST)) == 0.0


@pytest.mark.parametrize("kept", [403, 404, 1001, 2999])
def test_any_cut_length_after_the_margin_matches(
    sdpa_model: Qwen2AudioForConditionalGeneration, kept: int
) -> None:
    features, mask = padded_batch(EVEN_LONGEST)
    with torch.no_grad():
        dynamic = encode_audio(sdpa_model, features[..., :kept], mask[:, :kept])
    assert max_diff(dynamic, padded_reference("sdpa", EVEN_LONGEST)) < 1e-5


def test_margin_is_one_frame_for_even_two_for_odd(sdpa_model: Qwen2AudioForConditionalGeneration) -> None:
    diffs = {}
    for name, lengths in [("even", EVEN_LONGEST), ("odd", ODD_LONGEST)]:
        features, mask = padded_batch(lengths)
        for margin in (0, 1, 2):
            with torch.no_grad():
                dynamic = encode_audio(sdpa_model, *trim_to_longest(features, mask, margin))
            diffs[name, margin] = max_diff(dynamic, padded_reference("sdpa", lengths))
    print("max abs diff vs padded path by (longest clip parity, margin):", diffs)
    assert diffs["even", 0] > 1e-2 and diffs["odd", 0] > 1e-2
    assert diffs["even", 1] < 1e-5 and diffs["odd", 1] > 1e-2
    assert diffs["even", 2] < 1e-5 and diffs["odd", 2] < 1e-5


def test_lm_logits_match_the_stock_forward(model: Qwen2AudioForConditionalGeneration) -> None:
    features, mask = padded_batch(EVEN_LONGEST)
    counts = audio_token_count(mask.sum(-1)).tolist()
    rows = [[5, 6, 7] + [AUDIO_TOKEN_ID] * n + [8, 9] for n in counts]
    width = max(len(row) for row in rows)
    input_ids = torch.tensor([row + [0] * (width - len(row)) for row in rows])  # (n_clips, seq), right-padded
    attention_mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    with torch.no_grad():
        stock = model(
            input_ids=input_ids,
            input_features=features,
            feature_attention_mask=mask,
            attention_mask=attention_mask,
        ).logits  # (n_clips, seq, vocab)
        audio = encode_audio(model, *trim_to_longest(features, mask))  # (total_audio_tokens, llm_hidden)
        audio_positions = (input_ids == AUDIO_TOKEN_ID).unsqueeze(-1)  # (n_clips, seq, 1)
        inputs_embeds = model.get_input_embeddings()(input_ids).masked_scatter(audio_positions, audio)
        dynamic = model(inputs_embeds=inputs_embeds, attention_mask=attention_mask).logits
    real = attention_mask.bool()
    assert max_diff(dynamic[real], stock[real]) < 1e-5


def test_gradients_reach_conv1_and_match_padded_path(sdpa_model: Qwen2AudioForConditionalGeneration) -> None:
    features, mask = padded_batch(EVEN_LONGEST)
    sdpa_model.train()
    conv1 = sdpa_model.model.audio_tower.conv1.weight
    n_tokens = int(audio_token_count(mask.sum(-1)).sum())
    weights = torch.randn(n_tokens, 64, generator=torch.Generator().manual_seed(2))  # a random linear loss
    paths = [(padded_encode_audio, (features, mask)), (encode_audio, trim_to_longest(features, mask))]
    grads = []
    for encode, inputs in paths:
        sdpa_model.zero_grad()
        (encode(sdpa_model, *inputs) * weights).sum().backward()
        grads.append(conv1.grad.clone())
    sdpa_model.eval()
    assert grads[1].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-4)


def test_autocast_bf16(sdpa_model: Qwen2AudioForConditionalGeneration) -> None:
    features, mask = padded_batch(EVEN_LONGEST)
    fp32 = padded_reference("sdpa", EVEN_LONGEST)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            padded = padded_encode_audio(sdpa_model, features, mask)
            dynamic = encode_audio(sdpa_model, *trim_to_longest(features, mask))
    assert dynamic.dtype == padded.dtype == torch.bfloat16
    assert max_diff(dynamic, padded) < 1e-2  # measured 1e-3: bf16 rounding in different matmul shapes
    assert max_diff(dynamic, fp32) < 2e-2  # measured 3e-3; embeddings have std 0.15


def test_rejects_more_frames_than_the_encoder_has_positions(
    sdpa_model: Qwen2AudioForConditionalGeneration,
) -> None:
    features = torch.zeros(1, 128, PADDED_FRAMES + 1)
    with pytest.raises(ValueError, match="3001 mel frames"):
        encode_audio(sdpa_model, features, torch.ones(1, PADDED_FRAMES + 1, dtype=torch.long))


def test_audio_vectors_fill_the_audio_slots_in_order_and_a_count_mismatch_is_named():
    ids = torch.tensor([[5, AUDIO_TOKEN_ID, AUDIO_TOKEN_ID, 6], [AUDIO_TOKEN_ID, 7, 8, 9]])
    embeds, audio = torch.zeros(2, 4, 3), torch.arange(9.0).reshape(3, 3)
    out = scatter_audio(embeds, ids, audio, AUDIO_TOKEN_ID)
    assert torch.equal(out[0, 1:3], audio[:2]) and torch.equal(out[1, 0], audio[2])
    assert out[ids != AUDIO_TOKEN_ID].abs().sum() == 0
    with pytest.raises(ValueError, match="3 audio tokens but 2 audio embeddings"):
        scatter_audio(embeds, ids, audio[:2], AUDIO_TOKEN_ID)
