"""Corpora as config objects: where a run's train/dev/test examples come from.

A DataModule takes one ``Corpus`` (swappable by ``class_path`` in YAML). Each corpus returns speech
examples and text examples per split; by default the text view is one example per utterance,
built from the speech examples' transcripts.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Literal

from slu_lightning.data.errors import ConfigError, DataError, SkipLog
from slu_lightning.data.readers.manifest import read_manifest
from slu_lightning.data.records import SLUExample
from slu_lightning.pretrain.domain_lm import require_fused_readout

Split = Literal["train", "dev", "test"]
log = logging.getLogger(__name__)


class Corpus:
    """Base class: override ``speech`` (and ``text`` where the corpus has more text than speech)."""

    def prepare(self) -> None:
        """Build or check files once, on one process (called from ``prepare_data``)."""

    def speech(self, split: Split, skips: SkipLog) -> list[SLUExample]:
        raise NotImplementedError

    def text(self, split: Split, skips: SkipLog) -> list[SLUExample]:
        return unique_utterances(self.speech(split, skips))

    def describe(self) -> str:
        return type(self).__name__

    def offered_locales(self, split: Split) -> set[str] | None:
        """The locales ``split`` can hold as far as the corpus's settings tell, no file read (a
        sweep checks the data module's locale names against them before any cell starts); None
        where only reading the split tells."""
        return None

    def test_tag(self) -> str:
        """A short name for this corpus's test recordings, for files derived from them (a cascade's
        transcripts), so two corpora never meet at one default path: a digest of ``describe()``."""
        return hashlib.sha256(self.describe().encode()).hexdigest()[:8]


def unique_utterances(speech: list[SLUExample]) -> list[SLUExample]:
    """One text example per utterance, in first-seen order."""
    seen: dict[str, SLUExample] = {}
    for example in speech:
        seen.setdefault(example.utterance_id, example.as_text())
    return list(seen.values())


class ReaderCorpus(Corpus):
    """A corpus whose reader gives a split either way (``_read``): its transcripts are read without
    the audio, so a text-only run neither loads the recordings nor loses a transcript whose
    recording is bad."""

    def speech(self, split: Split, skips: SkipLog) -> list[SLUExample]:
        return self._read(split, "speech", skips)

    def text(self, split: Split, skips: SkipLog) -> list[SLUExample]:
        return unique_utterances(self._read(split, "text", skips))

    def _read(self, split: Split, modality: Literal["speech", "text"], skips: SkipLog) -> list[SLUExample]:
        raise NotImplementedError


class ManifestCorpus(Corpus):
    """Your own data: one manifest JSONL per split (see ``data/readers/manifest.py``)."""

    def __init__(self, train: str, dev: str, test: str | None = None):
        """
        Args:
            train: path of the training manifest.
            dev: path of the validation manifest.
            test: path of the test manifest (defaults to ``dev``).
        """
        self.paths = {"train": train, "dev": dev, "test": test or dev}

    def speech(self, split: Split, skips: SkipLog) -> list[SLUExample]:
        return [e for e in read_manifest(self.paths[split], skips) if e.is_speech]

    def text(self, split: Split, skips: SkipLog) -> list[SLUExample]:
        return unique_utterances(read_manifest(self.paths[split], skips))

    def describe(self) -> str:
        return f"manifests {self.paths}"


class DemoCorpus(ManifestCorpus):
    """The synthetic multilingual spoken SLU corpus, built offline with eSpeak NG on first use."""

    def __init__(
        self,
        size: Literal["tiny", "small", "large"] = "small",
        seed: int = 0,
        root: str | None = None,
        test_voices: Literal["heldout", "unheard"] = "heldout",
        unheard_excludes: int = 12,
    ):
        """
        Args:
            size: ``tiny`` (tests), ``small`` (the README demo, a few minutes to build) or ``large``.
            seed: seeds the texts, voices and held-out split; the same seed rebuilds the same corpus.
            root: where to build it; defaults to the cache (``$SLU_LIGHTNING_CACHE`` or ~/.cache).
            test_voices: who speaks the test split: ``heldout``, the partition's held-out voices
                (new speakers of the voice family every split draws from), or ``unheard``, the
                same utterances each spoken by an eSpeak variant outside that family (built beside
                the corpus on first use; ids unchanged, so results pair with ``heldout``'s).
            unheard_excludes: the ``unheard`` voices leave out the variants a stand-in pretrained
                with ``pretrain-tiny --extra-voices`` up to this many (seed 0) heard: 12 covers both
                bundled stand-ins (``tiny-heard``: 0, ``tiny-heard-voices``: 12).
        """
        from slu_lightning.data.demo_corpus import default_demo_dir
        from slu_lightning.data.respeak import unheard_test_dir

        if test_voices not in ("heldout", "unheard"):
            raise ValueError(f"test_voices must be 'heldout' or 'unheard', got {test_voices!r}")
        self.size, self.seed, self.test_voices = size, seed, test_voices
        self.unheard_excludes = unheard_excludes
        self.root = Path(root) if root else default_demo_dir(size, seed)
        test_root = unheard_test_dir(self.root) if test_voices == "unheard" else self.root
        super().__init__(
            *(str(self.root / f"{split}.jsonl") for split in ("train", "dev")), str(test_root / "test.jsonl")
        )

    def prepare(self) -> None:
        from slu_lightning.data.demo_corpus import make_demo_corpus
        from slu_lightning.data.respeak import make_unheard_test

        make_demo_corpus(self.root, size=self.size, seed=self.seed)
        if self.test_voices == "unheard":
            make_unheard_test(self.root, seed=self.seed, excluded_extra_voices=self.unheard_excludes)

    def offered_locales(self, split: Split) -> set[str] | None:
        from slu_lightning.data.demo_lexicon import LOCALES

        return set(LOCALES)  # every split of every size holds them all

    def describe(self) -> str:
        voices = ", test split in unheard voices" if self.test_voices == "unheard" else ""
        return f"demo corpus ({self.size}, seed {self.seed}{voices}) at {self.root}"

    def test_tag(self) -> str:
        """What sets these test recordings apart from the README demo's (empty for those):
        ``tiny-seed1-unheard``, with a digest of the root when it is not the cache's."""
        from slu_lightning.data.demo_corpus import default_demo_dir

        parts = [self.size] if self.size != "small" else []
        parts += [f"seed{self.seed}"] if self.seed != 0 else []
        parts += ["unheard"] if self.test_voices == "unheard" else []
        if self.root.resolve() != default_demo_dir(self.size, self.seed).resolve():
            parts.append(hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:8])
        return "-".join(parts)


class CascadeCorpus(Corpus):
    """The cascade baseline's corpus: ``base`` for training and validation; for test, one text row per
    test recording of ``base``, its text the recogniser's transcript, gold labels kept. Test a
    text-fine-tuned checkpoint on it with ``eval_modality: text``.

    With a ``recogniser``, ``prepare`` transcribes ``base``'s test speech into ``transcripts`` on first
    use and reuses the file after that (refusing one made by another recogniser or of other audio);
    without one, ``transcripts`` is the file ``slu-lightning transcribe --out`` wrote."""

    def __init__(
        self,
        base: Corpus,
        transcripts: str | None = None,
        recogniser: str | None = None,
        readout: Literal["ctc", "decoder", "rescored"] = "ctc",
        batch_size: int = 32,
        domain_lm: bool = False,
    ):
        """
        Args:
            base: the corpus the parser was trained on.
            transcripts: the text manifest of the test recordings' transcripts; by default, with a
                ``recogniser``, ``default_transcripts``'s file for it, its read-out and ``base``'s test
                recordings.
            recogniser: backbone that writes ``transcripts`` when it is missing (a bundled stand-in
                such as ``tiny-heard``, or a ``pretrain-tiny`` export); None: the file must exist.
            readout: how the recogniser transcribes: greedy CTC over its audio vectors, its decoder,
                or the CTC beam rescored by the decoder (``pretrain/rescoring.py``).
            batch_size: clips per transcription batch.
            domain_lm: join a language model of ``base``'s training text to the rescored read-out
                (``pretrain/domain_lm.py``): the text the parser learns from, spent on the
                recogniser too.
        """
        if domain_lm:
            require_fused_readout(readout)
        if transcripts is None and recogniser is None:
            raise ValueError("a cascade corpus needs its `transcripts` file, or a `recogniser` to write it")
        self.base = base
        self.transcripts = Path(
            transcripts or default_transcripts(recogniser, readout, domain_lm, base.test_tag())
        )
        self.recogniser, self.readout, self.batch_size = recogniser, readout, batch_size
        self.domain_lm = domain_lm

    def prepare(self) -> None:
        self.base.prepare()
        if self.recogniser is None:
            if not self.transcripts.is_file():
                raise DataError(
                    "no transcripts: write them with `slu-lightning transcribe --out`, or set "
                    "`recogniser` to have them written on first use",
                    file=str(self.transcripts),
                )
            return
        from slu_lightning.experiments.cascade import Recogniser, ensure_transcripts

        speech = self.base.speech("test", SkipLog())
        texts = [example.text for example in self.base.text("train", SkipLog())] if self.domain_lm else None
        recogniser = Recogniser(self.recogniser, self.readout, self.batch_size, texts)
        ensure_transcripts(recogniser, speech, self.transcripts, f"test speech of {self.base.describe()}")

    def speech(self, split: Split, skips: SkipLog) -> list[SLUExample]:
        return [] if split == "test" else self.base.speech(split, skips)

    def text(self, split: Split, skips: SkipLog) -> list[SLUExample]:
        """Test rows stay per recording (each has its own transcript), like speech evaluation."""
        return read_manifest(self.transcripts, skips) if split == "test" else self.base.text(split, skips)

    def offered_locales(self, split: Split) -> set[str] | None:
        return self.base.offered_locales(split)  # the test transcripts are of the base's test speech

    def describe(self) -> str:
        return f"{self.base.describe()}, tested on transcripts {self.transcripts}"


def default_transcripts(recogniser: str, readout: str, domain_lm: bool = False, test_tag: str = "") -> Path:
    """Where a cascade caches its recogniser's transcripts of the test speech when no file is named:
    ``logs/cascade/<recogniser>-<read-out>-test[-<test tag>].jsonl`` (``tiny-heard-voices-ctc-test.jsonl``
    for the README demo, ``…-test-unheard.jsonl`` for its unheard voices; a ``pretrain-tiny`` export
    is named by its run folder, the LM-steered read-out ``domain-lm``). A file there of other audio
    or another recogniser is still refused, never reused (``ensure_transcripts``).
    """
    path = Path(recogniser)
    name = path.parent.name if path.name == "backbone" else path.name  # pretrain-tiny's <run>/backbone
    suffix = f"-{test_tag}" if test_tag else ""
    return Path("logs/cascade") / f"{name}-{'domain-lm' if domain_lm else readout}-test{suffix}.jsonl"


class TtsCorpus(Corpus):
    """Speech synthesised for training transcripts (``slu-lightning synthesize``): a ``tts_corpus``.

    Training data only: its ``train.jsonl`` speech is the ``tts`` source of a DataModule; it has
    no dev or test split (evaluation stays on real speech).
    """

    def __init__(self, manifest_dir: str):
        """
        Args:
            manifest_dir: the folder ``slu-lightning synthesize --out`` wrote (``train.jsonl``, ``audio/``).
        """
        self.root = Path(manifest_dir)

    def speech(self, split: Split, skips: SkipLog) -> list[SLUExample]:
        if split != "train":
            return []
        return [e for e in read_manifest(self.root / "train.jsonl", skips) if e.is_speech]

    def describe(self) -> str:
        return f"TTS speech at {self.root}"


class DemoTtsCorpus(TtsCorpus):
    """Synthesised speech for the demo corpus's training transcripts, built on first use.

    Spoken by the ``pretrain`` voices of the demo's seed: no voice of the demo's real train, dev or
    test speech. Cached next to the demo corpus (``tts-<size>-seed<seed>``).
    """

    def __init__(
        self,
        size: Literal["tiny", "small", "large"] = "small",
        seed: int = 0,
        root: str | None = None,
        demo_root: str | None = None,
    ):
        """
        Args:
            size: the ``DemoCorpus`` size whose training transcripts are spoken.
            seed: the ``DemoCorpus`` seed (also seeds the voices, rates and pitches).
            root: where to build it; defaults to the cache, next to the demo corpus.
            demo_root: the ``DemoCorpus``'s ``root``, when it is not the cache's.
        """
        from slu_lightning.data.tts_augment import default_tts_dir

        self.size, self.seed = size, seed
        self.demo = DemoCorpus(size, seed, root=demo_root)
        super().__init__(str(Path(root) if root else default_tts_dir(size, seed)))

    def prepare(self) -> None:
        from slu_lightning.data.tts_augment import synthesise_manifest

        self.demo.prepare()
        synthesise_manifest(self.demo.paths["train"], self.root, seed=self.seed)

    def check_speaks_for(self, corpus: Corpus) -> None:
        """Refuse to add this speech to a run on another demo corpus: its voices are the ``pretrain``
        voices of its own seed, which another seed's partition may give to that run's dev or test
        speakers, and its transcripts are not that run's."""
        if isinstance(corpus, DemoCorpus) and _demo_identity(corpus) != _demo_identity(self.demo):
            raise ConfigError(
                f"tts_corpus speaks {self.demo.describe()}, but the run's corpus is {corpus.describe()}: "
                "give the tts_corpus the corpus's size, seed and root (demo_root)"
            )

    def describe(self) -> str:
        return f"TTS speech of the demo corpus ({self.size}, seed {self.seed}) at {self.root}"


def _demo_identity(corpus: DemoCorpus) -> tuple[str, int, Path]:
    return corpus.size, corpus.seed, corpus.root.resolve()


class SlurpCorpus(Corpus):
    """SLURP: ``dataset/slurp/{train,devel,test}.jsonl`` plus the ``slurp_real`` audio folder."""

    def __init__(
        self, jsonl_dir: str, audio_dir: str, recordings: Literal["all", "headset", "far_field"] = "all"
    ):
        """
        Args:
            jsonl_dir: folder holding SLURP's ``train.jsonl``, ``devel.jsonl`` and ``test.jsonl``.
            audio_dir: the ``slurp_real`` folder of FLAC recordings.
            recordings: which recordings count as speech (close-talk headset, far-field, or all).
        """
        self.jsonl_dir, self.audio_dir, self.recordings = Path(jsonl_dir), audio_dir, recordings

    def _file(self, split: Split) -> Path:
        return self.jsonl_dir / {"train": "train.jsonl", "dev": "devel.jsonl", "test": "test.jsonl"}[split]

    def describe(self) -> str:
        return f"SLURP at {self.jsonl_dir} (audio {self.audio_dir}, {self.recordings} recordings)"

    def offered_locales(self, split: Split) -> set[str] | None:
        from slu_lightning.data.readers.slurp import LOCALE

        return {LOCALE}

    def speech(self, split: Split, skips: SkipLog) -> list[SLUExample]:
        from slu_lightning.data.readers.slurp import read_slurp

        return read_slurp(
            self._file(split), self.audio_dir, modality="speech", recordings=self.recordings, skips=skips
        )

    def text(self, split: Split, skips: SkipLog) -> list[SLUExample]:
        from slu_lightning.data.readers.slurp import read_slurp

        return read_slurp(self._file(split), None, modality="text", skips=skips)


class SpeechMassiveCorpus(ReaderCorpus):
    """Speech-MASSIVE (``save_to_disk`` folder or hub parquet snapshot), one or more locales.

    Cross-lingual runs train on ``train_locales`` and evaluate on ``eval_locales``: the paper
    trains on French and tests zero-shot on the 11 other locales.
    """

    def __init__(
        self,
        path: str,
        train_locales: list[str] | None = None,
        eval_locales: list[str] | None = None,
        train_split: str = "train",
        test_path: str | None = None,
    ):
        """
        Args:
            path: the dataset folder on disk.
            train_locales: locales whose training split is read (full ``train`` exists only for
                fr-FR and de-DE; every locale has the few-shot ``train_115``).
            eval_locales: locales whose validation and test splits are read (default: train_locales).
            train_split: ``train`` or the few-shot ``train_115``.
            test_path: folder of the separate Speech-MASSIVE test release (default: ``path``).
        """
        self.path, self.test_path = path, test_path or path
        self.train_locales = ["fr-FR"] if train_locales is None else train_locales
        self.eval_locales = self.train_locales if eval_locales is None else eval_locales
        self.train_split = train_split

    def _read(self, split: Split, modality: Literal["speech", "text"], skips: SkipLog) -> list[SLUExample]:
        from slu_lightning.data.readers.speech_massive import read_speech_massive

        name = {"train": self.train_split, "dev": "validation", "test": "test"}[split]
        locales = self.train_locales if split == "train" else self.eval_locales
        path = self.test_path if split == "test" else self.path
        return [
            e
            for locale in locales
            for e in read_speech_massive(path, locale, name, modality=modality, skips=skips)
        ]

    def describe(self) -> str:
        return f"Speech-MASSIVE at {self.path} (train {self.train_locales}, eval {self.eval_locales})"

    def offered_locales(self, split: Split) -> set[str] | None:
        """The locales it reads for ``split`` that Speech-MASSIVE has."""
        from slu_lightning.data.readers.speech_massive import LOCALES

        return set(self.train_locales if split == "train" else self.eval_locales) & set(LOCALES)


class MassiveTextCorpus(Corpus):
    """MASSIVE transcripts (text only): extra target-language text for cross-lingual runs."""

    def __init__(self, path: str, locales: list[str]):
        """
        Args:
            path: MASSIVE's ``data`` folder of ``<locale>.jsonl`` files.
            locales: which locales to read.
        """
        self.path, self.locales = path, locales

    def speech(self, split: Split, skips: SkipLog) -> list[SLUExample]:
        return []

    def describe(self) -> str:
        return f"MASSIVE text at {self.path} ({self.locales})"

    def offered_locales(self, split: Split) -> set[str] | None:
        return set(self.locales)

    def text(self, split: Split, skips: SkipLog) -> list[SLUExample]:
        from slu_lightning.data.readers.massive import read_massive

        return [
            e for locale in self.locales for e in read_massive(self.path, split, locale=locale, skips=skips)
        ]


class ItalicCorpus(ReaderCorpus):
    """ITALIC (Italian speech aligned with MASSIVE it-IT; entities joined from MASSIVE by id)."""

    def __init__(self, path: str, massive_it: str):
        """
        Args:
            path: the ``save_to_disk`` folder of one ITALIC configuration.
            massive_it: MASSIVE's ``it-IT.jsonl`` (or its ``data`` folder) for the entity labels.
        """
        self.path, self.massive_it = path, massive_it

    def _read(self, split: Split, modality: Literal["speech", "text"], skips: SkipLog) -> list[SLUExample]:
        from slu_lightning.data.readers.italic import read_italic

        name = {"train": "train", "dev": "validation", "test": "test"}[split]
        return read_italic(self.path, name, massive_it=self.massive_it, modality=modality, skips=skips)

    def describe(self) -> str:
        return f"ITALIC at {self.path} (entities from {self.massive_it})"

    def offered_locales(self, split: Split) -> set[str] | None:
        from slu_lightning.data.readers.italic import LOCALE

        return {LOCALE}


class CombinedCorpus(Corpus):
    """Several corpora as one, e.g. source-language speech plus target-language MASSIVE text."""

    def __init__(self, parts: list[Corpus]):
        """
        Args:
            parts: the corpora; each split's examples are concatenated in this order.
        """
        self.parts = parts

    def prepare(self) -> None:
        for part in self.parts:
            part.prepare()

    def speech(self, split: Split, skips: SkipLog) -> list[SLUExample]:
        return first_of_each_id([part.speech(split, skips) for part in self.parts], f"{split} speech")

    def text(self, split: Split, skips: SkipLog) -> list[SLUExample]:
        return first_of_each_id([part.text(split, skips) for part in self.parts], f"{split} text")

    def describe(self) -> str:
        return " + ".join(part.describe() for part in self.parts)

    def offered_locales(self, split: Split) -> set[str] | None:
        offered = [part.offered_locales(split) for part in self.parts]
        return None if None in offered else set().union(*offered)


def first_of_each_id(parts: list[list[SLUExample]], what: str) -> list[SLUExample]:
    """The parts' examples in order, an id that an earlier part gave kept from there only.

    MASSIVE and Speech-MASSIVE share utterance ids: German MASSIVE text beside Speech-MASSIVE's
    German test split (or its few-shot ``train_115``) would otherwise count each shared utterance
    twice, in training and in the locale's test metrics. The repeats are logged, and a warning
    says how many of them carry other labels than the kept example.
    """
    kept: dict[str, SLUExample] = {}
    repeated, relabelled = [], []
    for examples in parts:
        for example in examples:
            first = kept.setdefault(example.id, example)
            if first is not example:
                repeated.append(example.id)
                if _labels(first) != _labels(example):
                    relabelled.append(example.id)
    if repeated:
        log.info("%s: %d ids an earlier part gave are kept once (e.g. %r)", what, len(repeated), repeated[0])
    if relabelled:
        log.warning(
            "%s: %d repeated ids carry other labels in a later part than in the first (e.g. %r); the "
            "first part's are kept",
            what,
            len(relabelled),
            relabelled[0],
        )
    return list(kept.values())


def _labels(example: SLUExample) -> tuple:
    return example.text, example.scenario, example.action, example.entities
