"""Which speakers does the ear hear? The same sentences from every unused eSpeak variant, one row each.

Every voice of the partition (pretraining, SLU train, held-out) is one of eSpeak NG's ``m1``-``m7``,
``f1``-``f4`` or a language's default: one family of formant settings. ``--extra-voices N`` draws
N more from the 93 variants no split uses. This has every unused variant (or ``--variants``) speak
the same held-out template sentences (the text nearest the SLU requests) at each clip's own rate
and pitch, scores the backbone's greedy CTC read-out per variant, and pools the variants, apart for
those ``--extra-voices N`` draws in each sentence's locale, paired over sentences against the
held-out voices the model card hears. The four-voice ear hears 8 of the 93 within 0.1 WER of the
held-out voices and 67 at 0.9 or worse; twelve extra voices a locale bring the ones it never heard
from 0.89 to 0.55 (``docs/pretraining-log.md``, *Which speakers the ear hears*).

    python -m benchmarks.voice_probe --backbone logs/pretrain/ear-control/backbone --everyday-words 5000
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

import numpy as np

from slu_lightning.data.asr_corpus import plan_asr_corpus
from slu_lightning.data.demo_corpus import Clip, write_clips
from slu_lightning.data.demo_lexicon import STYLES
from slu_lightning.data.partition import extra_pretrain_voices, unused_variants, voice_name
from slu_lightning.data.records import SLUExample
from slu_lightning.data.respeak import clip_of, respoken
from slu_lightning.data.tts import voice_variants
from slu_lightning.pretrain.coverage import paired_wer, pooled_wer
from slu_lightning.pretrain.speaker_gap import gap_rows


def template_sentences(out_dir: Path, per_locale: int, everyday_words: int, seed: int) -> list[SLUExample]:
    """``per_locale`` held-out template sentences of each locale, as the held-out voices speak them."""
    heldout = plan_asr_corpus(out_dir, size="large", seed=seed, everyday_words=everyday_words)["heldout"]
    rng, chosen = random.Random(f"voice-probe:{seed}"), []
    for locale in sorted({example.locale for example in heldout}):
        mine = [e for e in heldout if e.locale == locale and e.meta["kind"] == "template"]
        chosen += rng.sample(mine, min(per_locale, len(mine)))
    return chosen


def spoken_by(examples: list[SLUExample], variant: str, split: str, out_dir: Path) -> list[Clip]:
    """``examples`` spoken again by ``variant`` of each one's language, at its own rate and pitch."""
    voices = [voice_name(STYLES[example.locale].espeak, variant) for example in examples]
    return [clip_of(split, example) for example in respoken(examples, voices, out_dir, split)]


def drawn_mask(variants: list[str], sentences: list[SLUExample], count: int, seed: int) -> np.ndarray:
    """Whether each variant, in each sentence's locale, is among the ``count`` extra pretraining
    voices ``--extra-voices`` draws there; shape (variants, sentences)."""
    locales = {sentence.locale for sentence in sentences}
    extra = {locale: set(extra_pretrain_voices(locale, count, seed)) for locale in locales}
    return np.array(
        [[voice_name(STYLES[s.locale].espeak, v) in extra[s.locale] for s in sentences] for v in variants]
    )


def variant_rows(backbone: str, heldout: list[SLUExample], spoken: dict[str, list[SLUExample]]) -> dict:
    """``word_error_rows`` of ``backbone`` on the held-out voices' clips and on each variant's,
    transcribed in one pass."""
    clips = heldout + [example for examples in spoken.values() for example in examples]
    everything = gap_rows(backbone, {"all": clips})["all"]
    chunks = np.split(everything, len(spoken) + 1)  # every set holds the same sentences, in order
    return {"held-out voices": chunks[0]} | dict(zip(spoken, chunks[1:], strict=True))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", action="append", required=True, help="backbone to measure; repeatable")
    parser.add_argument("--everyday-words", type=int, default=0, help="the ASR corpus's everyday words")
    parser.add_argument("--per-locale", type=int, default=8, help="template sentences per locale")
    parser.add_argument(
        "--extra-voices",
        type=int,
        default=0,
        help="also pool apart the variants --extra-voices N draws in each locale, and the rest",
    )
    parser.add_argument("--variants", nargs="+", help="variants to hear (default: every unused one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    variants = args.variants or unused_variants()
    unknown = sorted(set(variants) - voice_variants())
    if unknown:
        parser.error(f"unknown eSpeak variants {unknown}; installed: {sorted(voice_variants())}")
    with tempfile.TemporaryDirectory(prefix="voice-probe-") as folder:
        out_dir = Path(folder)
        heldout = template_sentences(out_dir, args.per_locale, args.everyday_words, args.seed)
        splits = {variant: f"v{i:03d}" for i, variant in enumerate(variants)}  # names may hold spaces
        clips = {"heldout": [clip_of("heldout", example) for example in heldout]}
        clips |= {split: spoken_by(heldout, variant, split, out_dir) for variant, split in splits.items()}
        write_clips(out_dir, clips, sorted({e.locale for e in heldout}), workers=2, what="voices")
        spoken = {variant: [clip.example for clip in clips[split]] for variant, split in splits.items()}
        rows = {backbone: variant_rows(backbone, heldout, spoken) for backbone in args.backbone}
    print(f"\nGreedy CTC read-out WER on {len(heldout)} held-out template sentences, spoken by each voice:\n")
    print("| voice | " + " | ".join(args.backbone) + " |\n|---|" + "---|" * len(args.backbone))
    first = rows[args.backbone[0]]
    for voice in sorted(first, key=lambda name: (name != "held-out voices", pooled_wer(first[name]))):
        print(f"| {voice} | " + " | ".join(f"{pooled_wer(rows[b][voice]):.3f}" for b in args.backbone) + " |")
    drawn = drawn_mask(list(spoken), heldout, args.extra_voices, args.seed)  # (variants, sentences)
    groups = {"every variant heard": np.ones_like(drawn)}
    if args.extra_voices:
        groups |= {f"drawn by --extra-voices {args.extra_voices}": drawn, "not drawn": ~drawn}
    print("\nVariants pooled, against the held-out voices (paired over sentences):\n")
    print("| backbone | voices | CTC WER | against held-out voices [95 % CI] |\n|---|---|---|---|")
    for backbone, by_voice in rows.items():
        stacked = np.stack([by_voice[variant] for variant in spoken])  # (variants, sentences, 2)
        for name, chosen in groups.items():
            heard = chosen.any(0)  # (sentences,): a sentence some chosen variant spoke
            if heard.any():
                pooled = (stacked * chosen[..., None]).sum(0)[heard] / chosen.sum(0)[heard, None]
                gap = paired_wer(by_voice["held-out voices"][heard], pooled, args.seed)
                print(
                    f"| {backbone} | {name} | {pooled_wer(pooled):.3f} | "
                    f"{gap.difference:+.3f} [{gap.low:+.3f}, {gap.high:+.3f}] |"
                )


if __name__ == "__main__":
    main()
