"""``slu-lightning pretrain-tiny``: pretrain the tiny stand-in, resumably, then export and measure it.

Read top to bottom: settings -> corpus -> module and data -> Lightning fit with a checkpoint every
few minutes (``--max-minutes`` stops early; the next call resumes from ``last.ckpt``) -> once all
steps are done, the backbone directory is written (float16 weights, the processor, a model card
with the command, data, steps, hardware, wall time and measured WER).

The run folder holds ``settings.json``; resuming it with other settings, or from a backbone folder
that has since been written again with other weights, is refused, so a checkpoint never silently
continues under a different recipe.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.profilers import SimpleProfiler

from slu_lightning.arguments import positive_int
from slu_lightning.atomic import atomic_write_dir, atomic_write_text, replace_problem
from slu_lightning.data.asr_corpus import SIZES as ASR_SIZES
from slu_lightning.data.asr_corpus import default_asr_dir, make_asr_corpus
from slu_lightning.model.backbone import BackboneError, load_model, resolve_backbone, weights_fingerprint
from slu_lightning.model.tiny import TINY_PRESETS
from slu_lightning.preemption import PreemptionCallback, save_last_checkpoint
from slu_lightning.pretrain.asr_eval import CARD_READOUTS, CARD_SETS, error_rates_by_set
from slu_lightning.pretrain.augment import SpecAugment
from slu_lightning.pretrain.batches import AUDIO_TASKS
from slu_lightning.pretrain.data import PretrainDataModule
from slu_lightning.pretrain.module import LossWeights, TinyPretrainModule
from slu_lightning.progress_log import ProgressLog

log = logging.getLogger(__name__)

EVAL_CLIPS = 300
"""Clips per set the model card's error rates are measured on, unless ``--eval-clips`` says."""

ADDED_LATER = {
    "read_steps": 0,
    "fresh_llm": False,
    "audio_tasks": "transcribe",
    "everyday_words": 0,
    "extra_voices": 0,
    "spec_augment": False,
    "grow_encoder": 0,
}
"""Settings added to the recipe after runs had started, as those runs had them."""


class PretrainError(ValueError):
    """A pretraining run cannot go on as asked; the message says why."""


@dataclass(frozen=True)
class PretrainSettings:
    """Everything that decides the pretrained weights (and so the run's identity)."""

    backbone: str = "tiny"
    """Tiny preset (architecture and random initial weights) to start from."""
    corpus_size: str = "large"
    """ASR corpus size (``data/asr_corpus.py``): 38k clips for ``large``."""
    everyday_words: int = 0
    """Most frequent words of each language added to the corpus's random-word vocabulary."""
    extra_voices: int = 0
    """eSpeak variants per locale that speak the corpus's train clips besides the pretrain voices."""
    seed: int = 0
    steps: int = 20_000
    batch_size: int = 32
    lr: float = 2.0e-3
    warmup_steps: int = 300
    hear_steps: int = 8_000
    """Steps of CTC alone before the other losses join (``TinyPretrainModule``)."""
    read_steps: int = 0
    """Steps of the text losses alone (``read``, ``continuation``) before the hearing stage."""
    grow_encoder: int = 0
    """Encoder layers appended to the backbone's ear, each starting as the identity
    (``append_identity_encoder_layers``)."""
    fresh_llm: bool = False
    """Start the LLM's transformer layers afresh, keeping the backbone's audio side and token
    embeddings (``reinitialise_llm_layers``); pair it with a reading stage."""
    audio_tasks: str = "transcribe"
    """Instructions the clips are heard under, comma-separated names from ``AUDIO_TASKS``."""
    spec_augment: bool = False
    """Mask random mel bands and frame runs of the training clips (``SpecAugment``)."""
    weights: LossWeights = field(default_factory=LossWeights)

    def to_json(self) -> dict:
        return asdict(self)

    def corpus_dir(self) -> Path:
        """Where the ASR corpus these settings train on is cached."""
        return default_asr_dir(self.corpus_size, self.seed, self.everyday_words, self.extra_voices)

    def build_corpus(self, workers: int | None = None) -> Path:
        """The ASR corpus these settings train on, synthesised on first use (``workers`` processes)."""
        return make_asr_corpus(
            self.corpus_dir(),
            size=self.corpus_size,
            seed=self.seed,
            everyday_words=self.everyday_words,
            extra_voices=self.extra_voices,
            workers=workers,
        )


def pretrain_tiny(
    settings: PretrainSettings,
    run_dir: Path,
    out: Path,
    *,
    max_minutes: float | None = None,
    stop_at_step: int | None = None,
    checkpoint_minutes: float = 5.0,
    val_every: int = 500,
    eval_clips: int = EVAL_CLIPS,
    workers: int = 1,
    export_unfinished: bool = False,
    profile: bool = False,
) -> Path | None:
    """Train (or resume) until ``settings.steps``; then export to ``out`` and return it.

    Returns None when ``max_minutes`` ran out, or ``stop_at_step`` came, first (call again to
    resume), unless
    ``export_unfinished`` asks for the weights as they are (the model card says how far they got).
    ``profile`` writes the seconds spent in each part of the training loop (loading batches,
    forward and backward, optimizer step, validation) to ``run_dir/fit-profile.txt``.
    """
    problems = settings_problems(settings) + option_problems(
        max_minutes, checkpoint_minutes, val_every, workers
    )
    if problem := replace_problem(out, "pretraining.json", "pretrain-tiny export"):  # before any training
        problems.append(f"--out: {problem}")
    if problems:  # before anything is written: a corrected command then starts in the same --run-dir
        raise PretrainError("cannot pretrain as asked:\n- " + "\n- ".join(problems))
    weights = backbone_weights(settings.backbone)
    if _exported_already(out, settings, eval_clips, weights):
        log.info(
            "%s already holds this run's export (all %d steps, the same settings, %d clips a set); "
            "nothing to do. Move it away to measure and write it again",
            out,
            settings.steps,
            eval_clips,
        )
        return out
    last = _check_run_dir(run_dir, settings, weights)
    corpus = settings.build_corpus()
    clock = WallClock(run_dir)
    L.seed_everything(settings.seed, workers=True)
    module = TinyPretrainModule(
        backbone=settings.backbone,
        lr=settings.lr,
        warmup_steps=settings.warmup_steps,
        max_steps=settings.steps,
        weights=settings.weights,
        hear_steps=settings.hear_steps,
        read_steps=settings.read_steps,
        fresh_llm=settings.fresh_llm,
        audio_tasks=settings.audio_tasks,
        grow_encoder=settings.grow_encoder,
    )
    data = PretrainDataModule(
        module.collator,
        corpus=corpus,
        seed=settings.seed,
        batch_size=settings.batch_size,
        num_workers=workers,
        augment=SpecAugment() if settings.spec_augment else None,
    )
    # the schedule still ends at settings.steps: stopping early leaves the weights a full run has there
    stop = settings.steps if stop_at_step is None else min(stop_at_step, settings.steps)
    saver = LastCheckpoint(checkpoint_minutes, stop_minutes=max_minutes, clock=clock, stop_step=stop)
    trainer = build_trainer(run_dir, stop, val_every, saver, profile)
    try:
        trainer.fit(module, datamodule=data, ckpt_path=last)
    finally:  # SIGINT/SIGTERM end fit by raising, after PreemptionCallback saved
        clock.record()
    if not saver.stopped and trainer.global_step >= settings.steps:  # all done: the state as fit left it
        save_last_checkpoint(trainer)
    if trainer.global_step < settings.steps:
        log.info("stopped at step %d of %d; the same command resumes", trainer.global_step, settings.steps)
        if not export_unfinished:
            return None
    return export_backbone(module, out, settings, run_dir, eval_clips, trainer.global_step)


def settings_problems(settings: PretrainSettings) -> list[str]:
    """Every reason ``settings`` cannot train, as the flags that set them say it (empty: none)."""
    problems = [
        f"--{name.replace('_', '-')} {value} is below {least}"
        for name, least in (
            ("batch_size", 1),
            ("warmup_steps", 0),
            ("hear_steps", 0),
            ("read_steps", 0),
            ("grow_encoder", 0),
            ("everyday_words", 0),
            ("extra_voices", 0),
        )
        if (value := getattr(settings, name)) < least
    ]
    if not settings.lr > 0:
        problems.append(f"--lr {settings.lr} is not above 0")
    weights = asdict(settings.weights)
    problems += [f"--{name}-weight {value} is below 0" for name, value in weights.items() if value < 0]
    if not any(value > 0 for value in weights.values()):
        problems.append("every loss weight is 0: nothing would train")
    if settings.hear_steps > 0 and not settings.weights.ctc > 0:
        problems.append(
            "--hear-steps trains the CTC loss alone: it needs --ctc-weight above 0 (or --hear-steps 0)"
        )
    if settings.read_steps > 0 and not settings.weights.read > 0:
        problems.append("--read-steps trains the text losses alone: it needs --read-weight above 0")
    tasks = settings.audio_tasks.split(",")
    if unknown := [task for task in tasks if task not in AUDIO_TASKS]:
        problems.append(
            f"--audio-tasks: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(AUDIO_TASKS)}"
        )
    if settings.backbone not in TINY_PRESETS:  # a preset is built on first use, later
        try:
            resolve_backbone(settings.backbone)
        except BackboneError as error:
            problems.append(f"--backbone: {error}")
    return problems


def option_problems(
    max_minutes: float | None, checkpoint_minutes: float, val_every: int, workers: int
) -> list[str]:
    """Every reason the run options (not settings: they leave the weights as they are) are impossible."""
    problems = []
    if max_minutes is not None and not max_minutes > 0:
        problems.append(f"--max-minutes {max_minutes} is not above 0")
    if not checkpoint_minutes > 0:
        problems.append(f"--checkpoint-minutes {checkpoint_minutes} is not above 0")
    if val_every < 1:
        problems.append(f"--val-every {val_every} is below 1")
    if workers < 0:
        problems.append(f"--workers {workers} is below 0")
    return problems


def build_trainer(
    run_dir: Path, steps: int, val_every: int, saver: LastCheckpoint, profile: bool = False
) -> L.Trainer:
    """The pretraining Trainer: step-based, validated every ``val_every`` steps, ``last.ckpt`` kept
    by ``saver`` and saved mid-epoch on SIGINT/SIGTERM (``PreemptionCallback``).

    The train loader is rebuilt each epoch: the batch sampler is made for one epoch (its order,
    and after a resume its first batch), so reusing it would replay that epoch, or its resumed
    tail, forever."""
    return L.Trainer(
        default_root_dir=run_dir,
        max_steps=steps,
        max_epochs=-1,
        reload_dataloaders_every_n_epochs=1,
        val_check_interval=val_every,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        gradient_clip_val=1.0,
        log_every_n_steps=10,
        precision="bf16-mixed" if torch.cuda.is_available() else "32-true",
        logger=L.pytorch.loggers.TensorBoardLogger(run_dir, name="tensorboard", version=""),
        enable_checkpointing=False,
        profiler=SimpleProfiler(dirpath=run_dir, filename="profile") if profile else None,
        callbacks=[
            L.pytorch.callbacks.LearningRateMonitor(),
            saver,
            ProgressLog(),
            PreemptionCallback("running the same command"),
        ],
    )


class WallClock:
    """Adds the training time since its last record to ``run_dir``'s wall time. Recorded with each
    checkpoint, so a run killed outright (out of memory, SIGKILL) still counts the time of the steps
    its checkpoint kept; the time after that checkpoint is lost with its steps."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.mark = time.perf_counter()

    def record(self) -> None:
        now = time.perf_counter()
        add_wall_time(self.run_dir, now - self.mark)
        self.mark = now


class LastCheckpoint(L.Callback):
    """Keeps ``checkpoints/last.ckpt`` current: every ``every_minutes``, and when this call's time
    budget (``stop_minutes``) runs out or step ``stop_step`` is done, after which it stops training.
    Each save also records the training time on ``clock``.

    It saves inside ``on_train_batch_end``, mid-epoch, because a checkpoint written once the epoch
    loop has stopped records the interrupted epoch as finished, and the resumed run would skip the
    rest of its batches. Lightning's ModelCheckpoint writes such a checkpoint at ``on_train_end``
    (and, in a run folder that moved, names its saves ``last-v1.ckpt``), so it is not used here.
    The budget is this call's own: Lightning's ``max_time`` counts earlier calls too (restored from
    the checkpoint), so a resumed run would stop at once.
    """

    def __init__(
        self,
        every_minutes: float,
        stop_minutes: float | None = None,
        clock: WallClock | None = None,
        stop_step: int | None = None,
    ):
        self.every = 60 * every_minutes
        self.budget = None if stop_minutes is None else 60 * stop_minutes
        self.clock, self.stop_step = clock, stop_step
        self.stopped = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = self.saved = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        now = time.monotonic()
        out_of_time = self.budget is not None and now - self.started > self.budget
        at_stop = self.stop_step is not None and trainer.global_step >= self.stop_step
        if (out_of_time or at_stop) and not trainer.should_stop:
            self.stopped, trainer.should_stop = True, True
        elif now - self.saved < self.every:
            return
        save_last_checkpoint(trainer)  # <default_root_dir>/checkpoints/last.ckpt, atomically
        self.saved = now
        if self.clock is not None:
            self.clock.record()


def backbone_weights(backbone: str) -> str | None:
    """``weights_fingerprint`` of the folder ``backbone`` names (a bundled stand-in or a directory),
    which its name does not tell: an earlier stage may be exported again to the same path with other
    weights. None for a tiny preset, whose name and configuration make its weights."""
    if backbone in TINY_PRESETS:
        return None
    return weights_fingerprint(resolve_backbone(backbone))


def _check_run_dir(run_dir: Path, settings: PretrainSettings, weights: str | None = None) -> str | None:
    """The checkpoint to resume from (or None), after checking the run's saved settings match and
    its backbone still holds the weights the run started from (``weights``: ``backbone_weights``).

    While the hearing stage lasts, the LLM-side loss weights and the stage's length have not yet
    acted on the weights, so they may change (a fresh run with the new settings would have trained
    the same steps alike); ``settings.json`` then records the new ones.
    """
    saved = run_dir / "settings.json"
    last = run_dir / "checkpoints" / "last.ckpt"
    if run_dir.is_dir() and any(run_dir.iterdir()) and not saved.is_file():
        raise PretrainError(
            f"{run_dir} holds files but no pretrain-tiny run (no settings.json): choose another --run-dir"
        )
    new, started_from, rewrite = settings.to_json(), weights, not saved.is_file()
    if saved.is_file():
        previous = json.loads(saved.read_text(encoding="utf-8"))
        recorded = previous.pop("backbone_weights", None)  # absent: a preset, or a run started before
        # a loss or stage added to the recipe after the run started was off in it
        previous["weights"] = {**dict.fromkeys(new["weights"], 0.0), **previous["weights"]}
        previous = {**ADDED_LATER, **previous}
        changed = sorted(k for k in new if previous.get(k) != new[k])
        if changed and not last.is_file():  # nothing trained yet (a refused or killed first call)
            log.info(
                "%s: no checkpoint yet; starting with the new settings (%s)", run_dir, ", ".join(changed)
            )
        elif changed:  # only then is the checkpoint's step needed
            step = _saved_step(last)
            if not _not_yet_in_effect(previous, new, step):
                raise PretrainError(
                    f"{run_dir} was started with other settings ({', '.join(changed)} differ); "
                    "pass the original settings to resume, or another --run-dir to start afresh"
                )
            log.info("%s: %s changed at step %d, before taking effect", run_dir, ", ".join(changed), step)
        if last.is_file():  # the same --backbone (a changed one is refused above): the same weights?
            started_from = _started_from(run_dir, settings.backbone, recorded, weights, last)
        rewrite = bool(changed) or started_from != recorded
    if rewrite:
        identity = {} if started_from is None else {"backbone_weights": started_from}
        atomic_write_text(saved, json.dumps({**new, **identity}, indent=2) + "\n")
    return str(last) if last.is_file() else None


def _started_from(
    run_dir: Path, backbone: str, recorded: str | None, weights: str | None, last: Path
) -> str | None:
    """The backbone weights the run folder's checkpoint was trained from: ``recorded`` in its
    ``settings.json``, if ``backbone`` still holds them (``weights``); refused if it now holds other
    weights. A run started before the record was kept is taken to have started from ``weights``."""
    if recorded == weights:
        return recorded
    if recorded is None:
        log.warning(
            "%s records no fingerprint of the weights it started from (begun before they were "
            "recorded): resuming, on trust that --backbone %s still holds them",
            run_dir,
            backbone,
        )
        return weights
    if weights is not None and _holds_checkpoint_weights(resolve_backbone(backbone), last):
        log.info("%s holds the checkpoint's own weights (lease_checkpoint unpack); resuming", backbone)
        return recorded
    raise PretrainError(
        f"{run_dir} was started from other weights of --backbone {backbone}: it has been written "
        "again since (an earlier stage exported again?), and resuming would go on from a checkpoint "
        f"of the old ones. Pass a new --run-dir (or delete {run_dir}) to train from {backbone} as it "
        "is now, or put the old weights back to resume"
    )


def _holds_checkpoint_weights(folder: Path, last: Path) -> bool:
    """Whether ``folder`` holds the checkpoint's own weights, in float16: what ``python -m
    benchmarks.lease_checkpoint unpack`` writes into a backbone carried to a GPU lease without its
    weights. The resume replaces them with the same checkpoint's, so the run goes on as it was."""
    trained = torch.load(last, map_location="cpu", mmap=True, weights_only=True)["state_dict"]
    held = load_model(folder).state_dict()
    return all(
        f"model.{name}" in trained and torch.equal(tensor, trained[f"model.{name}"].half().float())
        for name, tensor in held.items()
    )


def _exported_already(
    out: Path, settings: PretrainSettings, eval_clips: int, weights: str | None = None
) -> bool:
    """Whether ``out`` holds the finished export of these settings, measured on as many clips, made
    from the weights the backbone holds now (``weights``: ``backbone_weights``): a rerun of a
    finished command would otherwise rebuild, re-measure and rewrite the same backbone."""
    record_file = out / "pretraining.json"
    if not record_file.is_file():
        return False
    record = json.loads(record_file.read_text(encoding="utf-8"))
    if not (
        record.get("settings") == settings.to_json()
        and record.get("steps_done") == settings.steps
        and record.get("eval_clips") == eval_clips
    ):
        return False
    made_from = record.get("backbone_weights")  # absent: a preset, or an export made before
    if made_from == weights:
        return True
    # an export made before the fingerprint was recorded may still name the stages before it
    if made_from is None and _same_stages(record.get("lineage"), backbone_lineage(settings.backbone)):
        log.warning(
            "%s records no fingerprint of the backbone weights it was made from (exported before "
            "they were recorded): taking it, on trust, as made from --backbone %s as it is now",
            out,
            settings.backbone,
        )
        return True
    log.info(
        "%s holds this command's export made from other weights of --backbone %s (written again "
        "since): not reusing it",
        out,
        settings.backbone,
    )
    return False


def _same_stages(recorded: list[dict] | None, now: list[dict]) -> bool:
    """Whether an export's ``lineage`` (None: it kept none) still matches its backbone's, on the
    keys it recorded: an earlier stage exported again with other settings or steps changes it."""
    if recorded is None:
        return True
    return len(recorded) == len(now) and all(
        old.items() <= new.items() for old, new in zip(recorded, now, strict=True)
    )


def _saved_step(last: Path) -> int:
    """The step ``last.ckpt`` was saved at (0 if there is none), its tensors left unread (mmap); one
    written on a GPU machine reads on a CPU-only one too."""
    if not last.is_file():
        return 0
    return torch.load(last, map_location="cpu", mmap=True, weights_only=True)["global_step"]


def _not_yet_in_effect(previous: dict, new: dict, step: int) -> bool:
    """Whether the changes from ``previous`` to ``new`` settings have not yet acted at ``step``: only
    the hearing stage's length and the non-CTC weights changed, there is no reading stage (its
    losses act from step 0), and both hearing stages last past ``step``."""
    same_else = {k: v for k, v in previous.items() if k not in ("hear_steps", "weights")} == {
        k: v for k, v in new.items() if k not in ("hear_steps", "weights")
    }
    same_ctc = previous["weights"]["ctc"] == new["weights"]["ctc"]
    no_reading = new["read_steps"] == 0
    return (
        same_else and same_ctc and no_reading and step < min(previous.get("hear_steps", 0), new["hear_steps"])
    )


def add_wall_time(run_dir: Path, seconds: float) -> None:
    """Accumulate training wall time over resumed calls, in all and per machine (for the model
    card: a run may start on a lent GPU and go on on a CPU). Time recorded before the per-machine
    split counts as ``unrecorded``."""
    path = run_dir / "wall_time.json"
    record = json.loads(path.read_text()) if path.is_file() else {"seconds": 0.0}
    legacy = {"unrecorded": record["seconds"]} if record["seconds"] else {}
    machines = record.setdefault("by_hardware", legacy)
    machines[machine_name()] = machines.get(machine_name(), 0.0) + seconds
    record["seconds"] += seconds
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def export_backbone(
    module: TinyPretrainModule,
    out: Path,
    settings: PretrainSettings,
    run_dir: Path,
    eval_clips: int,
    steps_done: int,
) -> Path:
    """Write the backbone directory (float16 weights, processor, model card with measured WER)."""
    corpus = settings.corpus_dir()
    demo_size = "tiny" if settings.corpus_size == "tiny" else "small"  # tiny: the test scale
    shipped = copy.deepcopy(module)  # the card measures the weights it ships: float16, upcast
    shipped.model.to(torch.float16).float()
    # fit leaves the module on the CPU: measure on the GPU where there is one (minutes less on a lease)
    rates = error_rates_by_set(
        shipped.to(evaluation_device()), corpus, eval_clips, settings.seed, demo_size, settings.extra_voices
    )
    model = shipped.model.to("cpu", torch.float16)  # half the size, exactly as measured; loaders upcast
    wall = json.loads((run_dir / "wall_time.json").read_text())
    started_from = json.loads((run_dir / "settings.json").read_text(encoding="utf-8")).get("backbone_weights")

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        module.processor.save_pretrained(tmp)
        record = {
            "settings": settings.to_json(),
            "steps_done": steps_done,
            "error_rates": rates,
            "eval_clips": eval_clips,
            "wall_time_seconds": wall["seconds"],
            "wall_time_by_hardware": wall.get("by_hardware", {}),
            "hardware": machine_name(),
            "corpus": json.loads((corpus / "corpus.json").read_text())["config"],
            "lineage": backbone_lineage(settings.backbone),
        }
        if started_from is not None:  # weights_fingerprint of --backbone's folder (not the card's)
            record["backbone_weights"] = started_from
        (tmp / "pretraining.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(model_card(record), encoding="utf-8")

    return atomic_write_dir(out, write)


def evaluation_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def backbone_lineage(backbone: str) -> list[dict]:
    """The pretrain-tiny runs that made ``backbone``, oldest first: to reproduce a backbone trained
    in stages, run each command in turn, each on the export of the one before (empty for a preset
    or a model that pretrain-tiny did not write)."""
    record = resolve_backbone(backbone) / "pretraining.json"
    if not record.is_file():
        return []
    made = json.loads(record.read_text(encoding="utf-8"))
    stage = {
        "backbone": backbone,
        "command": command_line(made["settings"]),
        "steps_done": made["steps_done"],
        "steps_planned": made["settings"]["steps"],
    }
    return [*made.get("lineage", []), stage]


def machine_name() -> str:
    """The accelerator's name, or the CPU's and its thread count: where a call trained."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    threads = torch.get_num_threads()
    return f"CPU ({platform.processor() or platform.machine()}, {threads} thread{'s' * (threads != 1)})"


def stage_plan(settings: dict) -> str:
    """The stages before all losses train, as the model card words them."""
    read, hear = settings.get("read_steps", 0), settings.get("hear_steps", 0)
    stages = []
    if grown := settings.get("grow_encoder"):
        layers = f"{grown} encoder layer{'s' if grown > 1 else ''}"
        stages.append(f"{layers} appended to the backbone's ear, each starting as the identity")
    if settings.get("fresh_llm"):
        stages.append("new LLM layers on the backbone's audio side and token embeddings")
    if read:
        stages.append(f"read and continuation alone for the first {read} steps")
    if hear:
        stages.append(f"CTC alone for the {'next' if read else 'first'} {hear} steps")
    return "".join(f", {stage}" for stage in stages)


def model_card(record: dict) -> str:
    """The README of a pretrained stand-in: how it was made and what it reaches."""
    s = record["settings"]
    rows = "\n".join(
        f"| {name} | "
        + " | ".join(f"{r[readout][unit]:.3f}" for readout in CARD_READOUTS for unit in ("wer", "cer"))
        + " |"
        for name, r in record["error_rates"].items()
    )
    return (
        "# Tiny Qwen2-Audio stand-in, pretrained to hear\n\n"
        "A Qwen2-Audio-architecture model small enough for a CPU, pretrained by slu-lightning on\n"
        "speech recognition of synthesised (eSpeak NG) general sentences and text continuation, never\n"
        "on SLU data, so that the study's text-to-speech transfer can be asked of it.\n\n"
        f"Reproduce{_earlier_stages(record)}:\n\n"
        f"    {command_line(s)}{_eval_clips_flag(record)}\n\n"
        f"- steps: {record['steps_done']} of the {s['steps']} planned, at batch {s['batch_size']}, "
        f"lr {s['lr']}, seed {s['seed']}\n"
        f"- losses (weights): {json.dumps(s['weights'])}{stage_plan(s)}\n"
        f"- data: ASR corpus `{s['corpus_size']}` ({record['corpus']['sizes']} clips per locale and split, "
        f"locales {', '.join(record['corpus']['locales'])}){_everyday(s)}; {_voices(s)}\n"
        f"- training wall time {record['wall_time_seconds'] / 3600:.2f} h: {_by_machine(record)}; "
        f"exported and measured on {record['hardware']}\n"
        "- weights stored in float16; `from_pretrained(..., dtype=torch.float32)` upcasts them\n\n"
        f"Word and character error rates on {record['eval_clips']} clips per set:\n\n"
        "| set | CTC read-out WER | CTC read-out CER | decoder WER | decoder CER |\n|---|---|---|---|---|\n"
        f"{rows}\n\n{_set_legend(record['error_rates'])}\n{_locale_table(record['error_rates'])}"
    )


def _eval_clips_flag(record: dict) -> str:
    """The flag that measures the card's sets on as many clips as it did, where not the default."""
    return "" if record["eval_clips"] == EVAL_CLIPS else f" --eval-clips {record['eval_clips']}"


def _set_legend(rates: dict) -> str:
    """What each measured set holds, a line each."""
    return "".join(f"- {name}: {CARD_SETS[name]}\n" for name in rates)


def _everyday(settings: dict) -> str:
    words = settings.get("everyday_words", 0)
    return f", random words with each language's {words} most frequent" if words else ""


def _voices(settings: dict) -> str:
    extra = settings.get("extra_voices", 0)
    return f"pretrain voices and {extra} more eSpeak variants per locale" if extra else "pretrain voices only"


def _locale_table(rates: dict) -> str:
    """Word error rates per locale (CTC / decoder) on each set, with its clip count; empty for
    records measured before exports kept them."""
    if not all("by_locale" in rates[name] for name in rates):
        return ""
    locales = sorted({locale for name in rates for locale in rates[name]["by_locale"]})

    def cell(name: str, locale: str) -> str:
        r = rates[name]["by_locale"].get(locale)
        return f"{r['ctc']['wer']:.3f} / {r['decoder']['wer']:.3f} ({r['clips']})" if r else "-"

    header = "| locale | " + " | ".join(f"{name}: CTC / decoder WER (clips)" for name in rates) + " |"
    rows = "\n".join(f"| {locale} | {' | '.join(cell(n, locale) for n in rates)} |" for locale in locales)
    return f"\nBy locale:\n\n{header}\n|---|{'---|' * len(rates)}\n{rows}\n"


def _earlier_stages(record: dict) -> str:
    """The lineage's commands, as the card's lead-in to this run's own command: each in a run folder
    of its own (in the default one, each would be refused as the one before under other settings),
    a stage that stopped early stopped at the same step."""
    stages = "".join(
        f"\n    # {_how_it_ended(stage)}\n    {stage['command']}{_stop_flags(stage)} "
        f"--run-dir logs/pretrain-stage{number} --out {stage['backbone']}"
        for number, stage in enumerate(record.get("lineage", []), 1)
    )
    return f" (each stage from the export of the one before):\n{stages}\n\nthen" if stages else ""


def _stop_flags(stage: dict) -> str:
    """The flags that stop a stage where it stopped and export it, for a stage that stopped early."""
    done = stage["steps_done"]
    return "" if done == stage.get("steps_planned") else f" --stop-at-step {done} --export-unfinished"


def _how_it_ended(stage: dict) -> str:
    done = stage["steps_done"]
    if done == stage.get("steps_planned"):  # stages recorded before steps_planned all stopped early
        return f"ran all {done} steps, then exported"
    return f"stopped at step {done} and exported (--export-unfinished)"


def _by_machine(record: dict) -> str:
    machines = record.get("wall_time_by_hardware") or {record["hardware"]: record["wall_time_seconds"]}
    return ", ".join(f"{name} {seconds / 3600:.2f} h" for name, seconds in machines.items())


def command_line(settings: dict) -> str:
    defaults = PretrainSettings().to_json()
    flags = [
        f"--{key.replace('_', '-')}" + ("" if value is True else f" {value}")
        for key, value in settings.items()
        if key != "weights" and value != defaults[key]
    ]
    flags += [
        f"--{name}-weight {value}"
        for name, value in settings["weights"].items()
        if value != defaults["weights"][name]
    ]
    return " ".join(["slu-lightning pretrain-tiny", *flags])


SETTING_HELP = {
    "backbone": "tiny preset, bundled stand-in or pretrain-tiny export to start from",
    "corpus_size": "ASR corpus: tiny, small or large (38k clips)",
    "everyday_words": "add this many of each language's most frequent words to the ASR text (0: none)",
    "extra_voices": "let this many more eSpeak variants per locale speak the ASR clips (0: none)",
    "seed": "seeds the corpus, the initial weights and the batch order",
    "steps": "optimizer steps in all (batch --batch-size); the learning rate's cosine ends here",
    "batch_size": "clips per step",
    "lr": "peak learning rate (AdamW)",
    "warmup_steps": "linear warm-up steps",
    "hear_steps": "steps of the CTC loss alone before the others join",
    "read_steps": "steps of the text losses alone before hearing (needs --read-weight > 0)",
    "grow_encoder": "append this many encoder layers to --backbone's ear, each starting as the identity",
    "fresh_llm": "new LLM layers on --backbone's audio side and token embeddings",
    "audio_tasks": "comma-separated instructions the clips are heard under (AUDIO_TASKS)",
    "spec_augment": "mask random mel bands and frame runs of the training clips (SpecAugment)",
}
"""``--help`` text of each ``PretrainSettings`` field (the field docstrings say more)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slu-lightning pretrain-tiny",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = PretrainSettings()
    for f in fields(PretrainSettings):
        default, flag = getattr(defaults, f.name), f"--{f.name.replace('_', '-')}"
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=SETTING_HELP[f.name])
        elif f.name == "corpus_size":  # --asr-size, as coverage and speaker-gap call it, too
            parser.add_argument(
                flag, "--asr-size", dest=f.name, choices=ASR_SIZES, default=default, help=SETTING_HELP[f.name]
            )
        elif f.name == "steps":
            parser.add_argument(flag, type=positive_int, default=default, help=SETTING_HELP[f.name])
        elif f.name != "weights":
            parser.add_argument(flag, type=type(default), default=default, help=SETTING_HELP[f.name])
    for name, value in asdict(defaults.weights).items():
        parser.add_argument(
            f"--{name}-weight",
            type=float,
            default=value,
            help=f"weight of the {name} loss; 0 switches it off",
        )
    parser.add_argument(
        "--run-dir", type=Path, default=Path("logs/pretrain"), help="checkpoints and TensorBoard"
    )
    parser.add_argument("--out", type=Path, help="backbone directory to write (default: <run-dir>/backbone)")
    parser.add_argument("--max-minutes", type=float, help="stop after this long; the next call resumes")
    parser.add_argument(
        "--stop-at-step",
        type=positive_int,
        help="stop once this step is done (the schedule still ends at --steps); the next call resumes",
    )
    parser.add_argument(
        "--checkpoint-minutes", type=float, default=5.0, help="minutes between saves of last.ckpt"
    )
    parser.add_argument("--val-every", type=int, default=500, help="steps between validations")
    parser.add_argument(
        "--eval-clips", type=positive_int, default=EVAL_CLIPS, help="clips per WER set at the end"
    )
    parser.add_argument("--workers", type=int, default=1, help="dataloader processes")
    parser.add_argument(
        "--export-unfinished",
        action="store_true",
        help="export even if --max-minutes or --stop-at-step stopped training early",
    )
    parser.add_argument(
        "--profile", action="store_true", help="seconds per training-loop part, in <run-dir>/fit-profile.txt"
    )
    return parser


def parse_command(args: list[str]) -> tuple[PretrainSettings, argparse.Namespace]:
    """A pretrain-tiny command line as the settings it trains with, and the run options."""
    parsed = build_parser().parse_args(args)
    weights = LossWeights(**{name: getattr(parsed, f"{name}_weight") for name in asdict(LossWeights())})
    settings = PretrainSettings(
        **{f.name: getattr(parsed, f.name) for f in fields(PretrainSettings) if f.name != "weights"},
        weights=weights,
    )
    return settings, parsed


def main(args: list[str]) -> None:
    settings, parsed = parse_command(args)
    out = pretrain_tiny(
        settings,
        parsed.run_dir,
        parsed.out or parsed.run_dir / "backbone",
        max_minutes=parsed.max_minutes,
        stop_at_step=parsed.stop_at_step,
        checkpoint_minutes=parsed.checkpoint_minutes,
        val_every=parsed.val_every,
        eval_clips=parsed.eval_clips,
        workers=parsed.workers,
        export_unfinished=parsed.export_unfinished,
        profile=parsed.profile,
    )
    if out is not None:
        print((out / "README.md").read_text(encoding="utf-8"))
