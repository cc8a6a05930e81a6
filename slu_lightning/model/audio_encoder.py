"""Qwen2-Audio's audio encoder on features cut to the batch's longest clip, not padded to 30 s.

`Qwen2AudioEncoder.forward` in transformers raises unless every clip has exactly 3000 mel frames
(30 s), and SLU clips last 1-8 s, so most of the encoder's work goes to padding. That padding is
masked out of self-attention as keys, and the convolutions, absolute positions and average pooling
only look at neighbouring frames, so the outputs at a clip's real positions do not depend on frames
far after its end. `encode_audio` runs the model's own submodules (conv1, conv2, embed_positions,
encoder layers, avg_pooler, layer_norm, multi_modal_projector) on any length up to 3000 frames and
returns exactly what the stock model scatters into the `<|AUDIO|>` positions.

The margin: the last real encoder position of a clip with L real frames reads mel frames up to
`2 * ceil(L / 2)` through conv1 (kernel 3, padding 1) and conv2 (kernel 3, stride 2, padding 1):
one frame past the clip for even L, two for odd L. Cut exactly at L, those frames are the convs'
zero padding instead of the feature extractor's padding value (the log-mel floor), the last
position changes, and through attention so does every token of that clip. Keep `CONV_MARGIN` = 2
padding frames after the longest clip (shorter clips keep their real padding frames anyway).
Measured on the tests' tiny fp32 model (d_model 64, 2 layers, padding value -0.75, embeddings of
std 0.15), max abs difference of the audio embeddings against the padded path, longest clip of
400 (even) / 271 (odd) frames: margin 0: 6.0e-2 / 1.8e-1; margin 1: 2.1e-7 / 8.3e-2;
margin 2: 2.1e-7 / 0 (float rounding). At the full 3000 frames both paths are bit-identical.
"""

import torch
from torch import Tensor, nn
from transformers import Qwen2AudioForConditionalGeneration
from transformers.masking_utils import create_bidirectional_mask

PADDED_FRAMES = 3000  # 30 s of mel frames at a 10 ms hop: the only length the stock encoder accepts
CONV_MARGIN = 2  # padding frames the convs read after a clip's last real frame (2 for odd lengths)


def conv_output_length(feature_lengths: Tensor) -> Tensor:
    """Encoder positions after conv2 (kernel 3, stride 2, padding 1) for `feature_lengths` mel frames."""
    return (feature_lengths - 1) // 2 + 1


def audio_token_count(feature_lengths: Tensor) -> Tensor:
    """Number of `<|AUDIO|>` tokens (and audio embeddings) per clip.

    Same arithmetic as `Qwen2AudioProcessor` (`num_audio_tokens`) and
    `Qwen2AudioEncoder._get_feat_extract_output_lengths`: conv2 halves the frames, then the average
    pooler (kernel 2, stride 2) halves the positions again.

    Args:
        feature_lengths: Real mel frames per clip, `feature_attention_mask.sum(-1)`, shape (n_clips,).

    Returns:
        Tokens per clip, shape (n_clips,).
    """
    return (conv_output_length(feature_lengths) - 2) // 2 + 1


def trim_to_longest(
    input_features: Tensor, feature_attention_mask: Tensor, margin: int = CONV_MARGIN
) -> tuple[Tensor, Tensor]:
    """Cut padded features to the longest clip plus `margin` padding frames (at most their length).

    Args:
        input_features: Log-mel features, shape (n_clips, n_mels, frames).
        feature_attention_mask: 1 on real frames, 0 on padding, shape (n_clips, frames).
        margin: Padding frames kept after the longest clip; see the module docstring.

    Returns:
        The cut features (n_clips, n_mels, kept) and mask (n_clips, kept).
    """
    kept = min(int(feature_attention_mask.sum(-1).max()) + margin, input_features.shape[-1])
    return input_features[..., :kept], feature_attention_mask[:, :kept]


def _encoder_attention_mask(
    model: Qwen2AudioForConditionalGeneration, feature_lengths: Tensor, n_positions: int
) -> Tensor | None:
    """The mask `Qwen2AudioModel.forward` builds: keys past each clip's post-conv length are masked.

    `create_bidirectional_mask` shapes it for the configured attention implementation (an additive
    float mask for eager, a boolean one or None for sdpa); like the stock code it reads only the
    shape and dtype (that of the LLM's input embeddings) of a dummy tensor.
    """
    tower = model.model.audio_tower
    positions = torch.arange(n_positions, device=feature_lengths.device)  # (positions,)
    real_positions = positions < conv_output_length(feature_lengths)[:, None]  # (n_clips, positions)
    dtype = model.get_input_embeddings().weight.dtype
    dummy = torch.zeros((len(feature_lengths), n_positions, 1), dtype=dtype, device=feature_lengths.device)
    return create_bidirectional_mask(
        config=tower.config, inputs_embeds=dummy, attention_mask=real_positions.long()
    )


def _project_real_tokens(
    model: Qwen2AudioForConditionalGeneration, hidden: Tensor, feature_lengths: Tensor
) -> Tensor:
    """Project encoder outputs (n_clips, tokens, d_model) to the LLM width; keep each clip's real tokens.

    The tower's output is cast to the projector's dtype: under a bfloat16 base one of the two may
    train in float32, and without autocast (``precision: 32``) the matmul would refuse the mix."""
    projector = model.model.multi_modal_projector
    embeddings = projector(hidden.to(next(projector.parameters()).dtype))  # (n_clips, tokens, llm_hidden)
    tokens = torch.arange(embeddings.shape[1], device=embeddings.device)  # (tokens,)
    token_counts = audio_token_count(feature_lengths).to(embeddings.device)  # (n_clips,)
    real_tokens = tokens < token_counts[:, None]  # (n_clips, tokens)
    return embeddings[real_tokens]  # (total_audio_tokens, llm_hidden)


def encode_audio(
    model: Qwen2AudioForConditionalGeneration, input_features: Tensor, feature_attention_mask: Tensor
) -> Tensor:
    """Audio embeddings of the real positions, on features of any length up to 3000 frames.

    Mirrors `Qwen2AudioEncoder.forward` and the audio branch of `Qwen2AudioModel.forward` step by
    step, with the positional table sliced to the post-conv length. Differentiable; honours
    dropout, layerdrop, gradient checkpointing, autocast and the configured attention
    implementation.

    Args:
        model: The Qwen2-Audio model (for a peft model pass `peft_model.get_base_model()`).
        input_features: Log-mel features, shape (n_clips, n_mels, frames); for exact parity each
            clip is followed by at least `CONV_MARGIN` padding frames or by the 3000-frame end.
        feature_attention_mask: 1 on real frames, 0 on padding, shape (n_clips, frames).

    Returns:
        Embeddings for the `<|AUDIO|>` positions, clips concatenated in order,
        shape (total_audio_tokens, llm_hidden).
    """
    tower = model.model.audio_tower
    n_frames = input_features.shape[-1]
    max_frames = tower.max_source_positions * tower.conv1.stride[0] * tower.conv2.stride[0]
    if n_frames > max_frames:
        raise ValueError(f"{n_frames} mel frames exceed the encoder's {max_frames}")
    feature_lengths = feature_attention_mask.sum(-1).to(tower.conv1.weight.device)  # (n_clips,)
    n_positions = (n_frames - 1) // 2 + 1  # conv2 output length, odd frame counts included

    features = input_features.to(dtype=tower.conv1.weight.dtype, device=tower.conv1.weight.device)
    hidden = nn.functional.gelu(tower.conv1(features))  # (n_clips, d_model, frames)
    hidden = nn.functional.gelu(tower.conv2(hidden))  # (n_clips, d_model, positions)
    hidden = hidden.permute(0, 2, 1)  # (n_clips, positions, d_model)
    hidden = hidden + tower.embed_positions.weight[:n_positions]  # (n_clips, positions, d_model)
    hidden = nn.functional.dropout(hidden, p=tower.dropout, training=tower.training)

    attention_mask = _encoder_attention_mask(model, feature_lengths, n_positions)
    for layer in tower.layers:
        if tower.training and tower.layerdrop > 0.0 and torch.rand([]) < tower.layerdrop:
            continue
        hidden = layer(hidden, attention_mask)  # (n_clips, positions, d_model)

    hidden = tower.avg_pooler(hidden.permute(0, 2, 1)).permute(0, 2, 1)  # (n_clips, positions // 2, d_model)
    return _project_real_tokens(model, tower.layer_norm(hidden), feature_lengths)


def padded_encode_audio(
    model: Qwen2AudioForConditionalGeneration, input_features: Tensor, feature_attention_mask: Tensor
) -> Tensor:
    """The stock path, for parity tests and benchmarks: 3000-frame features through the audio tower.

    transformers 5.24 has no `get_audio_features` for Qwen2-Audio, so this repeats the audio branch
    of `Qwen2AudioModel.forward` (mask, `audio_tower(...)`, projector, selection of the real
    tokens) and calls the tower's own `forward`, which raises unless there are 3000 frames.

    Args:
        model: The Qwen2-Audio model.
        input_features: Log-mel features padded to 30 s, shape (n_clips, n_mels, 3000).
        feature_attention_mask: 1 on real frames, 0 on padding, shape (n_clips, 3000).

    Returns:
        Embeddings for the `<|AUDIO|>` positions, shape (total_audio_tokens, llm_hidden).
    """
    tower = model.model.audio_tower
    feature_lengths = feature_attention_mask.sum(-1).to(tower.device)  # (n_clips,)
    n_positions = (input_features.shape[-1] - 2) // 2 + 1  # as the stock code writes it: 1500 for 3000 frames
    attention_mask = _encoder_attention_mask(model, feature_lengths, n_positions)
    output = tower(input_features.to(tower.device), attention_mask=attention_mask)
    return _project_real_tokens(model, output.last_hidden_state, feature_lengths)


def scatter_audio(embeds: Tensor, input_ids: Tensor, audio: Tensor, audio_token_id: int) -> Tensor:
    """``embeds`` (batch, tokens, hidden) with the audio vectors (audio tokens, hidden) put in the
    ``<|AUDIO|>`` positions of ``input_ids``, in order. A count mismatch is an error that names both
    counts; ``masked_scatter`` would fill the slots from a prefix, or fail deep inside torch."""
    slots = (input_ids == audio_token_id).unsqueeze(-1)  # (batch, tokens, 1)
    if int(slots.sum()) != audio.shape[0]:
        raise ValueError(f"batch has {int(slots.sum())} audio tokens but {audio.shape[0]} audio embeddings")
    return embeds.masked_scatter(slots, audio.to(embeds.dtype))
