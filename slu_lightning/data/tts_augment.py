"""Speech synthesised for transcripts: the ``tts`` training source of the TTS-augmented regime.

When text is plentiful and speech is scarce, the first alternative to fine-tuning on text alone is
to make speech from the text. ``synthesise_manifest`` speaks every unique transcript of a training
manifest with eSpeak NG and writes a folder in the manifest format (a ``TtsCorpus``)::

    out_dir/
        train.jsonl                 # one row per unique (locale, text), with the labels of its
                                    # first row, source="tts", meta = {voice, rate, pitch, utterance}
        audio/train/<id>.flac       # 16 kHz mono, 16 bit
        corpus.json                 # config, counts, hours, config key, content hash, audio_versions

Voices come from the ``pretrain`` share of ``partition(seed, locales)``. For the seed of a demo
corpus, that share is disjoint from the voices of its SLU train and held-out splits, so synthesised
training speech never shares a voice with the real train or test speech. Each clip's voice, rate
and pitch are drawn from a generator seeded by the seed, the locale and the text, so a clip does
not depend on the other rows. The build is cached and installed as the demo corpus's is: the config
key in ``corpus.json``, a staging folder renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import unicodedata
from importlib.metadata import version
from pathlib import Path

from slu_lightning.curriculum import TTS_SOURCE
from slu_lightning.data.corpus_cache import build_cached
from slu_lightning.data.demo_corpus import Clip, Size, default_demo_dir, write_clips
from slu_lightning.data.demo_lexicon import LOCALES
from slu_lightning.data.errors import DataError
from slu_lightning.data.partition import Share, Use, partition
from slu_lightning.data.readers.manifest import read_manifest
from slu_lightning.data.records import SLUExample

log = logging.getLogger(__name__)

SPLIT = "train"
KIND = "tts"
CORPUS_FORMAT = 1
"""Bump when the layout or the synthesis procedure changes, to invalidate caches."""


def default_tts_dir(size: Size = "small", seed: int = 0) -> Path:
    """``$SLU_LIGHTNING_CACHE/tts-<size>-seed<seed>``, next to the demo corpus it speaks."""
    return default_demo_dir(size, seed).parent / f"tts-{size}-seed{seed}"


def synthesise_manifest(
    manifest: str | Path,
    out_dir: str | Path,
    *,
    seed: int = 0,
    voices: Use = "pretrain",
    workers: int | None = None,
) -> Path:
    """Speak the unique transcripts of ``manifest`` into ``out_dir``, or return at once if done.

    Args:
        manifest: A training manifest (text rows, speech rows or both); one clip is made per unique
            (locale, text), labelled like the first row with that text.
        out_dir: Folder to create. An existing TTS corpus with another config is replaced; any other
            non-empty folder is left alone and raises ``FileExistsError``.
        seed: Decides the voice partition and each clip's voice, rate and pitch. Use the seed of the
            demo corpus whose train and held-out voices the synthesised speech must avoid.
        voices: Which share of the partition speaks: ``pretrain`` (default, no SLU split's voices)
            or ``train`` (the voices of the demo's SLU train split). ``heldout`` is refused: those
            voices speak the dev and test splits.
        workers: Synthesis processes, as in ``make_demo_corpus``; the files do not depend on it.

    Returns:
        ``out_dir``.

    Raises:
        DataError: the manifest has no rows, or a locale that has no eSpeak voices here.
    """
    if voices not in ("pretrain", "train"):
        raise ValueError(
            f"voices must be 'pretrain' or 'train', got {voices!r} (held-out voices speak dev/test)"
        )
    manifest, out_dir = Path(manifest).resolve(), Path(out_dir).resolve()
    rows = unique_texts(read_manifest(manifest))
    locales = _voiced_locales(rows, manifest)
    _warn_spelled_out(rows, manifest)
    shares = {locale: share[voices] for locale, share in partition(seed, locales).items()}
    config = {
        "format": CORPUS_FORMAT,
        "kind": KIND,
        "seed": seed,
        "voices": voices,
        "shares": {locale: [share.voices, share.rate, share.pitch] for locale, share in shares.items()},
        "rows": _rows_hash(rows),
        "versions": {"espeakng-loader": version("espeakng-loader")},
    }

    def build(staging: Path) -> dict:
        clips = [_plan(staging, row, shares[row.locale], seed) for row in rows]
        return {
            "config": config,
            "manifest": str(manifest),
            **write_clips(staging, {SPLIT: clips}, locales, workers, "transcripts"),
        }

    return build_cached(out_dir, config, "a TTS corpus", build)


def _voiced_locales(rows: list[SLUExample], manifest: Path) -> list[str]:
    """The locales of ``rows``, sorted; a clear error if there are none or one has no voices."""
    if not rows:
        raise DataError("the manifest has no rows to synthesise", file=str(manifest))
    locales = sorted({row.locale for row in rows})
    unsupported = [locale for locale in locales if locale not in LOCALES]
    if unsupported:
        raise DataError(
            f"no eSpeak voices for locale(s) {', '.join(unsupported)}: voices are assigned for "
            f"{', '.join(LOCALES)} only",
            file=str(manifest),
        )
    return locales


def spelled_out(text: str) -> list[str]:
    """The characters of ``text`` that a voice of the demo's Latin-script locales does not read as
    part of a word: letters of other scripts and symbols such as emoji, which eSpeak names or reads
    by another language's rules. "allume la lumière Москва" lasts 4.7 s in ``fr+m3``, 0.8 s
    without the name."""
    return [
        char
        for char in text
        if (char.isalpha() and not unicodedata.name(char, "").startswith("LATIN"))
        or unicodedata.category(char) == "So"
    ]


def _warn_spelled_out(rows: list[SLUExample], manifest: Path) -> None:
    """Such clips no longer say their transcript; say how many there are, and where."""
    odd = [row for row in rows if spelled_out(row.text)]
    if odd:
        log.warning(
            "%d of %d transcripts in %s hold letters of another script or symbols (emoji) that the "
            "voices name or read by another language's rules, so their clips do not say the "
            "transcript as written; e.g. %s: %r",
            len(odd),
            len(rows),
            manifest,
            odd[0].utterance_id,
            odd[0].text,
        )


def unique_texts(examples: list[SLUExample]) -> list[SLUExample]:
    """The first example of each (locale, text), in first-seen order: one clip per transcript."""
    seen: dict[tuple[str, str], SLUExample] = {}
    for example in examples:
        seen.setdefault((example.locale, example.text), example)
    return list(seen.values())


def _rows_hash(rows: list[SLUExample]) -> str:
    """What the clips say and are labelled with (not where the manifest's audio lies)."""
    labels = [
        [
            row.utterance_id,
            row.locale,
            row.text,
            row.scenario,
            row.action,
            [[e.type, e.filler] for e in row.entities],
        ]
        for row in rows
    ]
    return hashlib.sha256(json.dumps(labels, ensure_ascii=False).encode()).hexdigest()[:16]


def _plan(root: Path, row: SLUExample, share: Share, seed: int) -> Clip:
    """The clip of one transcript: its id names the text (stable whatever the other rows are)."""
    rng = random.Random(f"tts:{seed}:{row.locale}:{row.text}")
    voice = rng.choice(share.voices)
    rate, pitch = rng.randint(*share.rate), rng.randint(*share.pitch)
    text_hash = hashlib.sha256(f"{row.locale}\n{row.text}".encode()).hexdigest()[:12]
    clip_id = f"tts-{row.locale.lower()}-{text_hash}"
    path = root / "audio" / SPLIT / f"{clip_id}.flac"
    example = SLUExample(
        id=clip_id,
        locale=row.locale,
        text=row.text,
        scenario=row.scenario,
        action=row.action,
        entities=row.entities,
        audio=str(path),
        source=TTS_SOURCE,
        meta={"voice": voice, "rate": str(rate), "pitch": str(pitch), "utterance": row.utterance_id},
    )
    return Clip(SPLIT, example, voice, rate, pitch, path)
