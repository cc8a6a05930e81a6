"""Qwen2-Audio-7B architecture on one GPU: bf16 + LoRA step time, tokens/s, peak memory, MFU.

Builds the full Qwen2-Audio-7B-Instruct architecture from its config with random weights, in bf16,
directly on the GPU (no download, no checkpoint), puts LoRA adapters on the language model with
the project's `apply_lora` (encoder and projector frozen unless `--train-audio-encoder` /
`--train-projector`), and times forward + backward + AdamW with `SLUModule.embed` and
`SLUModule.example_losses` themselves (see `slu_module_around`), on three paths over the same clips:

- `padded`: every clip padded to 3000 mel frames through the stock encoder (the Hugging Face path),
- `dynamic`: features cut to the batch's longest clip (`encode_audio`), clips in random batches,
- `dynamic+bucket`: the same clips sorted by length before batching (length bucketing).

Clip durations: log-normal, median 3 s, sigma 0.5 (a SLURP-like mix), white-noise audio through
`LogMelExtractor`. Each row: `--prompt-tokens` text tokens of prompt (Qwen2-Audio's chat template
with this project's instruction is ~40), the clip's `<|AUDIO|>` tokens, `--answer-tokens` answer
tokens (the loss is on the answer only), random ids.

Figures per path: median step time over `--steps` timed steps (after `--warmup`), LLM tokens/s
(real tokens, padding excluded), peak memory (`torch.cuda.max_memory_allocated`, reset before each
path), and MFU = model FLOPs per step / step time / `--peak-tflops` (default 989: H100 SXM dense
bf16; H100 PCIe 756, H200 989, A100 312). Model FLOPs count useful work only, identical for every
path, so time spent on padding lowers MFU:

    6 * N_llm * T + 6 * 2 * n_layers * d * sum(s_i^2) / 2                (language model)
    + k * (N_enc * P + 2 * n_enc_layers * d_enc * sum(p_i^2) * 2)        (audio encoder)
    + k * N_proj * A                                                     (projector)

with T real LLM tokens (lm_head counted on answer tokens only, as `example_losses` computes it),
s_i the real length of row i (causal attention: half of the 2 * 2 * s^2 * d score and value
matmuls), P = sum of real encoder positions p_i (~ frames / 2; conv1 and conv2 folded into N_enc),
A audio tokens, and k = 6 when that part trains, 2 (forward only) when frozen. The 6 * N
convention (forward 2N, backward 4N) is the PaLM / litgpt / Lightning definition; under LoRA the
frozen LLM weights need no weight gradients (real work ~4N), so LoRA MFU by this convention
overstates the hardware's arithmetic by up to 1.5x; it is still comparable across paths.

Run on a GPU machine from the repository root: `python -m benchmarks.gpu_7b` (about 17 GB of
weights in bf16; peak 41 GiB at batch 8, 115 GiB at batch 32 on an H200). `--attn
flash_attention_2` needs the flash-attn package; with `sdpa`, `--sdpa-backend` forces one kernel
(flash cannot take the padding masks).
On a machine without CUDA it prints the parameter counts (`--dry-run`, on the meta device) or
exits with a message.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from contextlib import nullcontext

import torch
import transformers
from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

from benchmarks.train_step import lognormal_durations
from slu_lightning.data.collate import IGNORE_INDEX, SLUItem, stack_features
from slu_lightning.data.features import LogMelExtractor
from slu_lightning.data.records import SLUExample
from slu_lightning.data.tts import SAMPLE_RATE
from slu_lightning.model.audio_encoder import audio_token_count, conv_output_length
from slu_lightning.model.finetuning import (
    LoraSettings,
    apply_lora,
    freeze_all,
    set_trainable,
    trainable_candidates,
)
from slu_lightning.model.module import SLUModule

AUDIO_TOKEN_ID = 151646  # <|AUDIO|> in Qwen2-Audio-7B-Instruct's tokenizer
TEXT_IDS = 151643  # ordinary BPE ids are below this; special tokens start here
# Qwen2-Audio-7B-Instruct's config.json (audio: Whisper-large-v3-sized encoder; text: Qwen2-7B).
QWEN2_AUDIO_7B = {
    "audio_config": {
        "model_type": "qwen2_audio_encoder",
        "num_mel_bins": 128,
        "d_model": 1280,
        "encoder_layers": 32,
        "encoder_attention_heads": 20,
        "encoder_ffn_dim": 5120,
        "max_source_positions": 1500,
    },
    "text_config": {
        "model_type": "qwen2",
        "vocab_size": 156032,
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "intermediate_size": 11008,
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
    },
    "audio_token_index": AUDIO_TOKEN_ID,
}
PATHS = ("padded", "dynamic", "dynamic+bucket")


def slu_module_around(peft_model) -> SLUModule:
    """An `SLUModule` whose model is `peft_model`, so that its own `embed` / `example_losses` run.

    `SLUModule` loads its backbone from a directory; a random 7B exists only in memory. The module
    is built on the `tiny-test` preset (for its processor: 128 mels, like the 7B) and its model
    swapped, so every attribute its methods read is the module's own.
    """
    module = SLUModule(backbone="tiny-test", finetuning="lora", dynamic_audio=True)
    module.model = peft_model
    return module.train()


def build_model(args: argparse.Namespace, device: str):
    config = Qwen2AudioConfig(**QWEN2_AUDIO_7B)
    with torch.device(device):
        return Qwen2AudioForConditionalGeneration._from_config(
            config, dtype=torch.bfloat16, attn_implementation=args.attn
        )


def parameter_counts(model) -> dict[str, int]:
    """Parameters that do matmul work per position, by part (embeddings and positional tables excluded)."""
    inner = model.model
    llm_layers = sum(p.numel() for p in inner.language_model.layers.parameters())
    encoder = sum(p.numel() for n, p in inner.audio_tower.named_parameters() if "embed_positions" not in n)
    return {
        "llm_layers": llm_layers,
        "lm_head": model.lm_head.weight.numel(),
        "encoder": encoder,
        "projector": sum(p.numel() for p in inner.multi_modal_projector.parameters()),
        "total": sum(p.numel() for p in model.parameters()),
    }


def make_batches(args: argparse.Namespace, n_batches: int) -> dict[str, list[dict]]:
    """The same clips batched randomly (padded, dynamic) and by length (dynamic+bucket)."""
    rng = random.Random(args.seed)
    seconds = lognormal_durations(n_batches * args.batch_size, 3.0, rng)
    extractor, generator = LogMelExtractor(n_mels=128), torch.Generator().manual_seed(args.seed)
    items = []
    for i, s in enumerate(seconds):
        features, n_frames = extractor(0.1 * torch.randn(int(s * SAMPLE_RATE), generator=generator))
        items.append(SLUItem(SLUExample(f"c{i}", "en-US", "", "s", "a", audio="noise"), features, n_frames))
    by_length = sorted(range(len(items)), key=lambda i: items[i].n_frames)
    bucketed = [by_length[i : i + args.batch_size] for i in range(0, len(items), args.batch_size)]
    rng.shuffle(bucketed)
    random_order = [list(range(i, i + args.batch_size)) for i in range(0, len(items), args.batch_size)]
    groups = {"padded": random_order, "dynamic": random_order, "dynamic+bucket": bucketed}
    return {path: [collate([items[i] for i in group], args, rng) for group in groups[path]] for path in PATHS}


def collate(items: list[SLUItem], args: argparse.Namespace, rng: random.Random) -> dict:
    """Right-padded rows of prompt + audio tokens + answer with random ids; loss on the answer only."""
    rows, label_rows = [], []
    for item in items:
        n_audio = int(audio_token_count(torch.tensor([item.n_frames]))[0])
        prompt = [rng.randrange(TEXT_IDS) for _ in range(args.prompt_tokens)]
        answer = [rng.randrange(TEXT_IDS) for _ in range(args.answer_tokens)]
        at = args.prompt_tokens - 12  # the audio sits inside the user turn, before the instruction's end
        rows.append(prompt[:at] + [AUDIO_TOKEN_ID] * n_audio + prompt[at:] + answer)
        label_rows.append([IGNORE_INDEX] * (len(rows[-1]) - len(answer)) + answer)
    width = max(len(r) for r in rows)
    input_ids = torch.zeros(len(rows), width, dtype=torch.long)  # (batch, tokens)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, (row, label) in enumerate(zip(rows, label_rows, strict=True)):
        input_ids[i, : len(row)], labels[i, : len(row)], mask[i, : len(row)] = (
            torch.tensor(row),
            torch.tensor(label),
            1,
        )
    features, feature_mask = stack_features(items)  # (clips, 128, frames), (clips, frames)
    return {
        "input_ids": input_ids,
        "labels": labels,
        "attention_mask": mask,
        "input_features": features,
        "feature_attention_mask": feature_mask,
    }


def model_flops(batch: dict, counts: dict[str, int], args: argparse.Namespace) -> float:
    """Useful FLOPs of one training step (formula in the module docstring)."""
    text, audio = QWEN2_AUDIO_7B["text_config"], QWEN2_AUDIO_7B["audio_config"]
    lengths = batch["attention_mask"].sum(-1).double()  # (batch,)
    answer = int((batch["labels"] != IGNORE_INDEX).sum())
    llm = 6 * counts["llm_layers"] * lengths.sum() + 6 * counts["lm_head"] * answer
    llm += 6 * 2 * text["num_hidden_layers"] * text["hidden_size"] * (lengths**2).sum() / 2
    frames = batch["feature_attention_mask"].sum(-1)
    positions = conv_output_length(frames).double()  # (clips,)
    k_enc, k_proj = (6 if args.train_audio_encoder else 2), (6 if args.train_projector else 2)
    encoder = k_enc * (
        counts["encoder"] * positions.sum()
        + 2 * audio["encoder_layers"] * audio["d_model"] * (positions**2).sum() * 2
    )
    projector = k_proj * counts["projector"] * int(audio_token_count(frames).sum())
    return float(llm + encoder + projector)


def attention_report(model) -> str:
    report = (
        f"LLM attention: {model.config.text_config._attn_implementation}, audio encoder attention: "
        f"{model.config.audio_config._attn_implementation}"
    )
    if torch.cuda.is_available():
        backends = {
            name: getattr(torch.backends.cuda, f"{name}_sdp_enabled")()
            for name in ("flash", "mem_efficient", "math", "cudnn")
        }
        report += f"; SDPA backends enabled: {', '.join(n for n, on in backends.items() if on)}"
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per path (each on another batch)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per path first")
    parser.add_argument("--prompt-tokens", type=int, default=40)
    parser.add_argument("--answer-tokens", type=int, default=32)
    parser.add_argument("--attn", choices=("sdpa", "flash_attention_2", "eager"), default="sdpa")
    parser.add_argument(
        "--sdpa-backend",
        choices=("flash", "efficient", "cudnn", "math"),
        default=None,
        help="force one SDPA kernel (default: PyTorch picks)",
    )
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument(
        "--train-audio-encoder", action="store_true", help="full weights of the encoder train too"
    )
    parser.add_argument("--train-projector", action="store_true")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=989.0,
        help="dense bf16 peak of the card: H100 SXM 989, H100 PCIe 756, A100 312",
    )
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="build on the meta device, print parameter counts and FLOPs per step, exit",
    )
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()

    if args.dry_run:
        model = build_model(args, "meta")
        counts = parameter_counts(model)
        print(", ".join(f"{name} {value / 1e9:.3f} B" for name, value in counts.items()))
        batch = make_batches(args, 1)["dynamic"][0]
        print(
            f"model FLOPs of one batch of {args.batch_size} (LoRA, frozen encoder): "
            f"{model_flops(batch, counts, args) / 1e12:.2f} TFLOP"
        )
        return
    if not torch.cuda.is_available():
        sys.exit(
            "gpu_7b.py needs a CUDA GPU (the 7B architecture in bf16 is ~17 GB); none is visible here. "
            "Run it on a GPU machine, or pass --dry-run for the parameter and FLOPs counts."
        )

    torch.manual_seed(args.seed)
    model = build_model(args, "cuda")
    counts = parameter_counts(model)
    freeze_all(model)
    model = apply_lora(model, LoraSettings(rank=args.lora_rank, alpha=2 * args.lora_rank))
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    set_trainable(
        trainable_candidates(model, "lora"),
        {"audio_encoder": args.train_audio_encoder, "projector": args.train_projector, "llm": True},
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=5e-6)
    runner = slu_module_around(model)
    batches = make_batches(args, args.warmup + args.steps)

    print(
        f"{torch.cuda.get_device_name()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, "
        f"bf16, batch {args.batch_size}, LoRA rank {args.lora_rank} ({sum(p.numel() for p in params):,} "
        f"trainable), encoder {'trained' if args.train_audio_encoder else 'frozen'}, "
        f"gradient checkpointing {args.gradient_checkpointing}"
    )
    print(
        f"parameters: {counts['total'] / 1e9:.2f} B; {attention_report(runner.hf)}"
        + (f"; forced SDPA backend {args.sdpa_backend}" if args.sdpa_backend else "")
    )
    print(
        f"MFU against {args.peak_tflops:.0f} TFLOP/s dense bf16; "
        f"median of {args.steps} steps after {args.warmup}"
    )
    kernel = nullcontext()
    if args.sdpa_backend:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        names = {
            "flash": "FLASH_ATTENTION",
            "efficient": "EFFICIENT_ATTENTION",
            "cudnn": "CUDNN_ATTENTION",
            "math": "MATH",
        }
        kernel = sdpa_kernel(getattr(SDPBackend, names[args.sdpa_backend]))

    print(
        f"{'path':<15} {'frames':>6} {'step ms':>8} {'tokens/s':>9} {'speed-up':>8} "
        f"{'peak GiB':>8} {'MFU':>6}"
    )
    base = None
    with kernel:
        for path in args.paths:
            runner.dynamic_audio = path != "padded"
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            times, tokens, flops = [], [], []
            for i, batch in enumerate(batches[path]):
                batch = {k: v.cuda(non_blocking=True) for k, v in batch.items()}
                torch.cuda.synchronize()
                start = time.perf_counter()
                sums, n_answer = runner.example_losses(batch)
                (sums.sum() / n_answer.sum().clamp(min=1)).backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                torch.cuda.synchronize()
                if i >= args.warmup:
                    times.append(time.perf_counter() - start)
                    tokens.append(int(batch["attention_mask"].sum()))
                    flops.append(model_flops(batch, counts, args))
            step = statistics.median(times)
            frames = (
                3000
                if path == "padded"
                else statistics.mean(b["input_features"].shape[-1] for b in batches[path][args.warmup :])
            )
            rate = statistics.mean(t / s for t, s in zip(tokens, times, strict=True))
            mfu = statistics.mean(f / s for f, s in zip(flops, times, strict=True)) / (
                args.peak_tflops * 1e12
            )
            base = base or step
            print(
                f"{path:<15} {frames:>6.0f} {1000 * step:>8.0f} {rate:>9.0f} {base / step:>7.1f}x "
                f"{torch.cuda.max_memory_allocated() / 2**30:>8.1f} {100 * mfu:>5.1f}%",
                flush=True,
            )


if __name__ == "__main__":
    main()
