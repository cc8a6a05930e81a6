"""Utterances spoken again by other voices: who speaks a test set, apart from what is said.

Every voice the partition hands out (pretraining, SLU train, held-out) is one of eSpeak NG's
``m1``-``m7``, ``f1``-``f4`` or a language's default: one family of formant settings. A
recogniser that hears the held-out voices may still be deaf to the 93 variants outside it.
``respoken`` re-plans examples under new voices (same ids, texts, rates and pitches, so results
pair by id); ``make_unheard_test`` speaks a demo corpus's test split that way, once, cached.

    demo-small-seed0-test-unheard/
        test.jsonl          # the demo's test rows, each spoken by a variant outside the family
        audio/test/<id>.flac
        corpus.json         # config (the demo corpus's key, seed), counts, hours, content hash
"""

from __future__ import annotations

import dataclasses
import random
from importlib.metadata import version
from pathlib import Path

from slu_lightning.data.corpus_cache import build_cached, finished_key
from slu_lightning.data.demo_corpus import Clip, write_clips
from slu_lightning.data.partition import unheard_voices
from slu_lightning.data.readers.manifest import read_manifest
from slu_lightning.data.records import SLUExample

KIND = "test-unheard"
FORMAT = 2  # 2: eSpeak's alias of the default voice left out, extra voices excluded
"""Bump when the layout or the voice draw changes, to invalidate caches."""


def respoken(examples: list[SLUExample], voices: list[str], out_dir: Path, split: str) -> list[SLUExample]:
    """``examples`` to be spoken again under ``out_dir/audio/<split>``, each by its voice in
    ``voices`` at its own rate and pitch; same ids and texts."""
    return [
        dataclasses.replace(
            example,
            audio=str(out_dir / "audio" / split / f"{example.id}.flac"),
            meta={**example.meta, "voice": voice},
        )
        for example, voice in zip(examples, voices, strict=True)
    ]


def in_unheard_voices(
    examples: list[SLUExample],
    out_dir: Path,
    extra_voices: int = 0,
    seed: int = 0,
    split: str = "unheard",
    pretrain_seed: int | None = None,
) -> list[SLUExample]:
    """``examples`` to be spoken again under ``out_dir/audio/<split>``, each by one of its locale's
    ``unheard_voices`` (drawn with ``seed``) at its own rate and pitch; same ids and texts. The
    ``extra_voices`` a pretraining with ``pretrain_seed`` (default: ``seed``) drew are left out."""
    rng = random.Random(f"unheard-voices:{seed}")
    drawn_with = seed if pretrain_seed is None else pretrain_seed
    locales = {example.locale for example in examples}
    pools = {locale: unheard_voices(locale, extra_voices, drawn_with) for locale in locales}
    voices = [rng.choice(pools[example.locale]) for example in examples]
    return respoken(examples, voices, out_dir, split)


def clip_of(split: str, example: SLUExample) -> Clip:
    """The clip to synthesise for a planned ``example``, in its own voice, rate and pitch."""
    meta = example.meta
    return Clip(split, example, meta["voice"], int(meta["rate"]), int(meta["pitch"]), Path(example.audio))


def speak(
    out_dir: Path, split: str, examples: list[SLUExample], workers: int | None = 1, what: str = "speaking"
) -> dict:
    """Synthesise re-planned ``examples`` as ``split`` of ``out_dir`` (audio and manifest), each in its
    own voice, rate and pitch; returns ``write_clips``'s summary."""
    locales = sorted({example.locale for example in examples})
    return write_clips(out_dir, {split: [clip_of(split, e) for e in examples]}, locales, workers, what)


def unheard_test_dir(demo_root: Path) -> Path:
    """Where ``make_unheard_test`` puts a demo corpus's respoken test split: beside it."""
    return demo_root.with_name(f"{demo_root.name}-test-unheard")


def make_unheard_test(
    demo_root: str | Path, seed: int = 0, workers: int | None = None, excluded_extra_voices: int = 0
) -> Path:
    """Speak the test split of the finished demo corpus at ``demo_root`` again, each utterance by an
    eSpeak variant outside the partition's voice family (drawn with ``seed``) that no pretraining
    with ``--extra-voices excluded_extra_voices`` (seed 0) heard, into ``unheard_test_dir(demo_root)``;
    return at once if that is done for this corpus, seed and exclusion."""
    demo_root = Path(demo_root).resolve()
    demo_key, out_dir = finished_key(demo_root), unheard_test_dir(demo_root)
    if demo_key is None:
        raise FileNotFoundError(f"{demo_root} holds no finished demo corpus to speak again")
    config = {"format": FORMAT, "kind": KIND, "demo": demo_key, "seed": seed}
    config["excluded_extra_voices"] = excluded_extra_voices
    config["versions"] = {"espeakng-loader": version("espeakng-loader")}

    def build(staging: Path) -> dict:
        test = read_manifest(demo_root / "test.jsonl")
        unheard = in_unheard_voices(test, staging, excluded_extra_voices, seed, "test", pretrain_seed=0)
        return {"config": config, **speak(staging, "test", unheard, workers, "unheard voices")}

    return build_cached(out_dir, config, "an unheard-voice test split", build)
