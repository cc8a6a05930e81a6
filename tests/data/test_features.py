"""LogMelExtractor against transformers' WhisperFeatureExtractor, the 30 s padded reference path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor

from slu_lightning.data.features import LogMelExtractor, padding_value

TOLERANCE = 1e-4


def speech_like(n_samples: int, seed: int = 0) -> np.ndarray:
    """Harmonics under a syllable-rate envelope plus noise, with a loud burst at the very end.

    The burst puts the clip's loudest bins in its last frames, where the cut-versus-padded
    difference would show.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / 16000
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)  # 4 Hz = syllable rate
    signal = 0.2 * envelope * voice + 0.01 * rng.standard_normal(n_samples)
    signal[-60:] += rng.uniform(-0.9, 0.9, min(60, n_samples))
    return signal.astype(np.float32)


def whisper_padded(signal: np.ndarray, n_mels: int = 128) -> tuple[np.ndarray, int]:
    """Whisper's features for the clip padded to 30 s (3000 frames) and its attention-mask length."""
    extractor = WhisperFeatureExtractor(feature_size=n_mels)
    out = extractor(signal, sampling_rate=16000, return_attention_mask=True, return_tensors="np")
    return out["input_features"][0], int(out["attention_mask"][0].sum())  # (n_mels, 3000), int


# 16121 samples is not a multiple of the 160-sample hop; 281 leaves 121 samples in the last hop, the
# case where a frame two hops past n_real still reaches real samples.
@pytest.mark.parametrize("n_samples", [281, 16000, 16121, 40000, 59_999])
def test_matches_whisper_on_real_and_margin_frames(n_samples: int):
    signal = speech_like(n_samples)
    reference, reference_valid = whisper_padded(signal)

    features, n_real = LogMelExtractor()(torch.from_numpy(signal))

    assert n_real == reference_valid == -(-n_samples // 160)
    assert features.shape == (128, n_real + 2)
    assert features.dtype == torch.float32
    real_diff = np.abs(features[:, :n_real].numpy() - reference[:, :n_real]).max()
    margin_diff = np.abs(features[:, n_real:].numpy() - reference[:, n_real : n_real + 2]).max()
    assert real_diff <= TOLERANCE
    assert margin_diff <= TOLERANCE


def test_margin_frames_differ_from_plain_padding():
    """The margin is not padding: the frames just past the clip still see its last samples."""
    signal = speech_like(16121)
    reference, _ = whisper_padded(signal)
    features, n_real = LogMelExtractor()(torch.from_numpy(signal))

    margin = features[:, n_real:]  # (128, 2)
    assert (margin[:, 0] > padding_value(features) + 0.1).any()
    torch.testing.assert_close(margin, torch.from_numpy(reference[:, n_real : n_real + 2]), rtol=0, atol=1e-4)


def test_matches_whisper_numpy_path():
    signal = speech_like(24_321, seed=1)
    whisper = WhisperFeatureExtractor(feature_size=128)
    padded = np.pad(signal, (0, whisper.n_samples - signal.size))  # (480000,)
    reference = whisper._np_extract_fbank_features(padded[None], "cpu")[0]  # (128, 3000)

    features, n_real = LogMelExtractor()(torch.from_numpy(signal))

    assert np.abs(features.numpy() - reference[:, : n_real + 2]).max() <= TOLERANCE


def test_padding_value_is_what_whisper_puts_after_the_margin():
    signal = speech_like(20_000)
    reference, _ = whisper_padded(signal)
    features, n_real = LogMelExtractor()(torch.from_numpy(signal))

    rest = reference[:, n_real + 2 :]  # (128, 3000 - n_real - 2)
    assert np.abs(rest - padding_value(features)).max() <= 1e-6


def test_padding_value_of_a_near_silent_clip_is_the_log_floor():
    """When the whole clip sits within 80 dB of 1e-10, padding keeps log10(1e-10): (-10 + 4) / 4."""
    signal = np.zeros(8000, np.float32)
    signal[0] = 1e-9
    reference, _ = whisper_padded(signal)
    features, _ = LogMelExtractor()(torch.from_numpy(signal))

    assert padding_value(features) == -1.5
    assert reference[:, -1].max() == pytest.approx(-1.5)


def test_30_second_clip_returns_whisper_frames_exactly():
    signal = speech_like(480_000)
    reference, _ = whisper_padded(signal)

    features, n_real = LogMelExtractor()(torch.from_numpy(signal))

    assert n_real == 3000
    assert features.shape == (128, 3000)  # the margin cannot pass 30 s
    assert np.abs(features.numpy() - reference).max() <= TOLERANCE


def test_80_mels_and_no_margin():
    signal = speech_like(12_345)
    reference, reference_valid = whisper_padded(signal, n_mels=80)

    features, n_real = LogMelExtractor(n_mels=80, margin_frames=0)(torch.from_numpy(signal))

    assert features.shape == (80, n_real) == (80, reference_valid)
    assert np.abs(features.numpy() - reference[:, :n_real]).max() <= TOLERANCE


@pytest.mark.parametrize("shape", [(0,), (2, 1600), (480_001,)])
def test_rejects_empty_multichannel_and_too_long(shape: tuple[int, ...]):
    with pytest.raises(ValueError):
        LogMelExtractor()(torch.zeros(shape))
