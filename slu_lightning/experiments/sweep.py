"""``slu-lightning sweep``: a grid of ordinary named runs, resumable cell by cell.

A sweep file names the run config every cell starts from, the folder the cells go to, and the
config keys that vary (any key, dotted as on the command line)::

    base: configs/demo/curriculum.yaml     # run config of every cell
    root: logs/sweeps/demo                 # cell runs live in <root>/<cell name>/
    axes:                                  # config key -> the values it takes
      data.class_path: [MixedDataModule, CurriculumDataModule]
      data.init_args.speech_subset.proportion: [0.02, 0.10, 1.0]
      seed_everything: [1, 2]
    include:                               # extra cells; axes an entry does not name are crossed in
      - {data.class_path: TextOnlyDataModule, data.init_args.speech_subset.proportion: 0}
    exclude:                               # drop cells of the axes grid that match every key
      - {data.class_path: MixedDataModule, seed_everything: 2}

The cells are the product of ``axes`` minus the ``exclude`` matches, plus the ``include`` entries
(not subject to ``exclude``). Rule values may be a value or a list of values; class paths may be
written in full or by class name.

Regimes: swapping ``data.class_path`` on one base works because jsonargparse keeps the init_args
the new class accepts and drops the others (the curriculum's ``phases``), in any order of the
overrides. When regimes differ in more than their class (frozen parts, phases), make ``base`` an
axis (or set it in ``include``) and give each regime its own run config, as
``configs/demo/sweep.yaml`` does. Paths are relative to the working directory.

``configs: [configs/trainer/fsdp_8gpu.yaml]`` adds config files after every cell's base (e.g. the
multi-GPU trainer fragment of the paper's grid, ``configs/paper/slurp_sweep.yaml``).

Each cell is an ordinary run named after its axis values (``CurriculumDataModule-p0.05-seed1``),
run as two subprocesses whose output goes to ``<root>/<cell>/sweep.log``::

    slu-lightning fit  --config BASE --run.root ROOT --run.name CELL --ckpt_path auto --KEY VALUE ...
    slu-lightning test --config BASE --run.root ROOT --run.name CELL --ckpt_path <its last.ckpt> ...

A cell with ``predictions_test.jsonl`` is finished and skipped; an interrupted one resumes from its
last checkpoint (``--ckpt_path auto``). ``<root>/sweep.json`` (cells, values, overrides, status) is
rewritten atomically as the sweep goes. A failing cell is recorded with its log and the sweep goes
on; the command exits non-zero at the end if any cell failed.

Before any cell runs (``--dry-run`` included), every unfinished cell's command is parsed and its
settings are checked as far as they show without building the model, reading the corpus or
synthesising audio (``settings_problems``): a mistyped key, a value of the wrong type, an unset
``trainer.max_epochs``, curriculum phases that do not fill it, and locale names (``train_locales``,
``eval_locales``, ``speech_subset.locales``) that the corpus does not offer where its settings
name them (demo, Speech-MASSIVE, MASSIVE text, SLURP, ITALIC; not a manifest corpus, whose
locales only its files tell). What only the examples show (a locale with no speech, a speech
subset that keeps none, bad records or audio) is found as each cell starts.

A finished cell is skipped only if its saved ``config.yaml`` is what its ``fit`` would parse to now:
when a base, a ``configs`` file or an override has changed since, the sweep names the cells and
keys and refuses to start (``--dry-run`` lists them), rather than report old results under the new
config; move the root aside or set a new one. SIGTERM or SIGINT to the sweep is passed on to the
running cells (``fit`` saves a checkpoint and stops), no other cell starts, the cells are recorded
as ``interrupted``, and the sweep exits with 128 + the signal number; a rerun resumes them.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from slu_lightning.atomic import atomic_write_text
from slu_lightning.data.errors import ConfigError

if TYPE_CHECKING:
    from slu_lightning.data.datamodules import SLUDataModule

BASE_KEY = "base"
"""Pseudo-key of axes and rules: the run config a cell starts from, not a config override."""
MANAGED_KEYS = frozenset({"config", "run.name", "run.root", "ckpt_path"})
"""Keys the sweep sets itself for every cell."""
SHORT_NAMES = {"proportion": "p", "seed_everything": "seed"}
VALUE_ONLY = frozenset({"class_path", BASE_KEY})
"""Keys whose value alone names them in a cell name (``MixedDataModule``, ``curriculum``)."""
PREDICTIONS = "predictions_test.jsonl"
SWEEP_FILE = "sweep.json"
UNCOMPARED_KEYS = (
    "config",
    "ckpt_path",
    "run.root",
    "checkpoint.dirpath",
    "trainer.logger",
    "trainer.default_root_dir",
)
"""Keys of a saved run config that differ from a rerun's parse without the run having changed: the
config files' paths, the checkpoint as resolved (older runs saved it so), folders that follow the
root (a root moved), and what the CLI fills in when a run starts."""


def run_config_name(subcommand: str | None) -> str:
    """The file a subcommand's full config is saved to in the run directory: ``config.yaml`` for
    ``fit``, ``config_test.yaml`` and so on for the others, so that testing a run (or a refused
    attempt to) never overwrites the config it was trained with."""
    return "config.yaml" if subcommand in (None, "fit") else f"config_{subcommand}.yaml"


class SweepError(ValueError):
    """A sweep file that cannot be run; the message lists every problem found."""


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file (see the module docstring)."""

    base: Path
    """Run config of every cell that does not set ``base`` itself."""
    root: Path
    """Folder holding the cells' run directories and ``sweep.json``."""
    axes: dict[str, list[Any]]
    """Config key, dotted as on the command line, to the values it takes."""
    include: list[dict[str, Any]] = field(default_factory=list)
    """Extra cells: key to value(s), crossed with the axes the entry does not name."""
    exclude: list[dict[str, Any]] = field(default_factory=list)
    """Rules dropping the cells of the axes grid that match all their keys."""
    configs: list[Path] = field(default_factory=list)
    """Config files applied after every cell's base, e.g. a multi-GPU trainer fragment."""


@dataclass(frozen=True)
class Cell:
    """One run of the sweep."""

    name: str
    """Run name, derived from the values; also the run directory under the sweep root."""
    values: dict[str, Any]
    """Axis key to this cell's value, in axis order (may hold ``base``)."""
    base: Path
    """The run config this cell starts from."""
    extra: tuple[Path, ...] = ()
    """Config files applied after ``base`` (the sweep's ``configs``)."""

    def overrides(self) -> list[str]:
        """Command-line overrides; class paths first, so later keys apply to the chosen class."""
        keys = sorted(
            (key for key in self.values if key != BASE_KEY), key=lambda key: not key.endswith("class_path")
        )
        return [arg for key in keys for arg in (f"--{key}", command_value(self.values[key]))]

    def commands(self, root: Path) -> list[list[str]]:
        """The ``fit`` (resuming when it can) and ``test`` subprocess command lines."""
        entry = [sys.executable, "-m", "slu_lightning.cli"]
        return [[*entry, *self.cli_args("fit", root)], [*entry, *self.cli_args("test", root)]]

    def cli_args(self, subcommand: str, root: Path) -> list[str]:
        """The arguments of ``slu-lightning fit`` (resuming when it can) or ``test`` (of the run's
        last checkpoint) for this cell."""
        configs = [arg for config in (self.base, *self.extra) for arg in ("--config", str(config))]
        checkpoint = "auto" if subcommand == "fit" else str(last_checkpoint(root / self.name))
        return [
            subcommand,
            *configs,
            "--run.root",
            str(root),
            "--run.name",
            self.name,
            "--ckpt_path",
            checkpoint,
            *self.overrides(),
        ]


def last_checkpoint(run_dir: Path) -> Path:
    """A run's last checkpoint: a file, or a folder under FSDP's sharded state dicts (what
    ``cli.resolve_resume`` resumes from), so test it with ``exists``, not ``is_file``."""
    return run_dir / "checkpoints" / "last.ckpt"


def command_value(value: Any) -> str:
    """A value as jsonargparse reads it on the command line: strings verbatim, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def value_label(key: str, value: Any) -> str:
    """How a value reads in cell names and reports: class paths by class name, base configs by
    file stem, other paths by their last part (``logs/ablation/backbones/no-align``: ``no-align``),
    numbers in shortest form (``0.1``, ``1``, ``1e-05``), lists joined by ``+``."""
    if key == BASE_KEY:
        text = Path(str(value)).stem
    elif isinstance(value, str) and "/" in value:
        text = Path(value).name
    elif key.endswith("class_path"):
        text = str(value).rsplit(".", 1)[-1]
    elif isinstance(value, bool) or value is None or isinstance(value, dict):
        text = json.dumps(value, separators=(",", ":"))
    elif isinstance(value, (int, float)):
        text = f"{value:g}"
    elif isinstance(value, list):
        text = "+".join(value_label("", item) for item in value)
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9._+=-]", "_", text)


def axis_labels(keys: list[str]) -> dict[str, str]:
    """Name prefixes of the axes: the key's last part (``p``, ``seed``, ``lr``), or as many last
    parts as make it unique (``speech_subset.seed`` beside ``seed_everything``)."""
    parts = {key: [part for part in key.split(".") if part != "init_args"] for key in keys}

    def label(key: str, depth: int) -> str:
        tail = parts[key][-depth:]
        if depth > 1:
            return ".".join(tail)
        return "" if tail[0] in VALUE_ONLY else SHORT_NAMES.get(tail[0], tail[0])

    labels = {}
    for key in keys:
        depth = 1
        while (
            label(key, depth)
            and depth < len(parts[key])
            and any(label(other, depth) == label(key, depth) for other in keys if other != key)
        ):
            depth += 1
        labels[key] = label(key, depth)
    return labels


def cell_name(values: dict[str, Any], labels: dict[str, str]) -> str:
    """Axis labels and value labels: ``p0.02-seed1``; ``=`` where a word follows the label
    (``backbone=no-align``, ``train_llm=false``)."""
    return "-".join(_labelled(labels[key], value_label(key, value)) for key, value in values.items())


def _labelled(label: str, value: str) -> str:
    return f"{label}={value}" if label and value[:1].isalpha() else label + value


def matches(values: dict[str, Any], rule: dict[str, Any]) -> bool:
    """Whether a cell's values satisfy every key of a rule (compared as labels: 0 == 0.0)."""
    return all(
        key in values and value_label(key, values[key]) in {value_label(key, v) for v in _as_list(wanted)}
        for key, wanted in rule.items()
    )


def expand_cells(spec: SweepSpec) -> list[Cell]:
    """The cells of a sweep, in axis order, then the ``include`` entries.

    Raises:
        SweepError: if two different cells would get the same name.
    """
    grid = [
        values for values in _product(spec.axes) if not any(matches(values, rule) for rule in spec.exclude)
    ]
    for entry in spec.include:
        crossed = {key: values for key, values in spec.axes.items() if key not in entry}
        grid += _product({**{key: _as_list(value) for key, value in entry.items()}, **crossed})
    keys = list(dict.fromkeys([*spec.axes, *(key for entry in spec.include for key in entry)]))
    labels = axis_labels(keys)
    cells: dict[str, Cell] = {}
    for values in grid:
        ordered = {key: values[key] for key in keys if key in values}
        base = Path(ordered.get(BASE_KEY, spec.base))
        cell = Cell(cell_name(ordered, labels), ordered, base, tuple(spec.configs))
        known = cells.setdefault(cell.name, cell)
        if (known.base, known.overrides()) != (cell.base, cell.overrides()):
            raise SweepError(
                f"two different cells are both named {cell.name!r}: {known.values} and {cell.values}"
            )
    return list(cells.values())


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _product(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(axes, combination, strict=True)) for combination in itertools.product(*axes.values())]


def load_spec(path: Path) -> SweepSpec:
    """Read and check a sweep file.

    Raises:
        SweepError: listing every problem at once (unreadable file, missing base config, bad axes).
    """
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise SweepError(f"cannot read sweep file {path}: {error}") from error
    if not isinstance(raw, dict):
        raise SweepError(f"{path}: expected a mapping with base, root and axes")
    problems = []
    unknown = set(raw) - {"base", "root", "axes", "include", "exclude", "configs"}
    if unknown:
        problems.append(
            f"unknown keys {sorted(unknown)} (allowed: base, root, axes, include, exclude, configs)"
        )
    for name in ("base", "root"):
        if not isinstance(raw.get(name), str):
            problems.append(f"{name!r} must be a path")
    axes = raw.get("axes") or {}
    if not isinstance(axes, dict):
        problems.append("'axes' must map config keys to lists of values")
        axes = {}
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            problems.append(f"axis {key!r}: expected a non-empty list of values, got {values!r}")
    rules = {name: raw.get(name) or [] for name in ("include", "exclude")}
    for name, entries in rules.items():
        if not isinstance(entries, list) or not all(isinstance(entry, dict) and entry for entry in entries):
            problems.append(f"{name!r} must be a list of non-empty mappings from config key to value(s)")
            rules[name] = []
    keys = set(axes) | {key for entry in rules["include"] for key in entry}
    if not keys:
        problems.append("no axes and no include entries: nothing to sweep")
    problems += [
        f"{key!r} is set by the sweep for every cell; it cannot vary" for key in sorted(keys & MANAGED_KEYS)
    ]
    problems += [
        f"exclude rule {rule}: {key!r} is not an axis"
        for rule in rules["exclude"]
        for key in rule
        if key not in axes
    ]
    configs = [Path(config) for config in _as_list(raw.get("configs") or [])]
    bases = [
        raw.get("base"),
        *configs,
        *axes.get(BASE_KEY, []),
        *(v for e in rules["include"] for v in _as_list(e.get(BASE_KEY, []))),
    ]
    problems += [
        f"base config {base} not found (paths are relative to the working directory)"
        for base in dict.fromkeys(map(str, bases))
        if base != "None" and not Path(base).is_file()
    ]
    if problems:
        raise SweepError(f"invalid sweep file {path}:\n  - " + "\n  - ".join(problems))
    return SweepSpec(Path(raw["base"]), Path(raw["root"]), axes, rules["include"], rules["exclude"], configs)


def plan(cell: Cell, root: Path) -> str:
    """What a cell needs: ``skip`` (finished), ``resume`` (has a checkpoint, a file or a sharded
    folder, as ``fit --ckpt_path auto`` finds it) or ``fresh``."""
    run_dir = root / cell.name
    if (run_dir / PREDICTIONS).is_file():
        return "skip"
    return "resume" if last_checkpoint(run_dir).exists() else "fresh"


def config_changes(cell: Cell, root: Path) -> dict[str, tuple[Any, Any]]:
    """What a finished or interrupted cell's saved ``config.yaml`` holds that its ``fit`` command
    would not give now (a base, a ``configs`` file or an override edited since): dotted key to
    (saved, now). An interrupted cell would otherwise finish under the new config what it began
    under the old one.

    Keys in ``UNCOMPARED_KEYS`` and keys only one side has (options added to or removed from the
    code since the run) are not compared; a cell without a saved config has nothing to compare.
    """
    saved_file = root / cell.name / run_config_name("fit")
    if not saved_file.is_file():
        return {}
    saved = _flat(yaml.safe_load(saved_file.read_text(encoding="utf-8")) or {})
    now = _flat(parsed_run_config(cell.cli_args("fit", root)))
    return {
        key: (saved[key], now[key])
        for key in sorted(saved.keys() & now.keys())
        if saved[key] != now[key] and not any(key == k or key.startswith(f"{k}.") for k in UNCOMPARED_KEYS)
    }


def parsed_run_config(args: list[str]) -> dict:
    """The config a cell's command line would save (``cli.parse_command``).

    Raises:
        SweepError: with the parser's complaint, when the command line does not parse.
    """
    from slu_lightning.cli import parse_command

    try:
        return parse_command(args)
    except ConfigError as problem:
        raise SweepError(f"{shlex.join(args)} does not parse: {problem}") from None


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys to leaf values (lists are leaves)."""
    if not isinstance(node, dict) or not node:
        return {prefix.removesuffix("."): node}
    return {
        key: value for name, child in node.items() for key, value in _flat(child, f"{prefix}{name}.").items()
    }


def changed_message(changes: dict[str, dict[str, tuple[Any, Any]]], root: Path) -> str:
    """Why a sweep refuses to go on with cells that ran, or began, under another config than they
    would now: their results would be reported as the new config's."""
    shown = [
        f"{name}: " + "; ".join(f"{key}: {saved!r} -> {now!r}" for key, (saved, now) in keys.items())
        for name, keys in changes.items()
    ]
    return (
        f"{len(changes)} cell(s) in {root} ran, or began, with another config than the sweep gives them "
        "now (saved config.yaml -> now):\n  " + "\n  ".join(shown) + "\nTheir results would be reported as "
        f"the new config's. Move {root} aside (its runs are kept) or set a new `root` in the sweep file, "
        "then run the sweep again; nothing was run or deleted."
    )


class SweepState:
    """``sweep.json``: the sweep's cells with values, overrides and status, rewritten atomically."""

    def __init__(self, spec: SweepSpec, source: Path, cells: list[Cell]):
        self.path = spec.root / SWEEP_FILE
        self._lock = threading.Lock()
        self._records = {
            cell.name: {
                "name": cell.name,
                "values": cell.values,
                "base": str(cell.base),
                "overrides": cell.overrides(),
                "run_dir": str(spec.root / cell.name),
                "status": "finished" if plan(cell, spec.root) == "skip" else "pending",
            }
            for cell in cells
        }
        self._header = {
            "sweep": str(source),
            "base": str(spec.base),
            "root": str(spec.root),
            "axes": spec.axes,
            "include": spec.include,
            "exclude": spec.exclude,
        }
        self._write()

    def update(self, name: str, **fields: Any) -> None:
        with self._lock:
            self._records[name].update(fields)
            self._write()

    def _write(self) -> None:
        document = {**self._header, "cells": list(self._records.values())}
        atomic_write_text(self.path, json.dumps(document, indent=1, ensure_ascii=False) + "\n")


def cell_environment(jobs: int, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The cells' environment: with several cells at once, each gets its share of the CPU cores as
    torch threads (``OMP_NUM_THREADS``) unless the user set it. Unset, every cell starts a thread
    per core. Measured on 2 cores, demo text-only fine-tuning on tiny-heard (fit and test): 230 s a
    cell alone; two at once 800-1,050 s a pair with two threads each, 376 s with one each."""
    environment = dict(os.environ if environ is None else environ)
    if jobs > 1 and "OMP_NUM_THREADS" not in environment:
        environment["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return environment


def busy_cores_warning(environment: dict[str, str], jobs: int, load: float, cores: int) -> str | None:
    """What to tell the user when other work already keeps the cores busy (1-minute ``load``):
    the cells' torch threads assume free cores. Measured on 2 cores: two single-cell sweeps started
    side by side, each with a thread per core, ran about 5x slower than with one thread each."""
    jobs = max(jobs, 1)
    try:
        per_cell = int(environment.get("OMP_NUM_THREADS", cores))
    except ValueError:  # a value torch reads its own way: leave it to the user
        return None
    free = cores - load
    if load < 1 or jobs * per_cell <= max(free, 1):
        return None
    fits = max(1, int(free) // jobs)
    advice = f"set OMP_NUM_THREADS={fits}" if fits < per_cell else "run fewer cells at once (--jobs)"
    return (
        f"the machine is already busy (load {load:.1f} on {cores} cores) and the cells would start "
        f"{jobs * per_cell} torch threads: expect them to run slower; {advice} or wait for the other work"
    )


class CellProcesses:
    """The cells' running subprocesses, so that SIGTERM or SIGINT to the sweep reaches them.

    Each cell command runs in its own session: a signal to the sweep (Ctrl-C in its terminal, a
    cluster's preemption) reaches a cell once, passed on by ``forward``, and only its main process
    (its loader workers must not get it). ``fit`` then saves ``last.ckpt`` after the current
    optimizer step and exits 128 + the signal number (``PreemptionCallback``); ``test`` stops.
    No cell command starts after the signal.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        """The signal that stops the sweep; None while it runs."""
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()

    def run(self, command: list[str], **popen: Any) -> int | None:
        """Run a command to its end and return its exit status; None when the sweep is stopping."""
        with self._lock:  # a signal either finds the new process in _running or stops its start
            if self.signum is not None:
                return None
            process = subprocess.Popen(command, start_new_session=True, **popen)
            self._running.add(process)
        try:
            return process.wait()
        finally:
            with self._lock:
                self._running.discard(process)

    def forward(self, signum: int, frame: Any = None) -> None:
        """Signal handler: stop starting cell commands and pass the signal on to the running ones."""
        self.signum = signum
        with self._lock:
            running = list(self._running)
        name = signal.Signals(signum).name
        print(
            f"sweep: {name}: passing it on to {len(running)} running cell command(s), which save a "
            "checkpoint and stop; no other cell starts",
            file=sys.stderr,
            flush=True,
        )
        for process in running:
            process.send_signal(signum)


@contextlib.contextmanager
def forwarding_signals(processes: CellProcesses) -> Iterator[None]:
    """SIGTERM and SIGINT go to ``processes.forward`` while the cells run; the previous handlers
    come back after."""
    previous = {
        signum: signal.signal(signum, processes.forward) for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class SweepInterrupted(Exception):
    """The sweep stopped on a signal after its running cells did; they resume on a rerun."""

    def __init__(self, signum: int, cells: list[str]) -> None:
        super().__init__(signum, cells)
        self.signum, self.cells = signum, cells


def run_cell(
    cell: Cell, root: Path, state: SweepState, progress: str, env: dict[str, str], processes: CellProcesses
) -> str:
    """Fit (resuming when it can) and test one cell, its output appended to its ``sweep.log``.

    Returns its status: ``finished``, ``failed``, ``interrupted`` (stopped by a signal to the sweep,
    resumable) or ``pending`` (the sweep stopped before it started)."""
    if processes.signum is not None:
        return "pending"
    run_dir = root / cell.name
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "sweep.log"
    print(f"{progress} {cell.name}: {plan(cell, root)} run, log {log_path}", flush=True)
    state.update(cell.name, status="running", log=str(log_path))
    start = time.monotonic()
    returncode: int | None = 0
    with log_path.open("a", encoding="utf-8") as log:
        for command in cell.commands(root):
            log.write(f"$ {shlex.join(command)}\n")
            log.flush()
            returncode = processes.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            if returncode != 0:
                break
    seconds = round(time.monotonic() - start, 1)
    if returncode == 0:
        status, outcome = "finished", "finished"
    elif processes.signum is not None:
        status, outcome = "interrupted", "interrupted (a rerun resumes it)"
    else:
        status, outcome = "failed", f"FAILED (exit {returncode}), see {log_path}"
    state.update(cell.name, status=status, returncode=returncode, seconds=seconds)
    print(f"{progress} {cell.name}: {outcome} in {seconds:.0f} s", flush=True)
    return status


def run_sweep(spec: SweepSpec, source: Path, jobs: int = 1, dry_run: bool = False) -> list[str]:
    """Run every unfinished cell (``jobs`` at a time) and return the names of those that failed.

    With ``dry_run``, print each cell's plan and commands and touch nothing.

    Raises:
        SweepError: a cell's command does not parse or its settings would be refused
            (``settings_problems``), or a finished cell ran another config than it
            would now, or an interrupted one began under another (``config_changes``; under
            ``dry_run`` after the listing).
        SweepInterrupted: SIGTERM or SIGINT stopped the sweep, after its running cells stopped.
    """
    cells = expand_cells(spec)
    todo = [cell for cell in cells if plan(cell, spec.root) != "skip"]
    print(
        f"sweep {source}: {len(cells)} cells in {spec.root}, {len(cells) - len(todo)} finished, "
        f"{len(todo)} to run",
        flush=True,
    )
    for rule in spec.exclude:
        if not any(matches(values, rule) for values in _product(spec.axes)):
            print(f"warning: the exclude rule {rule} matches no cell of the axes", file=sys.stderr)
    _check_commands(todo, spec.root)
    begun = [cell for cell in cells if plan(cell, spec.root) != "fresh"]
    changes = {cell.name: config_changes(cell, spec.root) for cell in begun}
    changes = {name: keys for name, keys in changes.items() if keys}
    if dry_run:
        for cell in cells:
            changed = (
                f", but its config changed: {', '.join(changes[cell.name])}" if cell.name in changes else ""
            )
            print(f"{cell.name}: {plan(cell, spec.root)}{changed}")
            for command in cell.commands(spec.root) if cell in todo else []:
                print(f"  {shlex.join(command)}")
    if changes:
        raise SweepError(changed_message(changes, spec.root))
    if dry_run:
        return []
    state, env = SweepState(spec, source, cells), cell_environment(jobs)
    warning = busy_cores_warning(env, jobs, os.getloadavg()[0], os.cpu_count() or 1)
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    processes = CellProcesses()
    with forwarding_signals(processes), ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        statuses = list(
            pool.map(
                lambda item: run_cell(item[1], spec.root, state, f"[{item[0]}/{len(todo)}]", env, processes),
                enumerate(todo, start=1),
            )
        )
    if processes.signum is not None:
        interrupted = [
            cell.name for cell, status in zip(todo, statuses, strict=True) if status == "interrupted"
        ]
        raise SweepInterrupted(processes.signum, interrupted)
    return [cell.name for cell, status in zip(todo, statuses, strict=True) if status == "failed"]


def _check_commands(cells: list[Cell], root: Path) -> None:
    """Parse every cell's run command and check its settings (``settings_problems``) before any
    runs: a mistyped key, a value of the wrong type or a misspelt locale in an axis or an
    ``include`` would otherwise fail each cell after its start-up, in its log."""
    from slu_lightning.cli import parse_command

    unparsed, refused = [], []
    for cell in cells:
        try:
            config = parse_command(cell.cli_args("fit", root))
        except ConfigError as problem:
            unparsed.append(f"{cell.name}: {problem}")
            continue
        if problems := settings_problems(config):
            refused.append(f"{cell.name}: " + "; ".join(problems))
    found = [
        f"{len(names)} cell(s) {what}:\n  " + "\n  ".join(names)
        for names, what in ((unparsed, "would not parse"), (refused, "would be refused before training"))
        if names
    ]
    if found:
        raise SweepError("\n".join(found))


def settings_problems(config: dict) -> list[str]:
    """What ``fit`` would refuse in a parsed run config before training, found without building
    the model or reading the data: an unset ``trainer.max_epochs``, and what the data module finds
    in its own settings (``SLUDataModule.settings_problems``: locale names its corpus does not
    offer, a curriculum that does not fill the epochs). What only the examples show (a locale
    without speech, a speech subset that keeps none, bad records) is found as each cell starts."""
    from slu_lightning.data.datamodules import refuse_unset_epochs

    max_epochs = config["trainer"].get("max_epochs")
    try:
        refuse_unset_epochs(max_epochs)
        return _data_module(config["data"]).settings_problems(max_epochs)
    except ValueError as problem:  # ConfigError, DataError, or a setting a class refuses when built
        return [str(problem)]


def _data_module(data: dict) -> SLUDataModule:
    """The data module of a parsed run config, built as ``fit`` builds it; nothing is read."""
    from jsonargparse import ArgumentParser

    from slu_lightning.data.datamodules import SLUDataModule

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(SLUDataModule, "data", fail_untyped=False)
    namespace = parser.parse_object({"data": data})
    with warnings.catch_warnings():  # deprecated in jsonargparse 4.49 for `instantiate`, which 4.40 lacks
        warnings.simplefilter("ignore", DeprecationWarning)
        return parser.instantiate_classes(namespace).data


def main(args: list[str]) -> None:
    """``slu-lightning sweep --config SWEEP.yaml [--dry-run] [--jobs N]``."""
    parser = argparse.ArgumentParser(
        prog="slu-lightning sweep",
        description="Run a grid of named, resumable runs (see configs/demo/sweep.yaml).",
    )
    parser.add_argument("--config", type=Path, required=True, help="the sweep file")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check every cell's config and data settings, print each cell's plan and commands, run nothing",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="cells run at once (1 per accelerator; default 1)"
    )
    options = parser.parse_args(args)
    try:
        spec = load_spec(options.config)
        failed = run_sweep(spec, options.config, jobs=options.jobs, dry_run=options.dry_run)
    except SweepError as error:
        print(f"slu-lightning sweep: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except SweepInterrupted as stop:
        print(
            f"slu-lightning sweep: stopped by {signal.Signals(stop.signum).name}; interrupted: "
            f"{', '.join(stop.cells) or 'none'}. Run the same command to resume.",
            file=sys.stderr,
        )
        raise SystemExit(128 + stop.signum) from None
    if failed:
        print(f"{len(failed)} cell(s) failed: {', '.join(failed)}", file=sys.stderr)
        raise SystemExit(1)
    if not options.dry_run:
        print(f"done; tables and plots: slu-lightning report --root {spec.root}")
