"""Shipped configs say what they do: their launch line, parsed as the CLI parses it, gives the
effective batch and the base precision their comments state."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from slu_lightning.cli import main

ROOT = Path(__file__).parents[1]
EFFECTIVE_BATCH = re.compile(r"# (\d+) GPUs? x batch (\d+) x (\d+) accumulation = effective batch (\d+)")
STATED = sorted(path for path in ROOT.glob("configs/**/*.yaml") if EFFECTIVE_BATCH.search(path.read_text()))


def launched(config: Path, capsys) -> dict:
    """The full config of the header's first ``slu-lightning`` run command (its ``\\``-continued
    lines joined), as the CLI parses it."""
    header = "\n".join(
        line.removeprefix("#") for line in config.read_text().splitlines() if line.startswith("#")
    )
    command, args = re.search(r"slu-lightning (fit|test) +(.*)", header.replace("\\\n", " ")).groups()
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main([command, *shlex.split(args), "--print_config"])
    assert stop.value.code in (None, 0)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("config", STATED, ids=lambda path: str(path.relative_to(ROOT / "configs")))
def test_the_stated_effective_batch_is_what_the_launch_line_runs(config, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # launch lines name configs from the repository root
    gpus, batch, accumulation, effective = map(int, EFFECTIVE_BATCH.search(config.read_text()).groups())
    parsed = launched(config, capsys)
    devices = parsed["trainer"]["devices"]
    assert gpus * batch * accumulation == effective
    assert (
        devices,
        parsed["data"]["init_args"]["batch_size"],
        parsed["trainer"]["accumulate_grad_batches"],
    ) == (
        gpus,
        batch,
        accumulation,
    )


def test_the_lora_curriculum_loads_its_frozen_base_in_bf16_as_its_header_says(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    config = ROOT / "configs" / "lora" / "slurp_curriculum.yaml"
    assert "the frozen base in bf16" in config.read_text()
    assert launched(config, capsys)["model"]["init_args"]["base_dtype"] == "bfloat16"


@pytest.mark.parametrize(
    "name",
    [
        "speech_massive_fr_curriculum",
        "speech_massive_fewshot_de",
        "speech_massive_adapt_text",
        "speech_massive_adapt_115",
        "speech_massive_adapt_text_115",
    ],
)
def test_cross_lingual_runs_keep_no_best_checkpoint_chosen_on_their_zero_shot_targets(
    name, capsys, monkeypatch
):
    monkeypatch.chdir(ROOT)
    parsed = launched(ROOT / "configs" / "paper" / f"{name}.yaml", capsys)
    assert parsed["checkpoint"]["monitor"] == "val/loss" and parsed["checkpoint"]["save_top_k"] == 0
    assert parsed["checkpoint"]["save_last"] is True


# The cross-lingual adaptation grid: what each composition trains on, resolved as its cells' `fit`
# would parse them (the sweep's own expansion and `parse_command`; nothing runs).
ADAPTATION_SWEEP = ROOT / "configs" / "paper" / "speech_massive_adaptation_sweep.yaml"
SOURCE = "fr-FR"
CORPORA = "slu_lightning.data.corpora."
DATA_MODULES = "slu_lightning.data.datamodules."
PAPER = "configs/paper/"
COMPOSITIONS = {  # base config of each composition -> its corpus's parts after the source's
    "speech_massive_fr_curriculum": None,  # (a) zero-shot: the French corpus alone
    "speech_massive_adapt_text": ["MassiveTextCorpus"],  # (b) + target text
    "speech_massive_adapt_115": ["SpeechMassiveCorpus"],  # (c) + target train_115
    "speech_massive_adapt_text_115": ["SpeechMassiveCorpus", "MassiveTextCorpus"],  # (d) both
}
PROPORTIONS = [0.0, 0.02, 0.05, 0.1, 0.25, 1.0]


def _adaptation_cells(monkeypatch) -> list:
    from slu_lightning.experiments.sweep import expand_cells, load_spec

    monkeypatch.chdir(ROOT)  # the sweep names its configs from the repository root
    return expand_cells(load_spec(ADAPTATION_SWEEP))


def _targets() -> list[str]:
    from slu_lightning.data.readers.speech_massive import LOCALES

    return [locale for locale in LOCALES if locale != SOURCE]


def _regime(cell) -> tuple:
    values = cell.values
    return (
        cell.base.stem,
        tuple(values["data.init_args.train_locales"]),
        float(values["data.init_args.speech_subset.proportion"]),
        values.get("data.class_path", "CurriculumDataModule").rsplit(".", 1)[-1],
    )


def test_the_adaptation_sweep_runs_each_composition_at_each_proportion_for_its_target(monkeypatch):
    cells = _adaptation_cells(monkeypatch)
    target = (SOURCE, "de-DE")
    expected = {  # no speech at all (zero-shot or target text only, 0 % French speech): text-only
        (base, (SOURCE,) if base.endswith("fr_curriculum") else target, proportion, regime)
        for base in COMPOSITIONS
        for proportion in PROPORTIONS
        for regime in [
            "TextOnlyDataModule"
            if proportion == 0 and base.endswith(("fr_curriculum", "adapt_text"))
            else "CurriculumDataModule"
        ]
    }
    assert sorted(map(_regime, cells)) == sorted(expected) and len(cells) == 24
    assert len({cell.name for cell in cells}) == len(cells)
    for cell in cells:  # the configs after each base: the 8-GPU trainer only
        assert [str(path) for path in cell.extra] == ["configs/trainer/fsdp_8gpu.yaml"]
        if "TextOnlyDataModule" in cell.name:  # as the paper's text-only runs: the LLM only
            assert cell.values["model.init_args.train_audio_encoder"] is False
            assert cell.values["model.init_args.train_projector"] is False


def _parts(corpus: dict) -> list[dict]:
    if corpus["class_path"] == CORPORA + "CombinedCorpus":
        return corpus["init_args"]["parts"]
    return [corpus]


@pytest.mark.parametrize("proportion", [0.0, 0.05])
def test_each_adaptation_cell_trains_on_french_plus_exactly_its_composition_of_one_target(
    proportion, monkeypatch
):
    from slu_lightning.cli import parse_command
    from slu_lightning.experiments.report.cells import training_locales

    cells = [
        cell
        for cell in _adaptation_cells(monkeypatch)
        if float(cell.values["data.init_args.speech_subset.proportion"]) == proportion
    ]
    assert sorted({cell.base.stem for cell in cells}) == sorted(COMPOSITIONS)
    for cell in cells:
        parsed = parse_command(cell.cli_args("fit", Path("logs/sweeps/test")))
        data = parsed["data"]["init_args"]
        subset = data["speech_subset"]
        train_locales = cell.values["data.init_args.train_locales"]
        assert data["train_locales"] == train_locales and train_locales[0] == SOURCE
        assert subset["proportion"] == proportion and subset["unit"] == "utterance"
        assert parsed["checkpoint"]["save_top_k"] == 0 and parsed["checkpoint"]["save_last"] is True
        source, *added = _parts(data["corpus"])
        # The source: French text and speech (the only full `train` split read), tested on all 12.
        assert source["class_path"] == CORPORA + "SpeechMassiveCorpus"
        assert source["init_args"]["train_locales"] == [SOURCE]
        assert source["init_args"]["train_split"] == "train"
        assert sorted(source["init_args"]["eval_locales"]) == sorted([SOURCE, *_targets()])
        extra = COMPOSITIONS[cell.base.stem]
        if extra is None:  # zero-shot: French alone, whatever the target
            assert added == [] and train_locales == [SOURCE]
            assert training_locales(parsed) == [SOURCE]
            continue
        # One target besides the source, which every added part holds; the proportion of speech is
        # drawn from the French speech only, the target's few-shot recordings kept whole.
        assert len(train_locales) == 2 and train_locales[1] in _targets()
        assert subset["locales"] == [SOURCE]
        assert [part["class_path"] for part in added] == [CORPORA + name for name in extra]
        for part in added:
            init = part["init_args"]
            if part["class_path"].endswith("SpeechMassiveCorpus"):  # few-shot speech: train_115
                assert init["train_split"] == "train_115" and init["eval_locales"] == []
                assert init["train_locales"] == _targets()
            else:
                assert init["locales"] == _targets()
        # The report's locale table counts the target as trained on, and nothing else.
        assert training_locales(parsed) == train_locales
        regime = parsed["data"]["class_path"].rsplit(".", 1)[-1]
        if regime == "TextOnlyDataModule":
            assert extra == ["MassiveTextCorpus"] and proportion == 0
            assert parsed["model"]["init_args"]["train_audio_encoder"] is False
            assert parsed["model"]["init_args"]["train_projector"] is False
        else:
            assert regime == "CurriculumDataModule"
            assert [phase["train_audio_encoder"] for phase in data["phases"]] == [False, None]


def test_the_german_few_shot_config_is_the_adaptation_grids_both_composition_kept_to_german(
    capsys, monkeypatch
):
    """``speech_massive_fewshot_de.yaml`` and ``speech_massive_adapt_text_115.yaml`` train on the same
    data and settings: the second reads every target and keeps German by ``train_locales``."""
    monkeypatch.chdir(ROOT)
    german = launched(ROOT / "configs" / "paper" / "speech_massive_fewshot_de.yaml", capsys)
    both = launched(ROOT / "configs" / "paper" / "speech_massive_adapt_text_115.yaml", capsys)
    german_parts = german["data"]["init_args"].pop("corpus")["init_args"]["parts"]
    both_parts = both["data"]["init_args"].pop("corpus")["init_args"]["parts"]
    assert both["data"]["init_args"].pop("train_locales") == [SOURCE, "de-DE"]
    assert german["data"]["init_args"].pop("train_locales") is None
    german.pop("run"), both.pop("run")
    assert german == both
    assert both_parts[0] == german_parts[0]
    for wide, narrow in zip(both_parts[1:], german_parts[1:], strict=True):
        key = "locales" if wide["class_path"].endswith("MassiveTextCorpus") else "train_locales"
        assert narrow["init_args"].pop(key) == ["de-DE"] and wide["init_args"].pop(key) == _targets()
        assert wide == narrow
