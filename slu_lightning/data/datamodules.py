"""The three training regimes as swappable LightningDataModules.

All three share ``SLUDataModule``: a corpus, a speech subset, batching, evaluation sets. They
differ only in their phase table (see ``curriculum.py``): ``TextOnlyDataModule`` trains on all
transcripts, ``MixedDataModule`` on all transcripts plus the speech subset shuffled together, and
``CurriculumDataModule`` on whatever phases the config lists (the paper: text, text, text+speech).

A ``tts_corpus`` (speech synthesised for the transcripts, ``slu-lightning synthesize``) adds a
third source, ``tts``: heard like real speech, but never subject to the speech subset, and never
counted as real speech (``speech_hours``, ``speech_subset_ids.txt``). The single-phase regimes
train on all of it every epoch; a curriculum uses it where a phase's mix names ``tts``.
``recogniser_noise`` adds the ``noisy`` source the same way: every transcript corrupted with the
errors the recogniser made on a few calibration clips (``data/recogniser_noise.py``), read as text.

The train dataloader is rebuilt every epoch (``reload_dataloaders_every_n_epochs=1``, set by the
CLI) from the epoch's phase, so an epoch of text plus speech is as long as it should be.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from slu_lightning.atomic import atomic_write_text
from slu_lightning.curriculum import (
    HEARD_SOURCES,
    NOISY_SOURCE,
    TTS_SOURCE,
    CurriculumPhase,
    SourceMix,
    phase_index_at,
)
from slu_lightning.data.audio import checked_seconds, load_audio
from slu_lightning.data.collate import SLUCollator, SLUItem
from slu_lightning.data.corpora import Corpus, DemoTtsCorpus, Split
from slu_lightning.data.errors import BadInputPolicy, ConfigError, DataError, SkipLog
from slu_lightning.data.features import LogMelExtractor
from slu_lightning.data.predict_inputs import audio_inputs
from slu_lightning.data.recogniser_noise import CharChannel, RecogniserNoise
from slu_lightning.data.records import SLUExample, in_locales
from slu_lightning.data.sampler import EpochBatchSampler, SequentialBatchSampler, resume_batch
from slu_lightning.data.subsets import SpeechSubset, write_ids
from slu_lightning.data.workers import stop_safe_worker_init
from slu_lightning.task import PromptTemplate, label_inventory

log = logging.getLogger(__name__)

Entry = tuple[SLUExample, bool]  # (example, whether the model hears its audio)
FOUND_IN_A_BATCH = (
    " (found while loading a batch: `data.init_args.verify_audio: true` decodes every clip before the"
    " first batch, naming all such clips at once; `bad_input: skip` skips them)"
)


class SLUDataset(Dataset):
    """Examples as model inputs: audio is decoded and turned into log-mel features here (in workers).

    A clip that fails to decode (what its header could not show) stops the run under the ``error``
    policy. Under ``skip`` its row stays in the batch as a second of silence carrying the error: the
    collator gives it no loss and the model no prediction, so every rank still runs the same steps,
    and the DataModule counts and logs it in the main process.
    """

    def __init__(
        self,
        entries: list[Entry],
        extractor: LogMelExtractor,
        bad_input: BadInputPolicy = "error",
        hint: str = "",
    ):
        """``hint`` ends the message of a clip that fails to decode (what the caller's user can do)."""
        self.entries, self.extractor, self.bad_input, self.hint = entries, extractor, bad_input, hint

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> SLUItem:
        example, heard = self.entries[index]
        if not heard:
            return SLUItem(example)
        try:
            waveform = load_audio(example.audio, record=example.id)  # (samples,)
        except DataError as error:  # what only decoding shows (the headers were checked in setup)
            if self.bad_input == "skip":
                return SLUItem(example, *self.extractor(torch.zeros(16000)), error=error)
            raise DataError(f"{error.reason}{self.hint}", file=error.file, record=error.record) from error
        features, n_frames = self.extractor(waveform)  # (mels, frames + margin)
        return SLUItem(example, features, n_frames)


def prompt_length(example: SLUExample, heard: bool, seconds: dict[str, float]) -> int:
    """Estimated prompt tokens, the length key of bucketing and of evaluation order: 25 audio tokens
    per second of speech (``seconds``: from the file headers), or about one token per 3 characters
    of transcript."""
    if heard:
        return int(25 * seconds.get(example.id, len(example.text) / 15))
    return len(example.text) // 3


class SLUDataModule(L.LightningDataModule):
    """Shared data plumbing of the regimes; subclasses define ``phases()``."""

    def __init__(
        self,
        corpus: Corpus,
        speech_subset: SpeechSubset = SpeechSubset(),
        batch_size: int = 8,
        eval_batch_size: int = 16,
        num_workers: int = 0,
        seed: int | None = None,
        selection_seed: int = 0,
        train_locales: list[str] | None = None,
        eval_locales: list[str] | None = None,
        eval_modality: Literal["speech", "text", "both"] = "speech",
        max_eval_examples: int | None = None,
        paired_eval: bool = False,
        length_bucketing: bool = False,
        bad_input: Literal["error", "skip"] = "error",
        verify_audio: bool = False,
        predict_audio: str | None = None,
        tts_corpus: Corpus | None = None,
        recogniser_noise: RecogniserNoise | None = None,
    ):
        """
        Args:
            corpus: where the examples come from (``DemoCorpus``, ``ManifestCorpus``, ``SlurpCorpus``...).
            speech_subset: which speech training examples are used (proportion, unit, seed).
            batch_size: training examples per batch and process (before gradient accumulation).
            eval_batch_size: examples per batch for validation, test and predict.
            num_workers: dataloader worker processes decoding audio and computing features.
            seed: seeds the batch order of every epoch (with the epoch number). None: the run's
                ``seed_everything`` under the CLI (so a sweep's seed axis changes it), else 0.
            selection_seed: seeds which examples are used where a subset is drawn: the evaluation
                subset (``max_eval_examples``) and partial source mixes. Apart from ``seed`` so that
                every run seed trains on the same data and is scored on the same items.
            train_locales: keep only these locales for training (None: all). Cross-lingual runs
                train on a source locale and evaluate on the others.
            eval_locales: keep only these locales for validation and test (None: all).
            eval_modality: evaluate on speech input, on transcripts, or on both.
            max_eval_examples: evaluate on a subset of this many examples (``selection_seed``;
                None: all).
            paired_eval: draw that subset by utterance, each in every modality it has (at most
                ``max_eval_examples`` examples), so that a run's speech and transcript scores come
                from the same utterances and their difference is paired. False draws examples
                one by one: the two modalities are separate samples of the split.
            length_bucketing: batch training examples of similar length together (less padding).
            bad_input: ``error`` stops at the first bad record or file with its name; ``skip``
                drops it, counts it and logs it. A clip that fails only when its batch decodes it
                (NaN samples, a compressed stream that ends early) is then skipped in that batch:
                its row becomes silence with no loss and no prediction.
            verify_audio: decode every clip once before the first batch, so that what a header
                cannot show is found then too: all of it named at once under ``error``, and under
                ``skip`` dropped before training (no silent stand-in rows). Costs one decoding pass
                over the audio (minutes on SLURP).
            predict_audio: for ``predict``: an audio file (named as ``AUDIO_SUFFIXES`` lists), a
                folder of audio files (searched recursively), a manifest (its rows with audio, ids
                kept) or a UTF-8 text file listing one audio path per line (relative to its folder).
            tts_corpus: synthesised speech of the training transcripts (``TtsCorpus``,
                ``DemoTtsCorpus``): its training speech is the ``tts`` source, heard like real
                speech but all of it used (the speech subset selects real speech only).
                ``TextOnlyDataModule`` and ``MixedDataModule`` add it to every epoch; a curriculum
                uses it in the phases whose mix names ``tts``.
            recogniser_noise: corrupted copies of every training transcript, their errors drawn
                from what a recogniser made of a few calibration clips: the ``noisy`` source,
                read as text. Added to every epoch like ``tts_corpus``.
        """
        super().__init__()
        self.corpus, self.speech_subset = corpus, speech_subset
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.seed, self.selection_seed = 0 if seed is None else seed, selection_seed
        self.train_locales, self.eval_locales = train_locales, eval_locales
        self.eval_modality, self.max_eval_examples = eval_modality, max_eval_examples
        self.paired_eval = paired_eval
        self.length_bucketing, self.predict_audio = length_bucketing, predict_audio
        self.tts_corpus, self.recogniser_noise = tts_corpus, recogniser_noise
        if isinstance(tts_corpus, DemoTtsCorpus):
            tts_corpus.check_speaks_for(corpus)
        self.skips, self.verify_audio = SkipLog(bad_input), verify_audio
        self.channel: CharChannel | None = None  # recogniser_noise's, once estimated
        self.sources: dict[str, list[SLUExample]] = {}
        self.eval_sets: dict[str, list[Entry]] = {}
        self.resumed_checkpoint: str | None = None  # set by the CLI: the checkpoint a fit resumes
        self._saved_layout: dict[str, Any] | None = None  # the resumed checkpoint's batch_layout()
        self.collators: dict[str, SLUCollator] = {}
        self.extractor: LogMelExtractor | None = None
        self.seconds: dict[str, float] = {}

    def connect(self, tokenizer, prompt: PromptTemplate, n_mels: int) -> None:
        """Settings known only once the model is built: its tokenizer, prompt and mel bins."""
        self.extractor = LogMelExtractor(n_mels=n_mels)
        self.collators = {
            "train": SLUCollator(tokenizer, prompt, with_labels=True),
            "val": SLUCollator(tokenizer, prompt, with_labels=True, with_prompts=True),
            "test": SLUCollator(tokenizer, prompt, with_labels=False, with_prompts=True),
        }
        self.collators["predict"] = self.collators["test"]

    def phases(self) -> list[CurriculumPhase]:
        raise NotImplementedError

    def prepare_data(self) -> None:
        """Build or check, once, the data this stage reads. ``predict`` reads only ``predict_audio``,
        plus the training transcripts when the prompt has a ``{labels}`` slot: it prepares nothing
        else, so it runs where the corpus was never built (a cascade's test transcripts, synthesised
        speech and the noise calibration are not made or required for it)."""
        if self.trainer is not None and self.trainer.state.fn == "predict":
            if self._has_label_slot():
                self.corpus.prepare()
            return
        self.corpus.prepare()
        if self.tts_corpus is not None:
            self.tts_corpus.prepare()
        if self.recogniser_noise is not None:
            self.recogniser_noise.prepare(self.corpus, self.skips, self.train_locales)

    def setup(self, stage: str) -> None:
        training = stage == "fit" and not self.sources
        if training:
            if self.trainer is not None:
                refuse_unset_epochs(self.trainer.max_epochs)
            self._setup_train()
            self._refuse_other_data()
            if self.trainer:
                log.info("%s", self._effective_batch())
        if stage == "predict":
            inputs = self._checked(audio_inputs(self.predict_audio, self.skips))
            if not inputs:
                raise DataError(f"nothing to predict: every input was skipped ({self.skips.summary()})")
            self.eval_sets["predict"] = [(example, True) for example in inputs]
        else:
            split: Split = "test" if stage == "test" else "dev"
            if split not in self.eval_sets:
                self.eval_sets[split] = self._eval_entries(split)
        run_dir = self.trainer.log_dir if training and self.trainer else None  # a collective: all ask
        if run_dir and self.trainer.is_global_zero:  # once the data has passed every check
            self.write_subset_ids(run_dir)
        if self.skips.total:
            log.warning("%s", self.skips.summary())
        self._fill_label_slot()

    def on_before_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Count and log, in the main process, the clips a loader worker could not decode."""
        for error in batch["skipped"].errors():
            self.skips.handle(error)
        return batch

    def _fill_label_slot(self) -> None:
        """Give prompts with a ``{labels}`` slot the training label inventory (zero-shot prompting):
        the transcripts a fit trains on, which a separate test or predict reads again (its own
        skips are its data's, not the training file's)."""
        if self._has_label_slot():
            trained = self.sources.get("text")
            if not trained:
                every_text = self.corpus.text("train", SkipLog("skip", max_logged=0))
                trained = in_locales(every_text, self.train_locales)
            inventory = label_inventory(trained)
            for collator in self.collators.values():
                collator.set_labels(inventory)

    def _has_label_slot(self) -> bool:
        """Whether the prompt has a ``{labels}`` slot, which the training transcripts fill."""
        return bool(self.collators) and "{labels}" in self.collators["train"].prompt.instruction

    def _setup_train(self) -> None:
        phases = self.phases()
        every_text = self.corpus.text("train", self.skips)
        _check_locales(every_text, self.train_locales, "train_locales", "train")
        text = self._literal(in_locales(every_text, self.train_locales))
        speech: list[SLUExample] = []
        if any(phase.uses_speech for phase in phases):
            speech = self._checked(in_locales(self.corpus.speech("train", self.skips), self.train_locales))
            speech = self._literal(speech)
            if not speech:
                raise DataError(
                    f"this regime trains on speech but {self.corpus.describe()} has no "
                    "speech training examples"
                )
            speech = self.speech_subset.select(speech)
            if not speech:
                raise ConfigError(self._speechless_phases_message(phases))
        self.sources = {"text": text, "speech": speech}
        if any(phase.uses_tts for phase in phases):  # absent otherwise: keeps older fingerprints valid
            self.sources[TTS_SOURCE] = self._tts_speech()
        elif self.tts_corpus is not None:
            log.warning("tts_corpus is set but no phase's mix names %r: it is not used", TTS_SOURCE)
        if any(phase.uses_noisy for phase in phases):
            self.sources[NOISY_SOURCE] = self._noisy_text(text)
        elif self.recogniser_noise is not None:
            log.warning("recogniser_noise is set but no phase's mix names %r: it is not used", NOISY_SOURCE)
        self._refuse_empty_fractions()
        log.info(
            "training data: %d transcripts, %d speech examples, %.2f h of speech (subset %s), "
            "%d synthesised speech examples, %.2f h, %d noisy transcripts",
            len(text),
            len(speech),
            self.speech_hours(),
            self.subset_used(),
            len(self.sources.get(TTS_SOURCE, [])),
            self.tts_hours(),
            len(self.sources.get(NOISY_SOURCE, [])),
        )

    def _speechless_phases_message(self, phases: list[CurriculumPhase]) -> str:
        """Why a regime whose phases train on speech may not run when the speech subset keeps none
        (proportion 0 of every locale): those phases would train on text alone, silently, under
        the regime's name. A proportion of 0 that keeps other locales' speech is no such case."""
        subset = self.speech_subset
        keeps = (
            f"speech_subset.ids_file {subset.ids_file} lists"
            if subset.ids_file is not None
            else f"speech_subset.proportion {subset.proportion:g} keeps"
        )
        names = [phase.name for phase in phases if phase.uses_speech]
        return (
            f"{keeps} no speech, yet phase(s) {names} of {type(self).__name__} train on speech: they "
            "would run on text alone. For 0 % speech use TextOnlyDataModule (the text-only "
            "baseline); to keep other locales' speech whole, name the subsampled ones in "
            "speech_subset.locales"
        )

    def settings_problems(self, max_epochs: int | None) -> list[str]:
        """What ``fit`` would refuse in these settings that shows without reading the corpus, so
        that ``slu-lightning sweep`` finds it before any cell starts: locale names the corpus does
        not offer as far as its settings tell (``Corpus.offered_locales``; nothing for corpora
        that know their locales only by reading them, such as manifests). ``max_epochs`` is the
        trainer's (a curriculum's phases must fill it). What only the examples show (a locale
        without speech, a speech subset that keeps none, a bad record) is left to ``setup``."""
        named = [
            ("train_locales", self.train_locales, "train"),
            ("speech_subset.locales", self.speech_subset.locales, "train"),
            ("eval_locales", self.eval_locales, "dev"),
            ("eval_locales", self.eval_locales, "test"),
        ]
        problems = []
        for key, locales, split in named:
            offered = self.corpus.offered_locales(split)
            if locales is not None and offered is not None and (missing := sorted(set(locales) - offered)):
                problems.append(
                    f"{key}: the corpus has no {split} split of {missing} (it has {sorted(offered)})"
                )
        return problems

    def _refuse_empty_fractions(self) -> None:
        """A phase's partial mix that rounds to no example of a source would train that phase
        without it, while the run's name and config say otherwise (a 2 % subset is a few clips)."""
        for phase in self.phases():
            for source, mix in sorted(phase.mix.items()):
                available = len(self.sources.get(source, []))
                if available and not _nested_fraction(self.sources[source], mix, self.selection_seed):
                    raise ConfigError(
                        f"phase {phase.name!r} trains on fraction {mix.fraction} of the {available} "
                        f"{source} example(s): none; raise it to at least {1 / available:.3g} or drop "
                        f"{source!r} from the phase"
                    )

    def _draws_fractions(self) -> bool:
        """Whether some phase trains on part of a source, drawn with ``selection_seed``."""
        return any(mix.fraction < 1 for phase in self.phases() for mix in phase.mix.values())

    def _tts_speech(self) -> list[SLUExample]:
        """The synthesised training speech, each example marked ``source="tts"`` (``CurriculumCallback``)."""
        if self.tts_corpus is None:
            raise DataError(
                f"a phase trains on {TTS_SOURCE!r} (synthesised speech) but no TTS corpus is set: set "
                "data.init_args.tts_corpus (a TtsCorpus folder written by `slu-lightning synthesize`, "
                "or DemoTtsCorpus), or drop 'tts' from the phases' mix"
            )
        tts = self._checked(in_locales(self.tts_corpus.speech("train", self.skips), self.train_locales))
        tts = self._literal(tts)
        if not tts:
            raise DataError(f"{self.tts_corpus.describe()} has no speech training examples")
        return [e if e.source == TTS_SOURCE else replace(e, source=TTS_SOURCE) for e in tts]

    def _noisy_text(self, text: list[SLUExample]) -> list[SLUExample]:
        """The transcripts as the recogniser hears them (``recogniser_noise``)."""
        if self.recogniser_noise is None:
            raise DataError(
                f"a phase trains on {NOISY_SOURCE!r} (transcripts as the recogniser hears them) but "
                "data.init_args.recogniser_noise is not set: set it, or drop 'noisy' from the phases' mix"
            )
        self.channel = self.recogniser_noise.channel(self.corpus, self.skips, text, self.train_locales)
        rates = ", ".join(f"{name} {rate:.3f}" for name, rate in self.channel.rates.items())
        log.info("recogniser noise from %d calibration clips: %s per character", self.channel.clips, rates)
        return self.recogniser_noise.noisy_copies(text, self.channel)

    def speech_hours(self) -> float:
        """Hours of real speech in the selected training subset (from file headers)."""
        return self._hours("speech")

    def tts_hours(self) -> float:
        """Hours of synthesised training speech (from file headers)."""
        return self._hours(TTS_SOURCE)

    def _hours(self, source: str) -> float:
        return sum(self.seconds.get(example.id, 0.0) for example in self.sources.get(source, [])) / 3600

    def subset_used(self) -> str:
        """The speech subset, as the run's log and ``training_data.json`` say it."""
        if any(phase.uses_speech for phase in self.phases()):
            return repr(self.speech_subset)
        return "none: no phase trains on speech"

    def write_subset_ids(self, run_dir: str | Path) -> None:
        """Record the training data in the run directory: the selected speech ids (reload them with
        ``ids_file``) and ``training_data.json`` with example counts and hours of speech."""
        summary = {
            "text_examples": len(self.sources["text"]),
            "speech_examples": len(self.sources["speech"]),
            "speech_hours": round(self.speech_hours(), 4),
            "speech_subset": self.subset_used(),
            "locales": sorted({example.locale for examples in self.sources.values() for example in examples}),
            "corpus": self.corpus.describe(),
            "skipped_records": dict(self.skips.counts.most_common()),  # bad_input: skip, by reason
        }
        if NOISY_SOURCE in self.sources:
            summary |= {
                "noisy_examples": len(self.sources[NOISY_SOURCE]),
                "recogniser_noise": repr(self.recogniser_noise),
                "recogniser_noise_clips": self.channel.clips,
                "recogniser_noise_rates": {name: round(r, 4) for name, r in self.channel.rates.items()},
            }
        if TTS_SOURCE in self.sources:
            summary |= {
                "tts_examples": len(self.sources[TTS_SOURCE]),
                "tts_hours": round(self.tts_hours(), 4),
                "tts_corpus": self.tts_corpus.describe(),
            }
        atomic_write_text(Path(run_dir) / "training_data.json", json.dumps(summary, indent=1))
        if self.sources["speech"]:
            write_ids(Path(run_dir) / "speech_subset_ids.txt", self.sources["speech"])

    def eval_modalities(self, split: str) -> list[str]:
        """The modalities of an evaluation set: the same list on every rank."""
        return sorted({"speech" if heard else "text" for _, heard in self.eval_sets.get(split, [])})

    def _checked(self, speech: list[SLUExample]) -> list[SLUExample]:
        """Speech examples whose audio is readable and fits the encoder; the rest per the bad-input policy.

        Checking headers up front (decoding too, with ``verify_audio``) turns a bad file into a named
        error (or a counted skip) before training starts, instead of a stop hours later when a
        loader worker reaches it.
        """
        kept = []
        for example in tqdm(speech, desc="decoding every clip", disable=not self.verify_audio):
            try:
                self.seconds[example.id] = checked_seconds(example.audio, record=example.id)
                if self.verify_audio:
                    load_audio(example.audio, record=example.id)
                kept.append(example)
            except DataError as error:
                self.skips.handle(error)
        return kept

    def _literal(self, examples: list[SLUExample]) -> list[SLUExample]:
        """The examples whose transcript holds none of the tokenizer's control tokens; the others
        per the bad-input policy (see ``SLUCollator.control_tokens_in``)."""
        if "train" not in self.collators:  # not connected to a model: no tokenizer to ask
            return examples
        kept = []
        for example in examples:
            if found := self.collators["train"].control_tokens_in(example):
                reason = f"the transcript spells out the tokenizer's control token(s) {', '.join(found)}"
                self.skips.handle(DataError(reason, record=example.id))
            else:
                kept.append(example)
        return kept

    def _eval_entries(self, split: Split) -> list[Entry]:
        entries: list[Entry] = []
        if self.eval_modality in ("speech", "both"):
            every_speech = self.corpus.speech(split, self.skips)
            _check_locales(every_speech, self.eval_locales, "eval_locales", f"{split} speech")
            speech = self._checked(in_locales(every_speech, self.eval_locales))
            entries += [(example, True) for example in self._literal(speech)]
        if self.eval_modality in ("text", "both"):
            every_text = self.corpus.text(split, self.skips)
            _check_locales(every_text, self.eval_locales, "eval_locales", f"{split} text")
            text = self._literal(in_locales(every_text, self.eval_locales))
            entries += [(example, False) for example in text]
        if not entries:
            modality = {"both": "speech or text"}.get(self.eval_modality, self.eval_modality)
            raise DataError(f"no {modality} examples for the {split} split of {self.corpus.describe()}")
        if self.max_eval_examples is not None and len(entries) > self.max_eval_examples:
            draw = _utterance_sample if self.paired_eval else _example_sample
            entries = [entries[i] for i in sorted(draw(entries, self.max_eval_examples, self.selection_seed))]
        return entries

    @property
    def locales(self) -> list[str]:
        """Every locale of the evaluation sets, sorted (fixes the metric's locale indices)."""
        return sorted({example.locale for entries in self.eval_sets.values() for example, _ in entries})

    def epoch_entries(self, epoch: int) -> list[Entry]:
        """What epoch ``epoch`` trains on, before shuffling: a pure function of the config."""
        phase = self.phases()[phase_index_at(self.phases(), epoch)]
        entries: list[Entry] = []
        for source, mix in sorted(phase.mix.items()):
            examples = _nested_fraction(self.sources[source], mix, self.selection_seed)
            entries += [(example, source in HEARD_SOURCES) for example in examples] * mix.oversample
        return entries

    def decoding_key(self, entry: Entry) -> tuple[bool, int]:
        """Sort key of evaluation entries: speech before text, longest first.

        A batch pads to its longest input and decodes until its longest answer, and both grow with
        the utterance, so batching similar lengths saves work. Longest first: a batch too large for
        memory fails at once, not at the end.
        """
        example, heard = entry
        return (not heard, -prompt_length(example, heard, self.seconds))

    def batches_in_epoch(self, epoch: int) -> int:
        """Training batches of epoch ``epoch`` as the trainer runs them: its loader's length, cut by
        ``trainer.limit_train_batches`` (an int caps it, a float keeps that share), so that the
        learning-rate schedule's phases turn where the data mix does."""
        batches = len(self._sampler(self.epoch_entries(epoch), epoch, start_batch=0))
        limit = self.trainer.limit_train_batches if self.trainer else 1.0
        return min(batches, limit) if isinstance(limit, int) else int(batches * limit)

    def _sampler(self, entries: list[Entry], epoch: int, start_batch: int) -> EpochBatchSampler:
        lengths = None
        if self.length_bucketing:
            lengths = [prompt_length(example, heard, self.seconds) for example, heard in entries]
        trainer = self.trainer
        return EpochBatchSampler(
            len(entries),
            self.batch_size,
            seed=self.seed,
            epoch=epoch,
            lengths=lengths,
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
            start_batch=start_batch,
        )

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch
        start = resume_batch(self.trainer)
        if start:
            self._refuse_other_layout(mid_epoch=True)
            log.info("resuming epoch %d at batch %d", epoch, start)
        entries = self.epoch_entries(epoch)
        return self._loader(entries, "train", batch_sampler=self._sampler(entries, epoch, start))

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.eval_sets["dev"], "val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.eval_sets["test"], "test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader(self.eval_sets["predict"], "predict")

    def _eval_loader(self, entries: list[Entry], kind: str) -> DataLoader:
        """Each rank gets a disjoint slice, without the repeats a DistributedSampler would add,
        in ``decoding_key`` order (the predictions files are written sorted by id, whatever the order)."""
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        mine = sorted(entries[rank::world], key=self.decoding_key)
        return self._loader(mine, kind, batch_sampler=SequentialBatchSampler(len(mine), self.eval_batch_size))

    def _loader(self, entries: list[Entry], kind: str, batch_sampler) -> DataLoader:
        if self.extractor is None:
            raise RuntimeError("call connect() before asking for dataloaders (the CLI does this)")
        return DataLoader(
            SLUDataset(entries, self.extractor, self.skips.policy, hint=FOUND_IN_A_BATCH),
            batch_sampler=batch_sampler,
            collate_fn=self.collators[kind],
            num_workers=self.num_workers,
            persistent_workers=False,
            worker_init_fn=stop_safe_worker_init(self.num_workers),
        )

    def state_dict(self) -> dict:
        """What a resume checks, the records skipped so far on every rank, which a resumed run's
        totals include, and the label inventory a ``{labels}`` prompt was filled with (``export``
        names it). Every rank builds a checkpoint's state (``Trainer.save_checkpoint`` is a
        collective), so the ranks' records are gathered here."""
        return {
            "fingerprint": self.fingerprint(),
            "batch_layout": self.batch_layout(),
            "selection_seed": self.selection_seed,
            "skipped_records": self.gathered_skips().records(),
            "prompt_labels": self.collators["train"].labels if self.collators else "",
        }

    def gathered_skips(self) -> SkipLog:
        """This rank's skipped records merged with every other rank's (a collective under DDP: every
        rank must call it at the same point)."""
        world = self.trainer.world_size if self.trainer else 1
        if world > 1 and torch.distributed.is_initialized():
            gathered: list = [None] * world
            torch.distributed.all_gather_object(gathered, self.skips.records())
            for records in gathered:
                self.skips.absorb(records)
        return self.skips

    def _effective_batch(self) -> str:
        """The examples an optimizer step averages over: what the paper's 128 means, and what a run on
        fewer GPUs than its config assumes silently changes."""
        trainer = self.trainer
        accumulate, world = trainer.accumulate_grad_batches, trainer.world_size
        total = self.batch_size * accumulate * world
        return (
            f"effective batch {total}: batch_size {self.batch_size} x accumulate_grad_batches "
            f"{accumulate} x {world} device(s)"
        )

    def batch_layout(self) -> dict[str, Any]:
        """What orders an epoch's examples and cuts them into this rank's batches. A run resumed
        mid-epoch restarts its sampler at a batch count, which only means the same examples under
        the same layout."""
        trainer = self.trainer
        return {
            "batch_size": self.batch_size,
            "seed": self.seed,
            "length_bucketing": self.length_bucketing,
            "world_size": trainer.world_size if trainer else 1,
        }

    def _refuse_other_layout(self, mid_epoch: bool) -> None:
        """A mid-epoch resume under another batch layout would train some of the epoch's examples
        twice and skip others (a resume at an epoch's end may change it)."""
        saved, current = self._saved_layout, self.batch_layout()
        if mid_epoch and saved is None:
            log.warning(
                "the checkpoint predates the batch-layout check: resuming mid-epoch is exact only if "
                "batch_size, the data seed, length_bucketing and the device count are the checkpoint's"
            )
        if not mid_epoch or not saved or saved == current:
            return
        changed = ", ".join(
            f"{key} {saved.get(key)} -> {value}" for key, value in current.items() if saved.get(key) != value
        )
        raise DataError(
            f"the checkpoint stopped mid-epoch under another batch layout ({changed}; world_size is "
            "devices x nodes): resuming there would train some of the epoch's examples twice and skip "
            "others. Resume with the checkpoint's settings, or from a checkpoint saved at an epoch's end"
        )

    def _refuse_other_data(self) -> None:
        """Refuse to resume on other data before the run writes anything. Lightning restores the
        data module's state (``load_state_dict``) only after setup, when the refused settings would
        already have replaced the run's ``speech_subset_ids.txt``, ``training_data.json`` and
        ``config.yaml``, which then no longer describe, or resume, the checkpoint."""
        path = self.resumed_checkpoint
        if path and Path(path).is_file():  # a sharded (FSDP) checkpoint is checked at its restore
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            self._refuse_other_regime(checkpoint)
            self.load_state_dict(checkpoint.get(type(self).__qualname__, {}))
            progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress", {})
            self._refuse_other_layout(
                bool(progress.get("current", {}).get("processed")) and not progress.get("is_last_batch")
            )

    def _refuse_other_regime(self, checkpoint: dict) -> None:
        """Lightning restores a data module's state only under its own class name, so a checkpoint
        of another regime (a text-only run resumed as mixed) would pass every data check."""
        mine = type(self).__qualname__
        saved = [name for name, state in checkpoint.items() if _is_data_state(state)]
        if saved and mine not in saved:
            raise DataError(
                f"the checkpoint was trained by {saved[0]}, not {mine}: a run cannot change its regime "
                "on resume; resume with the original data.class_path or start a new run"
            )

    def load_state_dict(self, state_dict: dict) -> None:
        self._saved_layout = state_dict.get("batch_layout")
        saved_seed = state_dict.get("selection_seed")
        if saved_seed is not None and saved_seed != self.selection_seed and self._draws_fractions():
            raise DataError(
                f"the checkpoint drew its phases' partial mixes with selection_seed {saved_seed}, this run "
                f"with {self.selection_seed}: they would train on other examples; resume with "
                f"selection_seed {saved_seed} or start a new run"
            )
        if self.trainer is None or self.trainer.state.fn == "fit":  # a test counts its own data's skips
            self.skips.absorb(state_dict.get("skipped_records", {}))
        saved, current = state_dict.get("fingerprint"), self.fingerprint()
        if saved and current and saved != current:
            raise DataError(
                "the checkpoint was trained on different data (corpus, locales, speech subset or "
                "phases changed); resume with the original data config or start a new run"
            )

    def fingerprint(self) -> str:
        """A hash of the training data and phase table, to refuse resuming on different ones.

        A single-phase regime may be extended (more epochs) on resume; a curriculum may not.
        """
        if not self.sources:
            return ""
        digest = hashlib.sha256()
        for source in sorted(self.sources):
            digest.update(source.encode())
            digest.update("\n".join(example.id for example in self.sources[source]).encode())
        for example in self.sources.get(TTS_SOURCE, []):  # a re-synthesis keeps the ids, not the voices
            digest.update(json.dumps(example.meta, sort_keys=True).encode())
        for example in self.sources.get(NOISY_SOURCE, []):  # another channel keeps the ids, not the text
            digest.update(example.text.encode())
        digest.update(self.schedule_signature().encode())
        return digest.hexdigest()[:16]

    def schedule_signature(self) -> str:
        """The part of the phase table that a resumed run must not change (none for one phase)."""
        return ""


def _check_locales(examples: list[SLUExample], locales: list[str] | None, key: str, split: str) -> None:
    """Refuse the locales of ``key`` that ``split`` lacks (a typo, or a locale the corpus does not
    hold): with a warning only, a misspelt target of ``train_locales`` trained the source alone
    under the adaptation's name, and one of ``eval_locales`` left the target out of the test."""
    if locales is None:
        return
    present = sorted({example.locale for example in examples})
    if missing := sorted(set(locales) - set(present)):
        raise DataError(f"{key}: the {split} split has no example of {missing} (its locales: {present})")


def data_state(checkpoint: dict) -> dict:
    """The ``SLUDataModule`` state a checkpoint holds, whichever regime saved it (empty if none)."""
    return next((state for state in checkpoint.values() if _is_data_state(state)), {})


def _is_data_state(state: object) -> bool:
    """Whether a checkpoint entry is an ``SLUDataModule``'s state (saved under its class's name)."""
    return isinstance(state, dict) and "fingerprint" in state


def refuse_unset_epochs(max_epochs: int | None) -> None:
    """A run with ``max_epochs: null`` has no epochs to lay the data mix and the learning-rate
    schedule over: with ``max_steps`` its schedule would end at once and train at lr 0, and without,
    Lightning runs 1,000 epochs before ``setup`` sees it, so the CLI asks before the trainer is made."""
    if max_epochs in (None, -1):
        raise ConfigError(
            "trainer.max_epochs is unset: the data mix and the learning-rate schedule are laid out "
            "over epochs; set it (trainer.max_steps can still stop the run early, and a resume with "
            "a larger max_steps continues the same schedule)"
        )


def _example_sample(entries: list[Entry], size: int, seed: int) -> list[int]:
    """Indices of ``size`` entries drawn one by one."""
    return random.Random(seed).sample(range(len(entries)), size)


def _utterance_sample(entries: list[Entry], size: int, seed: int) -> list[int]:
    """Indices of whole utterances (every entry of each) drawn until the next would pass ``size``."""
    groups: dict[str, list[int]] = {}
    for index, (example, _) in enumerate(entries):
        groups.setdefault(example.utterance_id, []).append(index)
    chosen: list[int] = []
    for utterance in random.Random(seed).sample(sorted(groups), len(groups)):
        if len(chosen) + len(groups[utterance]) > size:
            break
        chosen += groups[utterance]
    if not chosen:
        raise ConfigError(
            f"max_eval_examples {size} is smaller than the first utterance paired_eval drew "
            f"({len(groups[utterance])} examples: its recordings and transcript); raise it"
        )
    return chosen


def _nested_fraction(examples: list[SLUExample], mix: SourceMix, seed: int) -> list[SLUExample]:
    """The seeded prefix holding ``mix.fraction`` of ``examples`` (nested across fractions)."""
    if mix.fraction >= 1.0:
        return examples
    order = sorted(range(len(examples)), key=lambda i: random.Random(f"{seed}:{examples[i].id}").random())
    keep = set(order[: round(mix.fraction * len(examples))])
    return [example for i, example in enumerate(examples) if i in keep]


class TextOnlyDataModule(SLUDataModule):
    """Transcripts only, for every epoch: the paper's text-only fine-tuning (0 % speech).

    With a ``tts_corpus``, every epoch adds its synthesised speech: TTS augmentation, still 0 %
    real speech.
    """

    def phases(self) -> list[CurriculumPhase]:
        return [self._every_epoch("text", {"text": SourceMix()})]

    def _every_epoch(self, name: str, mix: dict[str, SourceMix]) -> CurriculumPhase:
        """The one phase of a single-phase regime: ``mix``, plus all synthesised speech and noisy
        transcripts if there are any."""
        if self.tts_corpus is not None:
            name, mix = f"{name}+{TTS_SOURCE}", {**mix, TTS_SOURCE: SourceMix()}
        if self.recogniser_noise is not None:
            name, mix = f"{name}+{NOISY_SOURCE}", {**mix, NOISY_SOURCE: SourceMix()}
        return CurriculumPhase(name, epochs=self._max_epochs(), mix=mix)

    def _max_epochs(self) -> int:
        return max(self.trainer.max_epochs if self.trainer and self.trainer.max_epochs else 1, 1)


class MixedDataModule(TextOnlyDataModule):
    """All transcripts plus the speech subset (and any ``tts_corpus``), shuffled together every epoch
    (direct mixing)."""

    def phases(self) -> list[CurriculumPhase]:
        return [self._every_epoch("mixed", {"text": SourceMix(), "speech": SourceMix()})]


class CurriculumDataModule(SLUDataModule):
    """Phases from config, e.g. the paper's two text-only epochs, then text plus speech."""

    def __init__(self, *args, phases: list[CurriculumPhase], **kwargs):
        """
        Args:
            phases: the phase table, in order; their epochs must add up to ``trainer.max_epochs``.
        """
        super().__init__(*args, **kwargs)
        if not phases:
            raise ConfigError("a curriculum needs at least one phase")
        self._phases = list(phases)

    def phases(self) -> list[CurriculumPhase]:
        return self._phases

    def schedule_signature(self) -> str:
        # a phase following the model's schedule signs as "cosine", the default before it could,
        # so that checkpoints saved then still resume
        return repr([replace(phase, schedule=phase.schedule or "cosine") for phase in self._phases])

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.trainer and (problem := self._epochs_problem(self.trainer.max_epochs)):
            raise ConfigError(problem)
        super().setup(stage)

    def settings_problems(self, max_epochs: int | None) -> list[str]:
        problem = self._epochs_problem(max_epochs)
        return [*([problem] if problem else []), *super().settings_problems(max_epochs)]

    def _epochs_problem(self, max_epochs: int | None) -> str | None:
        """Why the phases do not fit the trainer's epochs, or None: they must fill them exactly."""
        total = sum(phase.epochs for phase in self._phases)
        if max_epochs == total:
            return None
        return (
            f"the curriculum's phases last {total} epochs but trainer.max_epochs is {max_epochs}; "
            "make them equal"
        )
