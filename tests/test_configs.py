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


@pytest.mark.parametrize("name", ["speech_massive_fr_curriculum", "speech_massive_fewshot_de"])
def test_cross_lingual_runs_keep_no_best_checkpoint_chosen_on_their_zero_shot_targets(
    name, capsys, monkeypatch
):
    monkeypatch.chdir(ROOT)
    parsed = launched(ROOT / "configs" / "paper" / f"{name}.yaml", capsys)
    assert parsed["checkpoint"]["monitor"] == "val/loss" and parsed["checkpoint"]["save_top_k"] == 0
    assert parsed["checkpoint"]["save_last"] is True
