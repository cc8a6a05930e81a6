"""Build the synthetic multilingual spoken SLU corpus that the demo, the tests and the README run on.

``make_demo_corpus`` renders templates from ``demo_lexicon`` with eSpeak NG voices from
``partition`` and writes a folder in the manifest format::

    out_dir/
        train.jsonl  dev.jsonl  test.jsonl      # one SLUExample per line (readers/manifest.py)
        audio/<split>/<id>.flac                 # 16 kHz mono, 16 bit
        corpus.json                             # config, counts, hours, content hash, audio_versions

Every intent appears in every split of every locale; dev and test use only held-out voices and
templates. The same arguments give byte-identical files with the same audio libraries (their
versions, ``audio_versions()``, are recorded in ``corpus.json``), and the folder is a cache keyed by
its config (``corpus_cache``): a second call with the same config returns at once, and an
interrupted build never leaves a folder that looks finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

import soundfile
import torch
from tqdm import tqdm

from slu_lightning.data import demo_lexicon
from slu_lightning.data.corpus_cache import build_cached
from slu_lightning.data.demo_lexicon import INTENTS, LOCALES, TEMPLATES, SlotSampler
from slu_lightning.data.partition import Share, Use, partition
from slu_lightning.data.readers.manifest import write_manifest
from slu_lightning.data.records import SLUExample
from slu_lightning.data.tts import SAMPLE_RATE, EspeakSynthesizer

Size = Literal["tiny", "small", "large"]
SPLITS = ("train", "dev", "test")
SPLIT_USE: dict[str, Use] = {"train": "train", "dev": "heldout", "test": "heldout"}

SIZES: dict[str, dict[str, int]] = {
    # utterances per locale and split; every split needs >= len(INTENTS) (26) to hold every intent
    "tiny": {"train": 26, "dev": 26, "test": 26},  # tests: one utterance per intent and split
    "small": {"train": 500, "dev": 80, "test": 160},  # the README demo: 2.2 h of audio, ~1 min on 2 cores
    "large": {"train": 4000, "dev": 400, "test": 800},  # ~16 h of audio, ~1.2 GB (estimated)
}
CORPUS_FORMAT = 1
"""Bump when the corpus layout or the generation procedure changes, to invalidate caches."""


def default_demo_dir(size: Size = "small", seed: int = 0) -> Path:
    """``$SLU_LIGHTNING_CACHE/demo-<size>-seed<seed>``, the cache defaulting to ``~/.cache/slu-lightning``."""
    cache = Path(os.environ.get("SLU_LIGHTNING_CACHE", Path.home() / ".cache" / "slu-lightning"))
    return cache / f"demo-{size}-seed{seed}"


@dataclass(frozen=True)
class Clip:
    """One utterance to synthesise, and where its audio goes."""

    split: str
    example: SLUExample
    voice: str
    rate: int
    pitch: int
    path: Path


def make_demo_corpus(
    out_dir: str | Path,
    *,
    size: Size = "small",
    seed: int = 0,
    locales: Sequence[str] | None = None,
    workers: int | None = None,
) -> Path:
    """Build the demo corpus in ``out_dir``, or return at once if it is already there.

    Args:
        out_dir: Folder to create. An existing corpus with another config is replaced; any other
            non-empty folder is left alone and raises ``FileExistsError``.
        size: ``tiny`` (tests), ``small`` (the README demo) or ``large``; see ``SIZES``.
        seed: Decides the voice/template partition, the sentences and the voices of each clip.
        locales: Subset of ``LOCALES`` (default: all six). A locale's data does not depend on
            which other locales are built.
        workers: Synthesis processes. By default one per CPU core for builds of 2000 clips and more;
            smaller builds run in the calling process, as starting workers would cost more than
            it saves. The files do not depend on it.

    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir).resolve()
    locales = checked_locales(locales, size, SIZES)
    config = {
        "format": CORPUS_FORMAT,
        "size": size,
        "sizes": SIZES[size],
        "seed": seed,
        "locales": locales,
        "lexicon": demo_lexicon.lexicon_fingerprint(),
        "versions": {name: version(name) for name in ("espeakng-loader", "faker", "babel", "num2words")},
    }
    build = partial(_build, config=config, seed=seed, locales=locales, workers=workers)
    return build_cached(out_dir, config, "a demo corpus", build)


def checked_locales(locales: Sequence[str] | None, size: str, sizes: dict[str, dict[str, int]]) -> list[str]:
    """The locales to build (default: all six), refusing an unknown locale or size by name, and a
    locale named twice: its clips would be planned twice, under the same ids and paths."""
    locales = list(locales or LOCALES)
    unknown = sorted(set(locales) - set(LOCALES))
    if unknown or size not in sizes:
        raise ValueError(f"unknown locales {unknown} or size {size!r}: choose from {LOCALES}, {list(sizes)}")
    repeated = sorted({locale for locale in locales if locales.count(locale) > 1})
    if repeated:
        raise ValueError(f"locales {repeated} are named more than once in {locales}: name each once")
    return locales


def demo_texts(
    split: str, per_locale: int, seed: int = 0, locales: Sequence[str] = LOCALES
) -> list[SLUExample]:
    """The ``per_locale`` utterances per locale that a demo corpus of ``seed`` with that many plans
    for ``split``, as text rows and without synthesis: text is plentiful where speech is not. With a
    larger ``per_locale`` than a corpus has, it is more text of the same split (templates, slots)."""
    shares = partition(seed, list(locales))
    return [
        clip.example.as_text()
        for locale in locales
        for clip in _plan(Path("."), split, locale, shares[locale][SPLIT_USE[split]], per_locale, seed)
    ]


def _build(root: Path, config: dict, seed: int, locales: list[str], workers: int | None) -> dict:
    """Write manifests and audio under ``root``; returns the summary for ``corpus.json``."""
    shares = partition(seed, locales)
    clips: dict[str, list[Clip]] = {split: [] for split in SPLITS}
    for split in SPLITS:
        for locale in locales:
            share = shares[locale][SPLIT_USE[split]]
            clips[split] += _plan(root, split, locale, share, config["sizes"][split], seed)
    return {"config": config, **write_clips(root, clips, locales, workers)}


def write_clips(
    root: Path,
    clips: dict[str, list[Clip]],
    locales: list[str],
    workers: int | None,
    what: str = "demo corpus",
) -> dict:
    """Synthesise every planned clip and write one manifest per split (the keys of ``clips``);
    ``what`` names the corpus on the progress bar.

    Returns the counts per split and locale, the hours of audio, a hash of all written bytes and
    the ``audio_versions()`` that made them; the ASR pretraining corpus is written the same way.
    """
    splits = list(clips)
    all_clips = [clip for split in splits for clip in clips[split]]
    for split in splits:
        (root / "audio" / split).mkdir(parents=True)
    if workers is None:  # a spawned worker takes seconds to start (torch): worth it from ~1000 clips
        workers = max(1, min(os.cpu_count() or 1, len(all_clips) // 1000))
    durations = _synthesise(all_clips, workers, what)

    digest = hashlib.sha256()
    for split in splits:
        manifest = write_manifest(root / f"{split}.jsonl", [clip.example for clip in clips[split]])
        digest.update(manifest.read_bytes())
    for clip in all_clips:
        digest.update(clip.path.read_bytes())
    seconds = dict.fromkeys(splits, 0.0)
    for clip, duration in zip(all_clips, durations, strict=True):
        seconds[clip.split] += duration
    return {
        "counts": {
            split: {locale: sum(c.example.locale == locale for c in clips[split]) for locale in locales}
            for split in splits
        },
        "hours_per_split": {split: round(seconds[split] / 3600, 4) for split in splits},
        "hours": round(sum(seconds.values()) / 3600, 4),
        "content_sha256": digest.hexdigest(),
        "audio_versions": audio_versions(),
    }


def audio_versions() -> dict[str, str]:
    """The versions of what turns a clip's text into its file's bytes: eSpeak NG (espeakng-loader),
    the 22.05 -> 16 kHz resampler (torch, torchaudio) and the FLAC encoder (soundfile and its
    libsndfile, whose libFLAC vendor string every file embeds).

    A corpus records them, to say why two machines' bytes differ; they are not in its config key,
    so upgrading torch does not rebuild (and possibly change) a corpus that results were made on.
    """
    return {
        **{name: version(name) for name in ("espeakng-loader", "soundfile", "torch", "torchaudio")},
        "libsndfile": soundfile.__libsndfile_version__,
    }


def _plan(root: Path, split: str, locale: str, share: Share, count: int, seed: int) -> list[Clip]:
    """The utterances of one split and locale: intents in shuffled rounds, so each appears evenly."""
    rng = random.Random(f"corpus:{seed}:{split}:{locale}")
    sampler = SlotSampler(locale, f"slots:{seed}:{split}:{locale}")
    intents: list[str] = []
    while len(intents) < count:
        intents += rng.sample(INTENTS, len(INTENTS))
    clips = []
    for index, intent in enumerate(intents[:count]):
        template = rng.choice(share.templates[intent])
        text, entities = demo_lexicon.render(TEMPLATES[locale][intent][template], sampler)
        voice = rng.choice(share.voices)
        rate, pitch = rng.randint(*share.rate), rng.randint(*share.pitch)
        utterance_id = f"demo-{locale.lower()}-{split}-{index:05d}"
        path = root / "audio" / split / f"{utterance_id}.flac"
        scenario, action = demo_lexicon.split_intent(intent)
        meta = {"voice": voice, "rate": str(rate), "pitch": str(pitch), "template": f"{intent}/{template}"}
        example = SLUExample(
            id=utterance_id,
            locale=locale,
            text=text,
            scenario=scenario,
            action=action,
            entities=entities,
            audio=str(path),
            source="demo",
            meta=meta,
        )
        clips.append(Clip(split, example, voice, rate, pitch, path))
    return clips


def _synthesise(clips: list[Clip], workers: int, what: str) -> list[float]:
    """Speak and write every clip, with a progress bar; returns their durations in seconds."""
    progress = dict(total=len(clips), desc=f"synthesising {what}", unit="clip", leave=False)
    if workers <= 1:
        with _single_torch_thread():
            return [_speak_and_write(clip) for clip in tqdm(clips, **progress)]
    context = get_context("spawn")  # a clean process: no inherited torch threads or locks
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=torch.set_num_threads, initargs=(1,))
    with pool:
        return list(tqdm(pool.map(_speak_and_write, clips, chunksize=32), **progress))


@contextlib.contextmanager
def _single_torch_thread() -> Iterator[None]:
    """Resampling short clips is fastest on one thread; more threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _speak_and_write(clip: Clip) -> float:
    """Speak one clip into its FLAC file; returns its duration. Text the voice cannot speak (a NUL,
    only punctuation) stops the build with the clip named: a silent clip would be a wrong label."""
    try:
        audio = EspeakSynthesizer().synthesize(clip.example.text, clip.voice, clip.rate, clip.pitch)
    except ValueError as error:
        raise ValueError(f"clip {clip.example.id} of split {clip.split}: {error}") from error
    soundfile.write(clip.path, audio, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    return len(audio) / SAMPLE_RATE
