"""Audio encoder + projector time: stock 30 s padding vs features cut to the longest clip.

Run from the repository root: `PYTHONPATH=. python benchmarks/encoder_speed.py` (or install the
package with `pip install -e .`); about 5 minutes on 2 CPU cores.
Every clip of a row lasts the row's length (8 clips, 100 mel frames per second), so the dynamic
path keeps `100 * seconds + CONV_MARGIN` frames. The padded path always runs 3000 frames and the
masked padding does the same work whatever the clip length, so it is timed once per model and
mode and repeated on every row. Timings are medians; other processes on the machine add noise.
"""

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
import transformers
from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

from slu_lightning.model.audio_encoder import (
    PADDED_FRAMES,
    encode_audio,
    padded_encode_audio,
    trim_to_longest,
)

CLIP_SECONDS = (1, 2, 3, 4, 8, 15)
BATCH = 8
FRAMES_PER_SECOND = 100  # 10 ms hop of the Whisper feature extractor
PAD_VALUE = -0.75  # a log-mel floor value; the padded path's padding frames
WIDTHS = {  # name: (d_model, encoder layers, heads); Qwen2-Audio-7B's encoder is (1280, 32, 20)
    "tiny d192x3": (192, 3, 4),
    "small d512x4": (512, 4, 8),
}


def build_model(d_model: int, layers: int, heads: int) -> Qwen2AudioForConditionalGeneration:
    """Random-weight Qwen2-Audio with the given encoder; the 1-layer LLM is never run here."""
    torch.manual_seed(0)
    config = Qwen2AudioConfig(
        audio_config={
            "model_type": "qwen2_audio_encoder",
            "num_mel_bins": 128,
            "d_model": d_model,
            "encoder_layers": layers,
            "encoder_attention_heads": heads,
            "encoder_ffn_dim": 4 * d_model,
            "max_source_positions": 1500,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": 512,
            "hidden_size": 256,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 512,
        },
        audio_token_id=511,
    )
    return Qwen2AudioForConditionalGeneration._from_config(config, attn_implementation="sdpa").eval()


def padded_batch(seconds: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`BATCH` random log-mel clips of `seconds`, padded to 3000 frames as the processor does."""
    frames = int(seconds * FRAMES_PER_SECOND)
    features = torch.full((BATCH, 128, PADDED_FRAMES), PAD_VALUE)  # (batch, n_mels, 3000)
    features[..., :frames] = 0.5 * torch.randn(BATCH, 128, frames)
    mask = torch.zeros(BATCH, PADDED_FRAMES, dtype=torch.long)  # (batch, 3000)
    mask[:, :frames] = 1
    return features, mask


def median_seconds(step: Callable[[], None], repeats: int) -> float:
    """Median wall time of `step` over `repeats` runs, after one warm-up run."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


Encode = Callable[[Qwen2AudioForConditionalGeneration, torch.Tensor, torch.Tensor], torch.Tensor]


def timed(
    model: Qwen2AudioForConditionalGeneration,
    encode: Encode,
    features: torch.Tensor,
    mask: torch.Tensor,
    backward: bool,
    repeats: int,
) -> float:
    """Median seconds of one encoder + projector forward (inference mode) or forward + backward."""

    def forward() -> None:
        with torch.inference_mode():
            encode(model, features, mask)

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        encode(model, features, mask).sum().backward()

    return median_seconds(forward_backward if backward else forward, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell (after one warm-up)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads; 1 is steadier on a busy machine"
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(
        f"{platform.processor() or platform.machine()}, os.cpu_count()={os.cpu_count()}, "
        f"torch threads={torch.get_num_threads()}, load average={os.getloadavg()[0]:.1f}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"python {platform.python_version()}"
    )
    print(f"batch {BATCH}, fp32, sdpa, median of {args.repeats}, ms; padded (3000 frames) timed once")
    header = f"{'model':<13} {'clip':>5} {'frames':>6} | {'fwd pad':>8} {'fwd dyn':>8} {'x':>6} |"
    print(header + f" {'f+b pad':>8} {'f+b dyn':>8} {'x':>6}")
    for name, (d_model, layers, heads) in WIDTHS.items():
        model = build_model(d_model, layers, heads)
        features, mask = padded_batch(CLIP_SECONDS[0])
        padded = {
            backward: timed(model, padded_encode_audio, features, mask, backward, args.repeats)
            for backward in (False, True)
        }
        for seconds in CLIP_SECONDS:
            cut_features, cut_mask = trim_to_longest(*padded_batch(seconds))
            dynamic = {
                backward: timed(model, encode_audio, cut_features, cut_mask, backward, args.repeats)
                for backward in (False, True)
            }
            cells = [f"{name:<13} {seconds:>4}s {cut_features.shape[-1]:>6} |"]
            for backward in (False, True):
                pad_ms, dyn_ms = 1000 * padded[backward], 1000 * dynamic[backward]
                cells.append(f"{pad_ms:>8.0f} {dyn_ms:>8.0f} {pad_ms / dyn_ms:>5.1f}x |")
            print(" ".join(cells).rstrip(" |"))


if __name__ == "__main__":
    main()
