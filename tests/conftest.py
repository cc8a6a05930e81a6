"""Shared fixtures: a tiny backbone and a small spoken corpus, built once per test session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

# Build cached backbones and corpora in a throw-away folder, never in the user's cache.
os.environ.setdefault("SLU_LIGHTNING_CACHE", tempfile.mkdtemp(prefix="slu-lightning-test-cache-"))

from slu_lightning.data.readers.manifest import write_manifest  # noqa: E402
from slu_lightning.data.records import Entity, SLUExample  # noqa: E402

INTENTS = [("alarm", "set", "time"), ("weather", "query", "place_name"), ("music", "play", "artist_name")]
WORDS = ["seven", "paris", "adele", "nine", "rome", "queen"]


@pytest.fixture(scope="session")
def tiny_backbone() -> Path:
    from slu_lightning.model.tiny import ensure_tiny_backbone

    return ensure_tiny_backbone("tiny-test")


def make_toy_corpus(root: Path, n_train: int = 24, n_eval: int = 8, seed: int = 0) -> Path:
    """Manifests whose audio is random noise: enough to exercise every code path quickly."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("dev", n_eval), ("test", n_eval)):
        examples = []
        for i in range(n):
            scenario, action, etype = INTENTS[i % len(INTENTS)]
            filler = WORDS[(i * 7 + len(split)) % len(WORDS)]
            locale = "en-US" if i % 4 else "fr-FR"
            audio = root / "audio" / split / f"{split}-{i}.flac"
            audio.parent.mkdir(parents=True, exist_ok=True)
            seconds = 0.6 + 0.9 * rng.random()
            sf.write(audio, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)
            examples.append(
                SLUExample(
                    id=f"{split}-{i}",
                    locale=locale,
                    text=f"{action} {scenario} {filler}",
                    scenario=scenario,
                    action=action,
                    entities=(Entity(etype, filler),),
                    audio=str(audio),
                    source="toy",
                )
            )
        write_manifest(root / f"{split}.jsonl", examples)
    return root


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory) -> Path:
    return make_toy_corpus(tmp_path_factory.mktemp("toy-corpus"))
