"""Curriculum phases: what each stretch of epochs trains on, at which learning rate, with which modules.

Every regime is a phase table. Text-only fine-tuning is one phase of text; direct mixing is one
phase of text plus speech; the paper's curriculum is two text epochs then one epoch of text plus
speech at a lower learning rate. The data mix of epoch e, the learning rate at step s and the
trainable modules are pure functions of the table, the dataset sizes and (e, s), so a resumed run
continues exactly where it stopped, whatever phase it was in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import lightning as L
import torch

from slu_lightning.data.errors import ConfigError

SOURCES = ("text", "speech", "tts", "noisy")
"""Training sources: all transcripts, the real speech subset, speech synthesised for transcripts, and
transcripts corrupted as the recogniser hears (``data/recogniser_noise.py``)."""
HEARD_SOURCES = frozenset({"speech", "tts"})
"""Sources whose examples the model hears (audio input) rather than reads."""
TTS_SOURCE = "tts"
"""The ``source`` of every synthesised training example (also the phase-mix source that trains on them)."""
NOISY_SOURCE = "noisy"
"""The ``source`` of every transcript corrupted as the recogniser hears (and its phase-mix source)."""
FRAME_SECONDS = 0.01  # one mel frame = 160 samples = 10 ms at 16 kHz


@dataclass(frozen=True)
class SourceMix:
    """How much of one source (all transcripts, the speech subset, or all synthesised speech) a phase uses."""

    fraction: float = 1.0
    """Share of the source's examples used each epoch (a seeded, nested prefix)."""
    oversample: int = 1
    """How many times each used example appears per epoch."""


@dataclass(frozen=True)
class CurriculumPhase:
    """One stretch of epochs with its own data mix, schedule and trainable modules."""

    name: str
    epochs: int = 1
    mix: dict[str, SourceMix] = field(default_factory=lambda: {"text": SourceMix()})
    """Sources ``text``, ``speech`` (real), ``tts`` (synthesised) and/or ``noisy`` (transcripts as the
    recogniser hears them) and how much of each."""
    lr: float | None = None
    """Peak learning rate of this phase; None keeps the model's optimizer learning rate."""
    warmup_ratio: float | None = None
    """Warm-up share of this phase's optimizer steps; None keeps the model's."""
    schedule: Literal["cosine", "linear", "constant", "continue"] | None = None
    """Decay over this phase's own steps after warm-up; None keeps the model's optimizer schedule;
    ``continue`` carries on the phase before's warm-up and decay over both phases' steps, as if
    they were one (no restart)."""
    reset_optimizer: bool = False
    """Clear AdamW's moment estimates when the phase starts."""
    train_audio_encoder: bool | None = None
    """Override of the model's freeze switch for this phase; None keeps the model's setting."""
    train_projector: bool | None = None
    train_llm: bool | None = None

    def __post_init__(self) -> None:
        unknown = set(self.mix) - set(SOURCES)
        problems = [f"unknown sources {sorted(unknown)} (use {SOURCES})"] if unknown else []
        if self.epochs < 1:
            problems.append("epochs must be >= 1")
        if not self.mix:
            problems.append("mix must name at least one source")
        for source, mix in self.mix.items():
            if not 0 < mix.fraction <= 1 or mix.oversample < 1:
                problems.append(f"{source}: fraction must be in (0, 1] and oversample >= 1")
        if self.schedule == "continue" and (self.lr is not None or self.warmup_ratio is not None):
            problems.append("a phase that continues the schedule before it takes no lr or warmup_ratio")
        if problems:
            raise ConfigError(f"curriculum phase {self.name!r}: " + "; ".join(problems))

    @property
    def uses_speech(self) -> bool:
        """Whether the phase trains on real speech (the speech subset)."""
        return "speech" in self.mix

    @property
    def uses_tts(self) -> bool:
        """Whether the phase trains on synthesised speech (the DataModule's ``tts_corpus``)."""
        return TTS_SOURCE in self.mix

    @property
    def uses_noisy(self) -> bool:
        """Whether the phase trains on corrupted transcripts (the DataModule's ``recogniser_noise``)."""
        return NOISY_SOURCE in self.mix


def phase_index_at(phases: list[CurriculumPhase], epoch: int) -> int:
    """Index of the phase that epoch ``epoch`` (0-based) belongs to; the last phase extends."""
    end = 0
    for index, phase in enumerate(phases):
        end += phase.epochs
        if epoch < end:
            return index
    return len(phases) - 1


@dataclass
class PhaseSchedule:
    """Learning-rate multiplier as a pure function of the optimizer step (a LambdaLR callable).

    Each segment (a phase, with the phases after it that ``continue`` it) warms up and decays on its
    own. Holds plain lists only, so ``LambdaLR.state_dict`` stays loadable with ``weights_only=True``.
    """

    starts: list[int]
    """First optimizer step of each segment."""
    lengths: list[int]
    """Optimizer steps of each segment."""
    peaks: list[float]
    """Peak learning rate of each segment relative to the optimizer's base learning rate."""
    warmups: list[float]
    schedules: list[str]
    min_ratio: float = 0.0
    """Floor of the decay, relative to each phase's peak."""

    def __call__(self, step: int) -> float:
        index = max(i for i, start in enumerate(self.starts) if start <= step or i == 0)
        local, length = step - self.starts[index], max(self.lengths[index], 1)
        warmup = math.ceil(self.warmups[index] * length)
        if local < warmup:
            return self.peaks[index] * (local + 1) / warmup
        progress = min((local - warmup) / max(length - warmup, 1), 1.0)
        decay = {
            "cosine": 0.5 * (1 + math.cos(math.pi * progress)),
            "linear": 1 - progress,
            "constant": 1.0,
        }[self.schedules[index]]
        return self.peaks[index] * (self.min_ratio + (1 - self.min_ratio) * decay)


def build_schedule(
    phases: list[CurriculumPhase],
    steps_per_epoch: list[int],
    base_lr: float,
    base_warmup: float,
    base_schedule: str,
    min_ratio: float = 0.0,
) -> PhaseSchedule:
    """The schedule of ``phases`` given the optimizer steps of every epoch of the run."""
    if phases[0].schedule == "continue":
        raise ConfigError(f"curriculum phase {phases[0].name!r}: the first phase has no schedule to continue")
    segments: list[tuple[CurriculumPhase, int, int]] = []  # (first phase, first step, steps)
    first_epoch = 0
    for phase in phases:
        start = sum(steps_per_epoch[:first_epoch])
        steps = sum(steps_per_epoch[first_epoch : first_epoch + phase.epochs])
        first_epoch += phase.epochs
        if phase.schedule == "continue":
            opener, opened_at, so_far = segments.pop()
            segments.append((opener, opened_at, so_far + steps))
        else:
            segments.append((phase, start, steps))
    openers = [phase for phase, _, _ in segments]
    return PhaseSchedule(
        starts=[start for _, start, _ in segments],
        lengths=[steps for _, _, steps in segments],
        peaks=[(phase.lr if phase.lr is not None else base_lr) / base_lr for phase in openers],
        warmups=[phase.warmup_ratio if phase.warmup_ratio is not None else base_warmup for phase in openers],
        schedules=[phase.schedule or base_schedule for phase in openers],
        min_ratio=min_ratio,
    )


class CurriculumCallback(L.Callback):
    """Applies the active phase at every epoch start and logs what the curriculum did.

    The data mix itself comes from the DataModule, which rebuilds its train dataloader every epoch
    from the phase table (``reload_dataloaders_every_n_epochs=1``). This callback sets the
    trainable modules of the phase, resets the optimizer when a phase asks for it, and logs the
    phase, the real-speech share of each batch and the cumulative real speech examples and hours
    seen, summed over the ranks under DDP (each rank trains on its share of every step's batch).
    Synthesised speech (``source == "tts"``) is heard too, but counted apart: the speech
    figures keep meaning real speech, the quantity the paper varies.
    """

    def __init__(self) -> None:
        self.speech_examples_seen = 0
        self.speech_seconds_seen = 0.0
        self.tts_examples_seen = 0
        self.examples_seen = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A run resumed mid-epoch skips ``on_train_epoch_start``: its phase's parts train all the same."""
        self._train_parts_of_phase(trainer, pl_module)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        phases, index = self._train_parts_of_phase(trainer, pl_module)
        phase = phases[index]
        first_epoch = sum(p.epochs for p in phases[:index])
        # Lightning calls this hook only where an epoch starts, resumed runs included (under
        # max_steps a resumed loop stays `restarting` for good, so that flag cannot tell)
        if phase.reset_optimizer and trainer.current_epoch == first_epoch and index > 0:
            for optimizer in trainer.optimizers:
                optimizer.state.clear()

    @staticmethod
    def _train_parts_of_phase(
        trainer: L.Trainer, pl_module: L.LightningModule
    ) -> tuple[list[CurriculumPhase], int]:
        """Switch on the parts the current epoch's phase trains; the phases and that phase's index."""
        phases = trainer.datamodule.phases()
        index = phase_index_at(phases, trainer.current_epoch)
        phase = phases[index]
        pl_module.set_trainable(
            audio_encoder=phase.train_audio_encoder, projector=phase.train_projector, llm=phase.train_llm
        )
        return phases, index

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        rows = range(len(batch["examples"]))
        skipped = torch.tensor([row in batch["skipped"] for row in rows])  # silent stand-ins, not heard
        heard = batch["is_speech"] & ~skipped.to(batch["is_speech"].device)  # (batch,)
        synthetic = torch.tensor(
            [batch["examples"][row].source == TTS_SOURCE for row in rows], device=heard.device
        )
        real = heard & ~synthetic
        frames = 0.0
        if real.any():  # the clips of the heard rows, in row order
            frames = float(batch["feature_attention_mask"][real[batch["is_speech"]]].sum())
        counts = [len(rows), int(real.sum()), int((heard & synthetic).sum()), frames]
        examples, n_speech, n_tts, frames = _summed_over_ranks(trainer, pl_module, counts)
        self.examples_seen += int(examples)
        self.speech_examples_seen += int(n_speech)
        self.tts_examples_seen += int(n_tts)
        self.speech_seconds_seen += frames * FRAME_SECONDS
        logged = {"curriculum/speech_fraction": n_speech / max(examples, 1), **self._totals()}
        pl_module.log_dict(logged, on_step=True, on_epoch=False)
        # from each batch, not the epoch's start: a run resumed mid-epoch logs its epoch's phase too
        phase = float(phase_index_at(trainer.datamodule.phases(), trainer.current_epoch))
        pl_module.log("curriculum/phase", phase, on_step=False, on_epoch=True)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The totals at the epoch's last step: per batch they are logged every
        ``log_every_n_steps`` only, and would stop short of what the run saw."""
        for logger in trainer.loggers:  # at the step Lightning gives the epoch's last batch
            logger.log_metrics(self._totals(), step=trainer.global_step - 1)

    def _totals(self) -> dict[str, float]:
        totals = {
            "curriculum/speech_examples_seen": float(self.speech_examples_seen),
            "curriculum/speech_hours_seen": self.speech_seconds_seen / 3600,
        }
        if self.tts_examples_seen:
            totals["curriculum/tts_examples_seen"] = float(self.tts_examples_seen)
        return totals

    def state_dict(self) -> dict:
        return {
            "speech_examples_seen": self.speech_examples_seen,
            "speech_seconds_seen": self.speech_seconds_seen,
            "tts_examples_seen": self.tts_examples_seen,
            "examples_seen": self.examples_seen,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self.speech_examples_seen = int(state_dict["speech_examples_seen"])
        self.speech_seconds_seen = float(state_dict["speech_seconds_seen"])
        self.tts_examples_seen = int(state_dict.get("tts_examples_seen", 0))  # absent before TTS existed
        self.examples_seen = int(state_dict["examples_seen"])


def _summed_over_ranks(trainer: L.Trainer, pl_module: L.LightningModule, counts: list[float]) -> list[float]:
    """``counts`` added up over every rank: under DDP each one sees only its share of a step's batch.
    A collective: every rank calls it after every batch, as Lightning calls ``on_train_batch_end``."""
    if trainer.world_size == 1:
        return counts
    local = torch.tensor(counts, dtype=torch.float64, device=pl_module.device)
    return trainer.strategy.reduce(local, reduce_op="sum").tolist()
