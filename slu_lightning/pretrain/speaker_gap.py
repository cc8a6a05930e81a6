"""``slu-lightning speaker-gap``: where a stand-in's recognition errors come from.

The model card's held-out WER mixes two things a recogniser has not met: new sentences and new
voices. This separates them with three sets of clips, all from the ASR corpus's plan and spoken
into a temporary folder (no corpus build needed):

- ``trained``: clips of the train split exactly as pretraining heard them (same sentence, voice,
  rate and pitch; give the corpus's ``--everyday-words`` and ``--extra-voices``);
- ``own voices``: the card's held-out sentences, spoken by the pretraining voices at their rate and
  pitch;
- ``held-out voices``: the same sentences as the card hears them (held-out voices).

The speaker gap (held-out voices minus own voices) is paired over sentences. The sentence gap
(own voices minus trained) compares different sentences, so it is resampled unpaired. A large
sentence gap means the ear memorises its training clips: more sentences or augmentation help. A
large speaker gap asks for more voices (``--extra-voices``). If the trained clips are heard
about as badly as new ones, the ear underfits: it needs capacity and steps, not more data. A
second table splits each set by sentence kind (random word strings, phrase chunks, templates).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
from pathlib import Path

import numpy as np

from slu_lightning.arguments import positive_int
from slu_lightning.data.asr_corpus import KINDS, Size, plan_asr_corpus
from slu_lightning.data.asr_corpus import SIZES as ASR_SIZES
from slu_lightning.data.demo_corpus import write_clips
from slu_lightning.data.partition import partition
from slu_lightning.data.records import SLUExample
from slu_lightning.data.respeak import clip_of, respoken
from slu_lightning.model.backbone import resolve_backbone
from slu_lightning.pretrain.coverage import paired_wer, pooled_wer, unpaired_wer, word_error_rows
from slu_lightning.pretrain.data import sample_heldout
from slu_lightning.pretrain.recipe import ADDED_LATER

log = logging.getLogger(__name__)
FLAGS = {
    "corpus_size": "asr-size",
    "everyday_words": "everyday-words",
    "extra_voices": "extra-voices",
    "seed": "seed",
}
"""This command's flag for each ``pretrain-tiny`` setting that names the ASR corpus."""

GAP_SETS = ("trained", "own voices", "held-out voices")


def in_pretraining_voices(examples: list[SLUExample], out_dir: Path, seed: int = 0) -> list[SLUExample]:
    """``examples`` to be spoken again under ``out_dir/audio/respoken``, each by a pretraining voice of
    its locale (drawn with ``seed``) at its own rate and pitch; same ids and texts."""
    shares = partition(seed)
    rng = random.Random(f"speaker-gap:{seed}")
    voices = [rng.choice(shares[example.locale]["pretrain"].voices) for example in examples]
    return respoken(examples, voices, out_dir, "respoken")


def gap_sets(
    out_dir: Path,
    size: Size = "large",
    seed: int = 0,
    everyday_words: int = 0,
    n: int = 240,
    extra_voices: int = 0,
) -> dict[str, list[SLUExample]]:
    """The three ``GAP_SETS`` of ``n`` clips each, synthesised under ``out_dir`` (an empty folder)."""
    plan = plan_asr_corpus(
        out_dir, size=size, seed=seed, everyday_words=everyday_words, extra_voices=extra_voices
    )
    trained = random.Random(f"speaker-gap-train:{seed}").sample(plan["train"], min(n, len(plan["train"])))
    heldout = sample_heldout(plan["heldout"], n, seed)
    sets = {
        "trained": trained,
        "own voices": in_pretraining_voices(heldout, out_dir, seed),
        "held-out voices": heldout,
    }
    clips = {
        split: [clip_of(split, e) for e in sets[name]]
        for split, name in zip(("train", "respoken", "heldout"), GAP_SETS, strict=True)
    }
    locales = sorted({example.locale for examples in sets.values() for example in examples})
    write_clips(out_dir, clips, locales, workers=1, what="speaking")
    return sets


def gap_rows(backbone: str, sets: dict[str, list[SLUExample]]) -> dict[str, np.ndarray]:
    """Per-clip word errors and reference words (``word_error_rows``) of ``backbone``'s greedy CTC
    read-out on each set."""
    from slu_lightning.pretrain.asr_eval import transcribe
    from slu_lightning.pretrain.module import TinyPretrainModule

    module = TinyPretrainModule(backbone=backbone)
    return {
        name: word_error_rows(clips, transcribe(module, clips, "ctc")["ctc"]) for name, clips in sets.items()
    }


def gap_table(rows: dict[str, dict[str, np.ndarray]], seed: int = 0) -> str:
    """One line per backbone: WER on each set, the sentence gap and the speaker gap with their
    95 % intervals and p-values."""
    lines = [
        "| backbone | trained clips WER | own voices WER | held-out voices WER "
        "| sentence gap [95 % CI] (p) | speaker gap [95 % CI] (p) |",
        "|---|---|---|---|---|---|",
    ]
    for backbone, sets in rows.items():
        wers = " | ".join(f"{pooled_wer(sets[name]):.3f}" for name in GAP_SETS)
        sentence = unpaired_wer(sets["trained"], sets["own voices"], seed)
        speaker = paired_wer(sets["own voices"], sets["held-out voices"], seed)
        gaps = " | ".join(
            f"{gap.difference:+.3f} [{gap.low:+.3f}, {gap.high:+.3f}] ({gap.p_value:.3f})"
            for gap in (sentence, speaker)
        )
        lines.append(f"| {backbone} | {wers} | {gaps} |")
    return "\n".join(lines)


def kind_table(rows: dict[str, dict[str, np.ndarray]], sets: dict[str, list[SLUExample]]) -> str:
    """WER of each set split by the plan's sentence kind (random word strings, phrase chunks,
    templates): which text the ear hears worst, and whether a gap sits in one kind."""
    lines = [
        "| backbone | kind | " + " | ".join(f"{name} WER (clips)" for name in GAP_SETS) + " |",
        "|---|---|" + "---|" * len(GAP_SETS),
    ]
    kinds = {name: np.array([example.meta["kind"] for example in sets[name]]) for name in GAP_SETS}
    for backbone, by_set in rows.items():
        for kind in KINDS:
            cells = []
            for name in GAP_SETS:
                mine = kinds[name] == kind  # (clips,)
                errors, words = by_set[name][mine].sum(axis=0)  # zeros when no clip is of this kind
                cells.append(f"{errors / words:.3f} ({mine.sum()})" if words else "-")
            lines.append(f"| {backbone} | {kind} | {' | '.join(cells)} |")
    return "\n".join(lines)


def warn_of_another_corpus(backbone: str, corpus: dict) -> None:
    """Warn when ``backbone``'s last pretraining stage (its ``pretraining.json``) trained on another
    ASR corpus than the flags name: its "trained clips" would then be clips it never heard."""
    record = resolve_backbone(backbone) / "pretraining.json"
    if not record.is_file():
        return
    settings = {**ADDED_LATER, **json.loads(record.read_text(encoding="utf-8"))["settings"]}
    if differing := {key: settings.get(key) for key, value in corpus.items() if settings.get(key) != value}:
        flags = " ".join(f"--{FLAGS[key]} {value}" for key, value in differing.items())
        log.warning(
            "%s was pretrained on another ASR corpus than these flags name (pass %s): its 'trained clips' "
            "below are clips it never trained on",
            backbone,
            flags,
        )


def main(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="slu-lightning speaker-gap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", action="append", required=True, help="backbone to measure; repeatable")
    parser.add_argument(
        "--asr-size", default="large", choices=ASR_SIZES, help="ASR corpus the backbone was pretrained on"
    )
    parser.add_argument("--everyday-words", type=int, default=0, help="that corpus's everyday words")
    parser.add_argument("--extra-voices", type=int, default=0, help="that corpus's extra voices a locale")
    parser.add_argument(
        "--clips", type=positive_int, default=240, help="clips per set (the model card's sample)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parsed = parser.parse_args(args)
    corpus = {
        "corpus_size": parsed.asr_size,
        "everyday_words": parsed.everyday_words,
        "extra_voices": parsed.extra_voices,
        "seed": parsed.seed,
    }
    for backbone in parsed.backbone:
        warn_of_another_corpus(backbone, corpus)
    with tempfile.TemporaryDirectory(prefix="speaker-gap-") as folder:
        sets = gap_sets(
            Path(folder),
            parsed.asr_size,
            parsed.seed,
            parsed.everyday_words,
            parsed.clips,
            extra_voices=parsed.extra_voices,
        )
        rows = {backbone: gap_rows(backbone, sets) for backbone in parsed.backbone}
    everyday = f" with {parsed.everyday_words} everyday words" if parsed.everyday_words else ""
    voices = f" and {parsed.extra_voices} extra voices a locale" if parsed.extra_voices else ""
    print(
        f"\nGreedy CTC read-out on {len(sets['trained'])} clips per set of the ASR corpus "
        f"`{parsed.asr_size}`{everyday}{voices} (seed {parsed.seed}):\n"
    )
    print(gap_table(rows, parsed.seed))
    print("\nBy sentence kind:\n")
    print(kind_table(rows, sets))
