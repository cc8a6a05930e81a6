"""``slu-lightning``: LightningCLI for fit/validate/test/predict, plus the toolkit's own commands.

Lightning subcommands are Trainer methods; the other commands (building the demo corpus,
exporting adapters) are dispatched here before LightningCLI sees the arguments.

Every run has a name that fixes its directory, ``<run.root>/<run.name>/``: TensorBoard events,
``config.yaml`` (``config_test.yaml`` for ``test``, and so on), ``checkpoints/`` and predictions all
live there, so a relaunch of the same command continues in the same place. ``--ckpt_path last``
resumes and fails clearly when the run has no checkpoint; ``--ckpt_path auto`` resumes if it can
and starts fresh otherwise. ``--trainer.logger`` adds loggers beside the run's TensorBoard logger;
a ``trainer.default_root_dir`` other than the run's folder is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import io
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import yaml
from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.trainer.states import TrainerFn

from slu_lightning.atomic import atomic_write_text
from slu_lightning.checkpoint_io import AtomicCheckpointIO, CheckpointError, check_checkpoint_file
from slu_lightning.curriculum import CurriculumCallback
from slu_lightning.data.corpus_cache import CorpusFolderError
from slu_lightning.data.datamodules import SLUDataModule, refuse_unset_epochs
from slu_lightning.data.errors import ConfigError, DataError
from slu_lightning.experiments.sweep import run_config_name
from slu_lightning.export import ExportError
from slu_lightning.model.backbone import BackboneError
from slu_lightning.model.module import SLUModule
from slu_lightning.preemption import PreemptionCallback
from slu_lightning.pretrain.recipe import PretrainError
from slu_lightning.progress_log import ProgressLog
from slu_lightning.provenance import ProvenanceCallback
from slu_lightning.run_checkpoint import RunCheckpoint

log = logging.getLogger("slu_lightning")
LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


class RunError(ValueError):
    """A run cannot start as asked (e.g. resume requested but no checkpoint exists)."""


CKPT_PATH_HELP = {
    "fit": "last: resume <run.root>/<run.name>/checkpoints/last.ckpt, an error if there is none; "
    "auto: resume it if it exists, else start fresh; or a checkpoint path. Without one, a run "
    "folder that already holds a checkpoint is refused.",
    "evaluate": "last (or auto): the run's checkpoints/last.ckpt; best: its best-*.ckpt (lowest "
    "val/loss); or a checkpoint path. Without one, the backbone as loaded is scored (the zero-shot "
    "baseline), and a run folder that holds a checkpoint is refused.",
}


class SLUCli(LightningCLI):
    """LightningCLI with named run directories, resume checks and the data/model connection."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--run.name",
            type=str,
            default="default",
            help="Run name: fixes the log and checkpoint directory <run.root>/<run.name>.",
        )
        parser.add_argument("--run.root", type=str, default="logs", help="Folder holding all runs.")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.save_last": True,
                "checkpoint.save_top_k": 1,
                "checkpoint.monitor": "val/loss",
                "checkpoint.mode": "min",
                "checkpoint.filename": "best-{epoch}-{step}",
                # Overwrite last.ckpt even when the checkpoint's recorded folder differs (a run moved
                # to another path or machine): Lightning would write last-v1.ckpt, and the next
                # --ckpt_path last would resume from the stale last.ckpt.
                "checkpoint.enable_version_counter": False,
            }
        )
        parser.link_arguments(
            ("run.root", "run.name"),
            "checkpoint.dirpath",
            compute_fn=lambda root, name: str(Path(root) / name / "checkpoints"),
        )

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        run_dir = self.run_dir = Path(config.run.root) / config.run.name
        check_default_root_dir(config.trainer.get("default_root_dir"), run_dir)
        config.trainer.logger = run_loggers(config.trainer.logger, config.run.root, config.run.name)
        self._unstarted = UnstartedRun(run_dir)
        self.save_config_kwargs["config_filename"] = run_config_name(self.subcommand)
        self.save_config_kwargs["given_ckpt_path"] = config.get("ckpt_path")
        follow_run_seed(config)
        if self.subcommand == "predict" and not sys.stdout.isatty():
            config.trainer.enable_progress_bar = False  # stdout holds the JSON lines; the log says how far
        if self.subcommand == "fit":
            refuse_unset_epochs(config.trainer.get("max_epochs"))
            config.ckpt_path = resolve_resume(config.ckpt_path, run_dir / "checkpoints")
            self.save_config_kwargs["resumes"] = config.ckpt_path is not None
        elif config.get("ckpt_path") in ("last", "auto"):  # auto: a fit's saved config says so
            config.ckpt_path = resolve_resume(config.ckpt_path, run_dir / "checkpoints", self.subcommand)
        elif config.get("ckpt_path") == "best":
            config.ckpt_path = resolve_best(run_dir / "checkpoints")
        if config.get("ckpt_path") is None and self.subcommand != "fit":
            check_untuned(self.subcommand, run_dir / "checkpoints")
        if names_a_file(config.get("ckpt_path")):
            check_checkpoint_file(config.ckpt_path)

    def instantiate_trainer(self, **kwargs) -> Trainer:
        """The trainer's ``default_root_dir`` is the run's folder, passed here rather than set in the
        config, so that the saved config leaves it to run.root and run.name and runs again under
        another name."""
        return super().instantiate_trainer(default_root_dir=str(self.run_dir), **kwargs)

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs) -> LightningArgumentParser:
        """Lightning's ``--ckpt_path`` help describes its own ``last``; this CLI resolves it in the run."""
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand in ("validate", "test"):  # Lightning's table lists every metric of every locale
            parser.set_defaults(verbose=False)
        for action in parser._actions:
            if action.dest == "ckpt_path":
                action.help = CKPT_PATH_HELP["fit" if subcommand == "fit" else "evaluate"]
        return parser

    def _parse_ckpt_path(self) -> None:
        """LightningCLI would overwrite this run's model settings with the checkpoint's, silently.
        Here the run's config wins; ``SLUModule.on_load_checkpoint`` logs what differs and refuses a
        checkpoint of another backbone or fine-tuning mode."""

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        self.datamodule.connect(self.model.tokenizer, self.model.prompt, self.model.n_mels)
        if self.subcommand == "fit":  # Lightning names it to the trainer only after setup
            self.datamodule.resumed_checkpoint = self.config[self.subcommand].ckpt_path

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except Exception as error:
            if self.trainer.global_step == 0 and user_error(error) is not None:  # 0 until a restore
                self._unstarted.discard()
            raise


def check_default_root_dir(given: str | None, run_dir: Path) -> None:
    """Refuse a ``trainer.default_root_dir`` other than the run's folder: the run would not be there.

    Raises:
        RunError: naming the folder that run.root and run.name give.
    """
    if given is not None and Path(given).resolve() != run_dir.resolve():
        raise RunError(
            f"trainer.default_root_dir {given}: a run's folder is <run.root>/<run.name>, here {run_dir}; "
            "set --run.root and --run.name instead (an older run's config.yaml names its own folder "
            "there: delete that line to run it under another name)"
        )


RUN_LOGGER = "lightning.pytorch.loggers.TensorBoardLogger"


def run_loggers(given: Any, root: str, name: str) -> list:
    """The run's TensorBoard logger, writing into its folder, then the loggers ``--trainer.logger``
    names (one, or a list in a config file) beside it. The run's comes first: ``trainer.log_dir``, where
    every file of the run is written, is the first logger's folder. A run's own logger as its
    ``config.yaml`` records it (a TensorBoardLogger of version ``''``) is left out of the others,
    so a saved config run again, under this name or another, logs to this run's folder alone.

    Raises:
        RunError: for ``--trainer.logger false``: a run always logs to TensorBoard.
    """
    if given is False:
        raise RunError(
            "--trainer.logger false: a run always logs to TensorBoard in its folder <run.root>/<run.name>; "
            "--trainer.logger adds loggers beside it"
        )
    others = [] if given in (None, True) else given if isinstance(given, list) else [given]
    own = {"class_path": RUN_LOGGER, "init_args": {"save_dir": str(root), "name": name, "version": ""}}
    return [own, *(logger for logger in others if not is_run_logger(logger))]


def is_run_logger(logger: Any) -> bool:
    """Whether a ``trainer.logger`` entry is a run's own TensorBoard logger, as ``run_loggers`` adds it."""
    return logger.get("class_path") == RUN_LOGGER and logger.get("init_args", {}).get("version") == ""


class UnstartedRun:
    """A command refused at setup (a fit's curriculum epochs against ``max_epochs``, a resume on
    other data, a predict whose every input was skipped) leaves nothing behind: Lightning opens a
    TensorBoard events file before the setup hooks, and an empty run would show in TensorBoard and
    in the folder listing as if it had run."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.existed = run_dir.exists()
        self.events_before = set(run_dir.glob("events.out.tfevents.*"))

    def discard(self) -> None:
        """Remove the events files this fit opened, and the run folder if it made it and it is empty."""
        for events in set(self.run_dir.glob("events.out.tfevents.*")) - self.events_before:
            events.unlink()
        if not self.existed and self.run_dir.is_dir() and not any(self.run_dir.iterdir()):
            self.run_dir.rmdir()


class RunConfigSaver(SaveConfigCallback):
    """Saves the run's config with ``--ckpt_path`` as given (``auto``, ``last``), not as resolved to
    this run's checkpoint file: ``fit --config <run>/config.yaml --run.name other`` would otherwise
    resume the first run's checkpoint in the other run, silently.

    A fresh ``fit`` saves ``config.yaml`` at setup, as Lightning does. A resumed one (``resumes``)
    saves it when training starts, once the checkpoint is restored: the model refuses a checkpoint
    of another backbone or fine-tuning mode, and the optimizer one of other parameters, only after
    setup, and a refused resume would leave a config that never trained the checkpoint, which
    ``test --config <run>/config.yaml --ckpt_path last`` then refuses. A resumed run that has
    nothing left to train keeps the config that trained it. ``validate``, ``test`` and ``predict``
    save theirs (``config_test.yaml``, ...) when they end, after the metrics and predictions it
    describes: one that fails or is interrupted leaves the earlier evaluation's config beside the
    earlier evaluation's results."""

    def __init__(
        self, parser, config, *, given_ckpt_path: str | None = None, resumes: bool = False, **kwargs
    ) -> None:
        config = config.clone()
        if "ckpt_path" in config:
            config.ckpt_path = given_ckpt_path
        super().__init__(parser, config, **kwargs)
        self.resumes = resumes

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == TrainerFn.FITTING and not self.resumes:
            self._save(trainer)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.resumes:
            self._save(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # not a validation inside fit
            self._save(trainer)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._save(trainer)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._save(trainer)

    def _save(self, trainer: Trainer) -> None:
        """Write the config through a temporary file and a rename: Lightning's ``parser.save`` writes
        in place, and a kill mid-write left a truncated ``config.yaml``, which resumes nothing."""
        log_dir = trainer.log_dir  # a collective under DDP: every rank must ask
        if trainer.is_global_zero:
            text = self.parser.dump(self.config, skip_none=False)
            atomic_write_text(Path(log_dir) / self.config_filename, text)


def follow_run_seed(config) -> None:
    """Model and data seeds left unset (None) take the run's ``seed_everything``, so that a seed
    axis varies what a run draws: batch order, adapter initialisation, dropout masks. Without this
    every run seed of a full fine-tuning would train the same batches in the same order. The saved
    config records the seeds used."""
    if isinstance(config.seed_everything, bool):  # False: not seeded
        return
    for part in (config.model, config.data):
        if part.init_args.get("seed", 0) is None:
            part.init_args.seed = int(config.seed_everything)


def names_a_file(ckpt_path: str | None) -> bool:
    """Whether ``--ckpt_path`` (resolved) is a checkpoint path, not Lightning's ``hpc`` or a registry."""
    return bool(ckpt_path) and ckpt_path != "hpc" and not ckpt_path.startswith("registry")


def resolve_resume(ckpt_path: str | None, checkpoint_dir: Path, subcommand: str = "fit") -> str | None:
    """Turn ``last``/``auto`` into a real path, or fail clearly instead of restarting silently.

    A fit given another checkpoint (another run's, or this run's ``best-*.ckpt``) in a run that
    holds its own ``last.ckpt`` is refused: it would throw away the run's progress since, and so
    would every relaunch of its saved config, which keeps the path as given (a cluster requeue)."""
    last = checkpoint_dir / "last.ckpt"  # a file, or a folder under FSDP's sharded state dicts
    using = "resuming from" if subcommand == "fit" else f"{subcommand}: the weights of"
    if ckpt_path == "best" and subcommand == "fit":
        raise RunError(
            "--ckpt_path best picks a checkpoint to evaluate; a fit resumes from last (or auto), or "
            "starts from a checkpoint PATH"
        )
    if ckpt_path == "auto":
        if last.exists():
            log.info("%s %s", using, last)
            return str(last)
        log.info(
            "no checkpoint in %s%s", checkpoint_dir, ": starting a fresh run" if subcommand == "fit" else ""
        )
        return None
    if ckpt_path == "last":
        if not last.exists():
            fresh = (
                ", or use --ckpt_path auto to start fresh when there is none" if subcommand == "fit" else ""
            )
            raise RunError(f"--ckpt_path last: no checkpoint at {last}. Check --run.name/--run.root{fresh}.")
        log.info("%s %s", using, last)
        return str(last)
    if ckpt_path is None:
        if last.exists():
            raise RunError(
                f"run directory {checkpoint_dir.parent} already holds a checkpoint; resume it with "
                "--ckpt_path last (or auto), or pick another --run.name"
            )
        log.info("starting a fresh run in %s", checkpoint_dir.parent)
    elif names_a_file(ckpt_path) and last.exists() and Path(ckpt_path).resolve() != last.resolve():
        raise RunError(
            f"run directory {checkpoint_dir.parent} already holds its own checkpoint, and resuming "
            f"{ckpt_path} would discard its progress since: continue it with --ckpt_path last (or "
            "auto), or start from that checkpoint under another --run.name"
        )
    return ckpt_path


class _Parsed(Exception):
    """Raised once a command line has parsed, before anything is built, with the config it saves."""

    def __init__(self, config: dict) -> None:
        self.config = config


class _ParseOnly(SLUCli):
    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand].clone()
        follow_run_seed(config)
        raise _Parsed(yaml.safe_load(self._parser(self.subcommand).dump(config, skip_none=False)))


def parse_command(args: list[str]) -> dict:
    """The config a ``fit``/``test`` command line would save (``config.yaml``), parsed as the run
    parses it, the model and data seeds following ``seed_everything``; nothing is built or run.

    Raises:
        ConfigError: what is wrong with the configs and overrides (a mistyped key, a value of the
            wrong type), in one line.
    """
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed), contextlib.redirect_stdout(io.StringIO()), _quiet_logs():
            _ParseOnly(SLUModule, SLUDataModule, args=args, **cli_options())
    except _Parsed as parsed:
        return parsed.config
    except SystemExit:
        lines = printed.getvalue().split("error:", 1)[-1].splitlines()
        noise = (
            "Does not validate against",
            "Subtypes:",
            "Errors:",
            "Expected a <class 'NoneType'>",
            "Given value type",
        )
        kept = (line.strip().removeprefix("- ") for line in lines)
        raise ConfigError(" ".join(line for line in kept if line and not line.startswith(noise))) from None
    raise ConfigError("the command line parsed to nothing")


@contextlib.contextmanager
def _quiet_logs():
    """No INFO lines (LightningCLI's "Seed set to 0") or warnings while a command line is only parsed."""
    logging.disable(logging.INFO)
    try:
        with warnings.catch_warnings():  # "args and sys.argv both given": meant, sys.argv is the sweep's
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def resolve_best(checkpoint_dir: Path) -> str:
    """``--ckpt_path best`` for validate/test/predict: the run's ``best-*.ckpt`` (the CLI keeps one, by
    ``val/loss``). Lightning's own ``best`` needs the fit's callback in the same process."""
    found = sorted(checkpoint_dir.glob("best-*.ckpt"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise RunError(
            f"--ckpt_path best: {checkpoint_dir} holds {len(found)} best-*.ckpt ({names}); "
            "name the checkpoint with --ckpt_path PATH"
        )
    log.info("using the best checkpoint, %s", found[0])
    return str(found[0])


def check_untuned(subcommand: str, checkpoint_dir: Path) -> None:
    """Evaluating without ``--ckpt_path`` scores the backbone as loaded: the zero-shot baseline when
    meant, a lost result when ``--ckpt_path last`` was forgotten in a trained run, whose metrics and
    predictions it would replace. Refuse the second, say which the first is."""
    last = checkpoint_dir / "last.ckpt"
    if last.exists():
        raise RunError(
            f"{subcommand} without --ckpt_path would score the backbone as loaded, with no fine-tuned "
            f"weights, and replace the results of {checkpoint_dir.parent}, which has a checkpoint: add "
            "--ckpt_path last (or best, or a file); for the zero-shot baseline, name another --run.name"
        )
    log.warning(
        "%s without --ckpt_path: the backbone as loaded, with no fine-tuned weights (the zero-shot baseline)",
        subcommand,
    )


def lightning_main(args: list[str] | None) -> None:
    """Run a Lightning subcommand; ``args=None`` reads ``sys.argv`` like any LightningCLI."""
    SLUCli(SLUModule, SLUDataModule, args=args, **cli_options())


def cli_options() -> dict:
    """How ``SLUCli`` is built, for a run and for ``parse_command``'s parse alike."""
    return {
        "subclass_mode_model": True,
        "subclass_mode_data": True,
        "save_config_callback": RunConfigSaver,
        "auto_configure_optimizers": False,  # SLUModule's optimizer settings are model.init_args.optimizer
        "save_config_kwargs": {"overwrite": True},
        "trainer_defaults": {
            "reload_dataloaders_every_n_epochs": 1,  # each epoch's loader is built from its curriculum phase
            "use_distributed_sampler": False,  # the DataModule splits data across ranks itself
            "num_sanity_val_steps": 0,
            # by class path, not an instance, so that a run's config.yaml can be read back
            "plugins": [{"class_path": f"{AtomicCheckpointIO.__module__}.{AtomicCheckpointIO.__name__}"}],
            "callbacks": [
                CurriculumCallback(),
                ProvenanceCallback(),
                LearningRateMonitor(logging_interval="step"),
                ProgressLog(),
                PreemptionCallback(),
            ],  # last: saves after the others' batch-end hooks
        },
        "seed_everything_default": 0,
        # an option given by a prefix (--trainer.max_epoch) is an error, not silently another one
        "parser_kwargs": {"allow_abbrev": False},
    }


def make_demo_corpus_main(args: list[str]) -> None:
    from slu_lightning.data.demo_corpus import default_demo_dir, make_demo_corpus

    parser = argparse.ArgumentParser(
        prog="slu-lightning make-demo-corpus",
        description="Synthesise the offline multilingual spoken SLU demo corpus.",
    )
    parser.add_argument("--size", choices=("tiny", "small", "large"), default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the cache)")
    options = parser.parse_args(args)
    out = make_demo_corpus(
        options.out or default_demo_dir(options.size, options.seed), size=options.size, seed=options.seed
    )
    print(out)


def synthesize_main(args: list[str]) -> None:
    from slu_lightning.data.tts_augment import synthesise_manifest

    parser = argparse.ArgumentParser(
        prog="slu-lightning synthesize",
        description="Speak the transcripts of a training manifest with eSpeak NG (the `tts` source).",
    )
    parser.add_argument("--manifest", type=Path, required=True, help="a training manifest (JSONL)")
    parser.add_argument("--out", type=Path, required=True, help="output folder: a TtsCorpus")
    parser.add_argument("--seed", type=int, default=0, help="voices, rates and pitches (the demo's seed)")
    parser.add_argument("--workers", type=int, default=None, help="synthesis processes (default: by size)")
    options = parser.parse_args(args)
    print(synthesise_manifest(options.manifest, options.out, seed=options.seed, workers=options.workers))


def export_main(args: list[str]) -> None:
    from slu_lightning.export import export_checkpoint

    parser = argparse.ArgumentParser(
        prog="slu-lightning export",
        description="Write a fit checkpoint for plain transformers/peft: OUT/adapter (LoRA runs) or "
        "OUT/model (full fine-tuning), each with the processor, the run's decoding and export.json "
        "(the prompts). Only a folder an earlier export wrote is replaced.",
    )
    parser.add_argument("--ckpt", type=Path, required=True, help="a checkpoint of `slu-lightning fit`")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--merged",
        action="store_true",
        help="LoRA runs: also write OUT/merged, the adapters merged into the base",
    )
    options = parser.parse_args(args)
    print(export_checkpoint(options.ckpt, options.out, merged=options.merged))


COMMANDS: dict[str, tuple[str, str]] = {  # name: (slu_lightning.<module>:<function of the arguments>, use)
    "make-demo-corpus": ("cli:make_demo_corpus_main", "synthesise the offline spoken SLU demo corpus"),
    "synthesize": ("cli:synthesize_main", "speak a manifest's transcripts with eSpeak NG (TTS data)"),
    "pretrain-tiny": ("pretrain.recipe:main", "pretrain the tiny Qwen2-Audio stand-in, resumable"),
    "transcribe": ("experiments.cascade:main", "transcribe a manifest's speech (the cascade's step one)"),
    "compare-transcripts": ("experiments.transcript_wer:main", "WER of transcript files, paired"),
    "compare-runs": ("experiments.compare_runs:main", "two test runs paired by example, with CIs"),
    "coverage": ("pretrain.coverage:main", "SLU words the pretraining text never says"),
    "speaker-gap": ("pretrain.speaker_gap:main", "WER on trained clips, new sentences, new voices"),
    "export": ("cli:export_main", "a checkpoint as a peft adapter or a full model, for transformers"),
    "score": ("evaluation.scoring:score_main", "score predictions against gold, SLURP's rules"),
    "sweep": ("experiments.sweep:main", "a grid of named runs, resumable cell by cell"),
    "report": ("experiments.report:main", "a sweep's tables and plot, with CIs and paired tests"),
}


def usage() -> str:
    """The commands, each with what it does; ``slu-lightning COMMAND --help`` gives its options."""
    lines = [
        "usage: slu-lightning COMMAND [options]   (slu-lightning COMMAND --help: its options)",
        "",
        "  fit                            LightningCLI: --config C.yaml [--ckpt_path last|auto|PATH]",
        "  validate, test, predict        LightningCLI: --config C.yaml [--ckpt_path last|auto|best|PATH]",
    ]
    lines += [f"  {name:<30} {what}" for name, (_, what) in COMMANDS.items()]
    return "\n".join(lines)


def run_command(command: str, args: list[str]) -> None:
    """Import a toolkit command's module only when it runs, so ``fit`` does not load them all."""
    module, function = COMMANDS[command][0].split(":")
    getattr(importlib.import_module(f"slu_lightning.{module}"), function)(args)


def main(argv: list[str] | None = None) -> None:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    command, rest = argv[0], argv[1:]
    if not command.startswith("-") and command not in (*LIGHTNING_COMMANDS, *COMMANDS):
        close = difflib.get_close_matches(command, [*LIGHTNING_COMMANDS, *COMMANDS], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"slu-lightning: unknown command {command!r}{hint}\n\n{usage()}", file=sys.stderr)
        raise SystemExit(2)
    try:
        if command in COMMANDS:
            run_command(command, rest)
        else:
            lightning_main(None if from_command_line else argv)
    except KeyboardInterrupt:  # fit saves on its own (PreemptionCallback); the others clean up as they unwind
        print(f"slu-lightning {command}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except BrokenPipeError:  # the reader of the output went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    except Exception as error:  # noqa: BLE001 - only user errors are caught, the rest re-raised
        cause = user_error(error)
        if cause is None:
            raise
        print(f"slu-lightning {command}: error: {user_message(cause)}", file=sys.stderr)
        raise SystemExit(2) from None


def user_message(error: BaseException) -> str:
    """The error's message; for one raised in a loader worker, which torch re-raises with the worker's
    traceback as its message, the original last line alone (it names the file and the record)."""
    text = str(error)
    if text.startswith("Caught ") and "Original Traceback" in text:
        return text.rstrip().splitlines()[-1].split(": ", 1)[-1]
    return text


USER_ERRORS = (
    BackboneError,
    CheckpointError,
    ConfigError,
    CorpusFolderError,
    DataError,
    ExportError,
    PretrainError,
    RunError,
)


def user_error(error: BaseException) -> BaseException | None:
    """The error a user caused (bad backbone, data or resume request), even when wrapped by
    jsonargparse during instantiation; None for anything else (a bug: keep the traceback)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, USER_ERRORS):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


if __name__ == "__main__":
    main()
