"""A sweep's finished cells as scored prediction rows, grouped into the report's rows (cells
that differ only in a seed axis)."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from slu_lightning.data.corpora import SpeechMassiveCorpus
from slu_lightning.data.records import Entity
from slu_lightning.evaluation.bootstrap import cluster_ids
from slu_lightning.evaluation.counts import COUNT_FIELDS, count_example
from slu_lightning.evaluation.scoring import read_run_lines
from slu_lightning.experiments.sweep import (
    PREDICTIONS,
    SWEEP_FILE,
    axis_labels,
    cell_name,
    run_config_name,
    value_label,
)
from slu_lightning.task import ParseStatus, Prediction

log = logging.getLogger(__name__)

PROPORTION_KEY = "data.init_args.speech_subset.proportion"
NOT_FINISHED = "not finished"
"""Why ``read_cells`` leaves out a cell without predictions."""
WIDTH = len(COUNT_FIELDS)


class ReportError(ValueError):
    """A sweep root that cannot be reported on (no sweep.json, no finished cell, bad selector)."""


def is_seed_axis(key: str) -> bool:
    return key == "seed_everything" or key.endswith(".seed")


def axis_keys(keys: list[str]) -> list[str]:
    """The sweep axes a row is labelled by: every key but the seeds, which a row averages over."""
    return [key for key in keys if not is_seed_axis(key)]


def display_key(key: str) -> str:
    return key.replace("init_args.", "")


@dataclass(frozen=True)
class CellPredictions:
    """A finished cell: its axis values, run config and scored prediction rows of one modality."""

    name: str
    values: dict[str, Any]
    config: dict
    rows: list[dict]
    counts: np.ndarray
    """``(len(rows), F)`` count rows from the counting core."""
    index: dict[str, int] = field(default_factory=dict)
    """Example key (``score``'s: ``file``, else ``id``) to row position, in file order."""

    @cached_property
    def golds(self) -> list[tuple]:
        """Each row's ``gold_of``, in row order: what another cell's row of its key must share."""
        return [gold_of(row) for row in self.rows]


def gold_of(row: dict) -> tuple:
    """What the rows of one example share in every run tested on the same data: its locale and
    gold labels. Not the reference text, which is a cascade's transcript. A demo corpus of another
    seed reuses the ids for other utterances, so ids alone do not say two runs saw one example."""
    reference = row.get("reference") or {}
    entities = json.dumps(reference.get("entities"), sort_keys=True)
    return row.get("locale"), reference.get("scenario"), reference.get("action"), entities


def prediction_of(row: dict) -> Prediction:
    return Prediction(
        row["scenario"], row["action"], entities_of(row["entities"]), ParseStatus(row["status"])
    )


def entities_of(items: list[dict]) -> tuple[Entity, ...]:
    return tuple(Entity(item["type"], item["filler"]) for item in items)


def count_row(row: dict) -> np.ndarray:
    """The counting core's row for one line of a predictions file."""
    reference = row["reference"]
    return count_example(
        reference["scenario"],
        reference["action"],
        entities_of(reference["entities"]),
        prediction_of(row),
    )


def is_cascade(config: dict) -> bool:
    """Whether a run config tests on recognised transcripts (``CascadeCorpus``)."""
    corpus = (config.get("data") or {}).get("init_args", {}).get("corpus") or {}
    return isinstance(corpus, dict) and str(corpus.get("class_path", "")).endswith("CascadeCorpus")


def scored_modality(config: dict, modality: str) -> str | None:
    """Which of a cell's prediction rows answer the report's ``modality``. A cascade hears the test
    speech through its recogniser, so its text rows (one per recording) are its answers to speech;
    it has no rows on gold transcripts."""
    if not is_cascade(config):
        return modality
    return "text" if modality == "speech" else None


def prediction_rows(path: Path, modality: str, strict: bool = False) -> dict[str, dict]:
    """``{key: row}`` of the ``modality`` lines of a predictions file (``slu-lightning test``'s), in
    file order, read as ``score`` reads them (``read_run_lines``: of several lines for a key the
    first is kept); its warnings are logged, so that a file with repeated keys is never scored
    silently differently from ``score``; ``strict`` as ``score --strict``)."""
    lines, warnings = read_run_lines(path, modality, strict)
    for warning in warnings:
        log.warning("%s: %s", path, warning)
    return {line.key: line.row for line in lines}


def utterance_clusters(rows: list[dict]) -> np.ndarray:
    """``(len(rows),)`` cluster ids of each row's utterance (its own id when it has none; a MASSIVE
    utterance's translations together, ``bootstrap.cluster_key``): the bootstrap's clusters, since
    recordings of one utterance succeed or fail together; numbered as ``test`` numbers them, so a
    one-seed row's intervals are its ``metrics_test.json``'s."""
    utterances = [row["utterance_id"] or row["id"] for row in rows]
    return cluster_ids(utterances, [row.get("locale") or "" for row in rows])


def read_cells(
    root: Path, modality: str, strict: bool = False, locales: list[str] | None = None
) -> tuple[list[str], list[CellPredictions], dict[str, list[str]]]:
    """The sweep's axis keys, its finished cells with rows to score (scored as ``score`` scores,
    ``strict`` as its ``--strict``), and the names of the cells left out, by reason (``NOT_FINISHED``,
    ``no_rows_reason``), for the report to name. ``locales`` keeps only those locales' rows as they
    are read, so that every table, the plot and the paired differences score the same rows."""
    sweep_file = root / SWEEP_FILE
    if not root.is_dir():
        raise ReportError(f"{root} does not exist: pass the `root` of a sweep file (logs/sweeps/NAME)")
    if not sweep_file.is_file():
        raise ReportError(f"no {SWEEP_FILE} in {root}: is it the root of a `slu-lightning sweep`?")
    sweep = json.loads(sweep_file.read_text(encoding="utf-8"))
    keys = list(dict.fromkeys(key for record in sweep["cells"] for key in record["values"]))
    cells, left_out, present = [], defaultdict(list), set()
    for record in sweep["cells"]:
        run_dir = root / record["name"]
        if not (run_dir / PREDICTIONS).is_file():
            left_out[NOT_FINISHED].append(record["name"])
            continue
        config = run_config(run_dir)
        wanted = scored_modality(config, modality)
        read = prediction_rows(run_dir / PREDICTIONS, wanted, strict) if wanted else {}
        present.update(row.get("locale") for row in read.values())
        keyed = (
            read if locales is None else {k: row for k, row in read.items() if row.get("locale") in locales}
        )
        if not keyed:
            left_out[no_rows_reason(wanted, read, modality, locales)].append(record["name"])
            continue
        rows = list(keyed.values())
        counts = np.stack([count_row(row) for row in rows])
        index = {key: i for i, key in enumerate(keyed)}
        cells.append(CellPredictions(record["name"], record["values"], config, rows, counts, index))
    if not present:
        raise ReportError(f"no finished cell in {root} has {modality} predictions")
    unknown = [locale for locale in locales or [] if locale not in present]
    if unknown:
        known = sorted(str(locale) for locale in present)
        raise ReportError(
            f"--locales {','.join(unknown)}: in no finished cell's {modality} rows; "
            f"the locales present: {', '.join(known)}"
        )
    return keys, cells, dict(left_out)


def no_rows_reason(wanted: str | None, read: dict, modality: str, locales: list[str] | None) -> str:
    """Why a finished cell has no rows to score, given the rows it answers ``modality`` with
    (``scored_modality``) and those ``read``, before ``locales`` kept theirs."""
    if wanted is None:
        return "a cascade, no rows on gold transcripts (its text rows answer speech)"
    if not read:
        return f"no {modality} predictions"
    return f"no rows of the locales {', '.join(locales or [])}"


@dataclass
class Group:
    """Cells that differ only in their seeds: one row of the tables."""

    values: dict[str, Any]
    """Non-seed axis key to value."""
    label: str
    """The cells' name without the seed part, e.g. ``curriculum-p0.02``."""
    cells: list[CellPredictions] = field(default_factory=list)

    @property
    def is_cascade(self) -> bool:
        return all(is_cascade(cell.config) for cell in self.cells)


def run_config(run_dir: Path) -> dict:
    """The config of the ``test`` that wrote the run's predictions (``config_test.yaml``), or of
    its ``fit`` (``config.yaml``; runs before the split saved the test's there); {} without one."""
    for name in (run_config_name("test"), run_config_name("fit")):
        if (run_dir / name).is_file():
            return yaml.safe_load((run_dir / name).read_text(encoding="utf-8")) or {}
    return {}


def training_locales(config: dict) -> list[str]:
    """The locales a run config trains on, [] for all of them (or unknown): its corpus's training
    locales (``SpeechMassiveCorpus.train_locales``, ``MassiveTextCorpus.locales``, the union over a
    ``CombinedCorpus``'s parts, a ``CascadeCorpus``'s base) kept to the data module's
    ``train_locales`` filter where both are set. The paper's cross-lingual configs set them on the
    corpus, a few-shot run on each part."""
    data = (config.get("data") or {}).get("init_args") or {}
    kept = data.get("train_locales") or []
    read = corpus_training_locales(data.get("corpus"))
    if read is None:
        return list(kept)
    return [locale for locale in read if locale in kept] if kept else read


def corpus_training_locales(corpus: Any) -> list[str] | None:
    """The locales a corpus node of a run config reads for training, in order; None when it does
    not say (``DemoCorpus``, manifests, SLURP: whatever locales their files hold)."""
    if not isinstance(corpus, dict):
        return None
    name = str(corpus.get("class_path", "")).rsplit(".", 1)[-1]
    init = corpus.get("init_args") or {}
    if name == "SpeechMassiveCorpus":  # unset: the class's default (French)
        return SpeechMassiveCorpus(path="", train_locales=init.get("train_locales")).train_locales
    if name == "MassiveTextCorpus":
        return list(init.get("locales") or [])
    if name == "CascadeCorpus":
        return corpus_training_locales(init.get("base"))
    if name == "CombinedCorpus":
        parts = [corpus_training_locales(part) for part in init.get("parts") or []]
        return None if None in parts else list(dict.fromkeys(locale for part in parts for locale in part))
    return None


def seed_of(cell: CellPredictions) -> tuple:
    return tuple((key, value_label(key, value)) for key, value in cell.values.items() if is_seed_axis(key))


def group_cells(keys: list[str], cells: list[CellPredictions]) -> list[Group]:
    labels = axis_labels(keys)
    groups: dict[str, Group] = {}
    for cell in cells:
        values = {key: cell.values[key] for key in keys if key in cell.values and not is_seed_axis(key)}
        label = cell_name(values, labels) or "all"
        groups.setdefault(label, Group(values, label)).cells.append(cell)
    return list(groups.values())
