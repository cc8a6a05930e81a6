"""Whisper-style log-mel features for one clip, computed on the clip instead of on 30 s of padding.

``WhisperFeatureExtractor`` (what ``Qwen2AudioProcessor`` uses) pads every clip to 30 s before
the STFT: a 3 s clip costs as much as a 30 s one. ``LogMelExtractor`` computes the same numbers
(within 1e-4) on the clip's own frames plus a small margin of frames taken over appended zeros,
which is all the Qwen2-Audio encoder needs to reproduce the padded path exactly:

- The dynamic-range floor (max - 8 in log10 units) is taken over the whole padded array in
  Whisper, but frames of pure zeros can only lower the max, so the max over the frames whose
  window reaches real samples is the same max.
- Whisper's attention mask marks ``ceil(samples / hop)`` frames valid (the sample mask taken every
  ``hop``-th sample); this is ``n_real``. Frames after those are masked in the encoder's attention,
  but its two convolutions (kernel 3, stride 1 then 2) let the last valid positions read up to two
  frames past ``n_real``: ``margin_frames=2`` gives them the padded path's values there.
- Every frame further on is, in the padded path, ``padding_value(features)``: a collate that pads
  with it feeds the encoder exactly what the padded path would.
"""

from __future__ import annotations

import torch
from transformers.audio_utils import mel_filter_bank

WHISPER_CHUNK_SECONDS = 30
"""Whisper pads or cuts every clip to 30 s: 3000 frames, the only input length Qwen2-Audio accepts."""
LOG10_FLOOR = -10.0
"""log10 of the 1e-10 clamp on mel power: the value of a frame of pure zeros before normalisation."""
DYNAMIC_RANGE = 8.0
"""Whisper keeps 8 log10 units (80 dB) below the clip's loudest mel bin and clamps the rest."""


class LogMelExtractor:
    """Log-mel features of one clip, equal to ``WhisperFeatureExtractor(feature_size=n_mels)``'s.

    Args:
        n_mels: Mel bins; Qwen2-Audio uses 128 (Whisper v1/v2 used 80).
        sample_rate: Rate of the waveforms passed in, in Hz.
        n_fft: STFT size; 400 samples = a 25 ms window at 16 kHz.
        hop_length: STFT hop; 160 samples = 10 ms at 16 kHz.
        margin_frames: Frames returned after the clip's ``n_real`` frames, computed over appended
            zeros as the 30 s padded path computes them. 2 covers the reach of Qwen2-Audio's two
            encoder convolutions (kernel 3, stride 1, then kernel 3, stride 2) past the last valid
            frame.
    """

    def __init__(
        self,
        n_mels: int = 128,
        sample_rate: int = 16000,
        n_fft: int = 400,
        hop_length: int = 160,
        margin_frames: int = 2,
    ):
        if margin_frames < 0:
            raise ValueError(f"margin_frames must be >= 0, got {margin_frames}")
        self.n_mels = n_mels
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.margin_frames = margin_frames
        self.max_samples = WHISPER_CHUNK_SECONDS * sample_rate
        self.max_frames = self.max_samples // hop_length  # 3000 frames at a 160-sample hop
        # Frames after the last valid one whose centred window still reaches real samples: they can
        # hold the clip's loudest bin, so they are always computed, even when not returned.
        self.tail_frames = -(-(n_fft // 2) // hop_length)  # ceil(200 / 160) = 2 for Whisper
        self.window = torch.hann_window(n_fft)  # (n_fft,)
        # The same call, with the same arguments, as WhisperFeatureExtractor.__init__ (8 kHz top is
        # fixed there, whatever the sample rate).
        filters = mel_filter_bank(
            num_frequency_bins=1 + n_fft // 2,
            num_mel_filters=n_mels,
            min_frequency=0.0,
            max_frequency=8000.0,
            sampling_rate=sample_rate,
            norm="slaney",
            mel_scale="slaney",
        )  # (n_freq, n_mels), float64
        self.mel_filters = torch.from_numpy(filters).to(torch.float32).T.contiguous()  # (n_mels, n_freq)

    def __call__(self, waveform: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Compute the features of one clip.

        Args:
            waveform: Mono audio at ``sample_rate``, shape ``(samples,)``, at most 30 s.

        Returns:
            ``(features, n_real)``: features of shape ``(n_mels, n_real + margin_frames)`` (fewer only
            when that would pass 3000 frames), and ``n_real``, the number of frames the 30 s padded
            path marks valid in its attention mask (``ceil(samples / hop_length)``).
        """
        if waveform.dim() != 1 or waveform.numel() == 0:
            raise ValueError(f"expected a non-empty (samples,) waveform, got shape {tuple(waveform.shape)}")
        n_samples = waveform.numel()
        if n_samples > self.max_samples:
            raise ValueError(f"clip of {n_samples} samples is longer than {WHISPER_CHUNK_SECONDS} s")

        n_real = -(-n_samples // self.hop_length)
        n_computed = min(n_real + max(self.margin_frames, self.tail_frames), self.max_frames)
        # A length of n_computed hops makes the centred STFT yield n_computed + 1 frames, the last of
        # which Whisper drops; the reflect padding at the end then mirrors appended zeros only, as in
        # the padded path (or is the padded path itself when n_computed reaches 3000).
        padded = torch.nn.functional.pad(
            waveform.to(torch.float32), (0, n_computed * self.hop_length - n_samples)
        )  # (n_computed * hop,)
        stft = torch.stft(
            padded,
            self.n_fft,
            self.hop_length,
            window=self.window.to(padded.device),
            return_complex=True,
        )  # (n_freq, n_computed + 1)
        # Contiguous before the matmul, as transformers does: the strided view of stft[:, :-1] can take
        # a much slower matmul path on some CPU backends.
        power = stft[:, :-1].abs().pow(2).contiguous()  # (n_freq, n_computed)
        mel = self.mel_filters.to(padded.device) @ power  # (n_mels, n_computed)
        log_mel = mel.clamp(min=1e-10).log10()  # (n_mels, n_computed)
        log_mel = torch.maximum(log_mel, log_mel.max() - DYNAMIC_RANGE)
        features = (log_mel + 4.0) / 4.0  # (n_mels, n_computed)
        n_returned = min(n_real + self.margin_frames, self.max_frames)
        return features[:, :n_returned], n_real


def padding_value(features: torch.Tensor) -> float:
    """The value of every frame of pure padding in Whisper's 30 s path, for this clip's features.

    Pad frames after ``n_real + margin_frames`` with it to feed the encoder exactly what the padded
    path does. Those frames are masked in the encoder's attention, so another value changes only
    masked positions; this one also keeps the full 3000-frame input equal to Whisper's.

    A zero frame's log10 is -10, raised to the clip's floor (max - 8): after ``(x + 4) / 4`` that is
    ``max(features.max() - 2, -1.5)``. Exact when ``features`` includes the tail frames (the default
    ``margin_frames=2``), since the clip's loudest bin could sit there.
    """
    loudest = features.max().item()
    return max(loudest - DYNAMIC_RANGE / 4.0, (LOG10_FLOOR + 4.0) / 4.0)
