"""``slu-lightning speaker-gap``: how much worse a stand-in hears new speakers than its own.

The model card's held-out WER mixes two things a recogniser has not seen: new sentences and new
voices. This separates them. The same held-out sentences (the sample the card measures) are heard
twice: spoken by the held-out voices (their clips in the ASR corpus) and again by the pretraining
voices, at the same rate and pitch, synthesised into a temporary folder. The CTC read-out's word
error rate on each, and their difference paired over sentences with a bootstrap interval, say how
much of the error is the speakers. A large gap asks for more voices (``--extra-voices``) or
augmentation (``--spec-augment``) rather than more steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import tempfile
from pathlib import Path

import numpy as np

from slu_lightning.data.asr_corpus import Size, default_asr_dir, make_asr_corpus
from slu_lightning.data.demo_corpus import Clip, write_clips
from slu_lightning.data.partition import partition
from slu_lightning.data.records import SLUExample
from slu_lightning.pretrain.coverage import paired_wer, word_error_rows
from slu_lightning.pretrain.data import heldout_sample


def respoken(examples: list[SLUExample], out_dir: Path, seed: int = 0) -> list[SLUExample]:
    """``examples`` spoken again under ``out_dir``, each by a pretraining voice of its locale (drawn
    with ``seed``) at its own rate and pitch; same ids and texts, new audio paths and voices."""
    shares = partition(seed)
    rng = random.Random(f"speaker-gap:{seed}")
    clips = []
    for example in examples:
        voice = rng.choice(shares[example.locale]["pretrain"].voices)
        path = out_dir / "audio" / "respoken" / f"{example.id}.flac"
        meta = {**example.meta, "voice": voice}
        again = dataclasses.replace(example, audio=str(path), meta=meta)
        clips.append(
            Clip("respoken", again, voice, int(example.meta["rate"]), int(example.meta["pitch"]), path)
        )
    write_clips(
        out_dir, {"respoken": clips}, sorted({e.locale for e in examples}), workers=1, what="respeaking"
    )
    return [clip.example for clip in clips]


def gap_rows(
    backbone: str, heldout: list[SLUExample], own: list[SLUExample]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sentence word errors and reference words (``word_error_rows``) of ``backbone``'s greedy
    CTC read-out on the held-out voices' clips and on the pretraining voices' clips."""
    from slu_lightning.pretrain.asr_eval import transcribe
    from slu_lightning.pretrain.module import TinyPretrainModule

    module = TinyPretrainModule(backbone=backbone)
    return tuple(word_error_rows(clips, transcribe(module, clips, "ctc")["ctc"]) for clips in (heldout, own))


def gap_table(rows: dict[str, tuple[np.ndarray, np.ndarray]], seed: int = 0) -> str:
    """One line per backbone: WER with held-out and with pretraining voices, and the gap."""
    lines = [
        "| backbone | held-out voices WER | pretraining voices WER | gap | 95 % CI | p |",
        "|---|---|---|---|---|---|",
    ]
    for backbone, (heldout, own) in rows.items():
        heldout_wer, own_wer = (r[:, 0].sum() / max(r[:, 1].sum(), 1) for r in (heldout, own))
        gap = paired_wer(own, heldout, seed)
        interval = f"[{gap.low:+.3f}, {gap.high:+.3f}]"
        lines.append(
            f"| {backbone} | {heldout_wer:.3f} | {own_wer:.3f} | {gap.difference:+.3f} | {interval} "
            f"| {gap.p_value:.3f} |"
        )
    return "\n".join(lines)


def main(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="slu-lightning speaker-gap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", action="append", required=True, help="backbone to measure; repeatable")
    parser.add_argument("--asr-size", default="large", help="ASR corpus whose held-out sentences to use")
    parser.add_argument("--everyday-words", type=int, default=0, help="that corpus's everyday words")
    parser.add_argument("--clips", type=int, default=240, help="held-out sentences (the model card's sample)")
    parser.add_argument("--seed", type=int, default=0)
    parsed = parser.parse_args(args)
    size: Size = parsed.asr_size
    corpus = make_asr_corpus(
        default_asr_dir(size, parsed.seed, parsed.everyday_words),
        size=size,
        seed=parsed.seed,
        everyday_words=parsed.everyday_words,
    )
    heldout = heldout_sample(corpus, parsed.clips, parsed.seed)
    with tempfile.TemporaryDirectory(prefix="speaker-gap-") as folder:
        own = respoken(heldout, Path(folder), parsed.seed)
        rows = {backbone: gap_rows(backbone, heldout, own) for backbone in parsed.backbone}
    print(
        f"\nGreedy CTC read-out on {len(heldout)} held-out sentences of {corpus.name}, paired by sentence:\n"
    )
    print(gap_table(rows, parsed.seed))
