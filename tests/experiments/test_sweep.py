"""``slu-lightning sweep`` on real tiny cells (tiny-test backbone, toy corpus, 1 epoch, subprocesses)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from slu_lightning.experiments.sweep import (
    SweepError,
    SweepSpec,
    axis_labels,
    busy_cores_warning,
    cell_environment,
    expand_cells,
    load_spec,
    main,
    parsed_run_config,
)

PROPORTION = "data.init_args.speech_subset.proportion"


def write_yaml(path: Path, content: dict) -> Path:
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def write_base(tmp_path: Path, corpus: Path) -> Path:
    """The smallest real run: direct mixing, 1 epoch cut to 1 training and 1 validation batch."""
    return write_yaml(
        tmp_path / "base.yaml",
        {
            "trainer": {
                "max_epochs": 1,
                "accelerator": "cpu",
                "log_every_n_steps": 1,
                "enable_progress_bar": False,
                "enable_model_summary": False,
                "limit_train_batches": 1,
                "limit_val_batches": 1,
            },
            "model": {
                "class_path": "slu_lightning.model.module.SLUModule",
                "init_args": {"backbone": "tiny-test", "generation": {"num_beams": 1, "max_new_tokens": 8}},
            },
            "data": {
                "class_path": "slu_lightning.data.datamodules.MixedDataModule",
                "init_args": {
                    "corpus": {
                        "class_path": "slu_lightning.data.corpora.ManifestCorpus",
                        "init_args": {"train": str(corpus / "train.jsonl"), "dev": str(corpus / "dev.jsonl")},
                    },
                    "batch_size": 12,
                    "max_eval_examples": 4,
                },
            },
        },
    )


def mtimes(root: Path, name: str) -> list[int]:
    """When the cell's checkpoint and predictions were last written: unchanged if nothing ran."""
    files = ("checkpoints/last.ckpt", "predictions_test.jsonl")
    return [(root / name / file).stat().st_mtime_ns for file in files]


def cells_of(root: Path) -> dict[str, dict]:
    return {cell["name"]: cell for cell in json.loads((root / "sweep.json").read_text())["cells"]}


@pytest.fixture(scope="module")
def swept(toy_corpus, tmp_path_factory):
    """A 2-cell sweep (speech proportion 0.25 and 0.5), run once for the slow tests below; with the
    resume test it starts 7 subprocesses, each importing Lightning (~10 s of CPU)."""
    tmp_path = tmp_path_factory.mktemp("sweep")
    spec = {
        "base": str(write_base(tmp_path, toy_corpus)),
        "root": str(tmp_path / "sweeps" / "toy"),
        "axes": {PROPORTION: [0.25, 0.5]},
    }
    main(["--config", str(write_yaml(tmp_path / "sweep.yaml", spec)), "--jobs", "2"])
    return tmp_path, spec


@pytest.mark.slow
def test_every_cell_is_an_ordinary_named_run_with_its_overrides(swept):
    _, spec = swept
    root = Path(spec["root"])
    cells = cells_of(root)
    assert list(cells) == ["p0.25", "p0.5"]
    for name, proportion in (("p0.25", 0.25), ("p0.5", 0.5)):
        assert cells[name]["status"] == "finished" and cells[name]["values"] == {PROPORTION: proportion}
        assert cells[name]["overrides"] == [f"--{PROPORTION}", str(proportion)]
        run = root / name
        assert (run / "predictions_test.jsonl").read_text().count("\n") == 4
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["data"]["init_args"]["speech_subset"]["proportion"] == proportion
        log = (run / "sweep.log").read_text()
        assert " fit " in log and " test " in log and "--ckpt_path auto" in log


@pytest.mark.slow
def test_a_rerun_skips_finished_cells(swept, capsys):
    tmp_path, spec = swept
    root = Path(spec["root"])
    before = {name: mtimes(root, name) for name in ("p0.25", "p0.5")}
    main(["--config", str(tmp_path / "sweep.yaml")])
    assert "2 finished, 0 to run" in capsys.readouterr().out
    assert {name: mtimes(root, name) for name in before} == before


@pytest.mark.slow
def test_a_finished_cell_whose_shared_config_changed_is_named_and_not_reused(swept, capsys):
    """A fragment added to ``configs`` changes what every cell would run: the sweep names the cells
    and the key, in --dry-run too, and refuses to start rather than reuse or delete them."""
    tmp_path, spec = swept
    root = Path(spec["root"])
    before = {name: mtimes(root, name) for name in ("p0.25", "p0.5")}
    predictions = root / "p0.5" / "predictions_test.jsonl"
    predictions.rename(predictions.with_suffix(".kept"))  # p0.5 as if interrupted before its test
    fragment = write_yaml(
        tmp_path / "shorter.yaml", {"model": {"init_args": {"generation": {"max_new_tokens": 6}}}}
    )
    changed = write_yaml(tmp_path / "sweep-changed.yaml", {**spec, "configs": [str(fragment)]})
    printed = []
    for dry_run in (["--dry-run"], []):
        with pytest.raises(SystemExit) as stop:
            main(["--config", str(changed), *dry_run])
        assert stop.value.code == 2
        printed.append(capsys.readouterr())
        assert "2 cell(s) in" in printed[-1].err and f"Move {root} aside" in printed[-1].err
        assert "p0.25: model.init_args.generation.max_new_tokens: 8 -> 6" in printed[-1].err
        assert "p0.5: model.init_args.generation.max_new_tokens: 8 -> 6" in printed[-1].err
    assert "p0.25: skip, but its config changed: model.init_args.generation.max_new_tokens" in printed[0].out
    assert "p0.5: resume, but its config changed: model.init_args.generation.max_new_tokens" in printed[0].out
    predictions.with_suffix(".kept").rename(predictions)
    assert {name: mtimes(root, name) for name in before} == before
    assert json.loads((root / "sweep.json").read_text())["cells"][0]["status"] == "finished"


@pytest.mark.slow
def test_an_interrupted_cell_resumes_alone_and_a_failing_cell_is_recorded(swept):
    tmp_path, spec = swept
    root = Path(spec["root"])
    finished = mtimes(root, "p0.25")
    (root / "p0.5" / "predictions_test.jsonl").unlink()  # interrupted after training, before testing
    missing = tmp_path / "no-such-dev.jsonl"  # parses, then this cell's fit fails at setup
    spec = {**spec, "include": [{PROPORTION: 0.75, "data.init_args.corpus.init_args.dev": str(missing)}]}
    with pytest.raises(SystemExit) as stop:
        main(["--config", str(write_yaml(tmp_path / "sweep-more.yaml", spec)), "--jobs", "2"])
    assert stop.value.code == 1
    cells = cells_of(root)
    assert mtimes(root, "p0.25") == finished
    assert cells["p0.5"]["status"] == "finished" and (root / "p0.5" / "predictions_test.jsonl").is_file()
    assert "resuming from" in (root / "p0.5" / "sweep.log").read_text()
    failed = cells["p0.75-dev=no-such-dev.jsonl"]
    assert failed["status"] == "failed" and failed["returncode"] != 0
    assert str(missing) in Path(failed["log"]).read_text()
    assert not (root / failed["name"] / "predictions_test.jsonl").exists()


def test_dry_run_lists_plans_and_commands_and_writes_nothing(toy_corpus, tmp_path, capsys):
    spec = {
        "base": str(write_base(tmp_path, toy_corpus)),
        "root": str(tmp_path / "dry"),
        "axes": {PROPORTION: [0.25, 0.5]},
    }
    main(["--config", str(write_yaml(tmp_path / "dry.yaml", spec)), "--dry-run"])
    out = capsys.readouterr().out
    assert "p0.25: fresh" in out and f"--run.name p0.5 --ckpt_path auto --{PROPORTION} 0.5" in out
    assert not Path(spec["root"]).exists()


def test_a_cell_with_a_sharded_checkpoint_folder_resumes_and_its_changed_config_is_refused(
    toy_corpus, tmp_path, capsys
):
    """Under FSDP's sharded state dicts ``last.ckpt`` is a folder, which ``fit --ckpt_path auto``
    resumes from: the sweep must plan a resume and compare the config the cell began under."""
    spec = {
        "base": str(write_base(tmp_path, toy_corpus)),
        "root": str(tmp_path / "sharded"),
        "axes": {PROPORTION: [0.25]},
    }
    sweep_file = write_yaml(tmp_path / "sharded.yaml", spec)
    (cell,) = expand_cells(load_spec(sweep_file))
    run = Path(spec["root"]) / cell.name
    (run / "checkpoints" / "last.ckpt").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt" / "__0_0.distcp").write_bytes(b"shard")
    began = parsed_run_config(cell.cli_args("fit", Path(spec["root"])))
    began["model"]["init_args"]["optimizer"]["lr"] = 0.123
    write_yaml(run / "config.yaml", began)
    with pytest.raises(SystemExit) as stop:
        main(["--config", str(sweep_file), "--dry-run"])
    assert stop.value.code == 2
    printed = capsys.readouterr()
    assert "p0.25: resume, but its config changed: model.init_args.optimizer.lr" in printed.out
    assert "p0.25: model.init_args.optimizer.lr: 0.123 -> " in printed.err


def test_a_mistyped_key_or_a_wrong_value_is_found_before_any_cell_runs(toy_corpus, tmp_path, capsys):
    typo = "data.init_args.speech_subset.proportoin"
    spec = {
        "base": str(write_base(tmp_path, toy_corpus)),
        "root": str(tmp_path / "typo"),
        "axes": {PROPORTION: [0.25, 1.5]},
        "include": [{typo: 0.5}, {"model.init_args.optimizer.lr": "fast"}],
        "exclude": [{PROPORTION: 0.9}],
    }
    with pytest.raises(SystemExit) as stop:
        main(["--config", str(write_yaml(tmp_path / "typo.yaml", spec)), "--dry-run"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "the exclude rule" in err and "matches no cell" in err
    assert (
        "5 cell(s) would not parse" in err and "unrecognized arguments: --speech_subset.proportoin=0.5" in err
    )
    assert "Expected a <class 'float'>. Got value: fast" in err
    assert "p1.5: " in err and "1.5 does not conform to restriction v>=0 and v<=1" in err
    assert not Path(spec["root"]).exists()


def test_a_misspelt_locale_or_unfilled_epochs_are_found_before_any_cell_runs_and_nothing_is_built(
    toy_corpus, tmp_path, capsys
):
    """The dry run checks each cell's data settings as far as they show without reading the corpus:
    the demo corpus knows its locales from its settings, and is not built to check them."""
    config = yaml.safe_load(write_base(tmp_path, toy_corpus).read_text())
    demo = tmp_path / "demo"
    config["data"]["init_args"]["corpus"] = {
        "class_path": "slu_lightning.data.corpora.DemoCorpus",
        "init_args": {"size": "tiny", "root": str(demo)},
    }
    curriculum = {
        "data.class_path": "slu_lightning.data.datamodules.CurriculumDataModule",
        "data.init_args.phases": [[{"name": "text", "epochs": 2, "mix": {"text": {"fraction": 1.0}}}]],
    }
    spec = {
        "base": str(write_yaml(tmp_path / "demo.yaml", config)),
        "root": str(tmp_path / "locales"),
        "axes": {"data.init_args.train_locales": [["fr-FR"], ["fr-FX"]]},
        "include": [{"data.init_args.eval_locales": [["de-DE", "xx-XX"]]}, curriculum],
    }
    with pytest.raises(SystemExit) as stop:
        main(["--config", str(write_yaml(tmp_path / "locales.yaml", spec)), "--dry-run"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "5 cell(s) would be refused before training" in err  # all but train_locales=fr-FR
    assert "train_locales=fr-FX: train_locales: the corpus has no train split of ['fr-FX'] (it has [" in err
    assert "eval_locales: the corpus has no dev split of ['xx-XX']" in err
    assert "the curriculum's phases last 2 epochs but trainer.max_epochs is 1" in err
    assert not demo.exists() and not Path(spec["root"]).exists()


def test_cells_cross_axes_minus_exclude_plus_include(tmp_path):
    spec = SweepSpec(
        base=tmp_path / "base.yaml",
        root=tmp_path,
        axes={
            "data.class_path": ["MixedDataModule", "slu_lightning.data.datamodules.CurriculumDataModule"],
            PROPORTION: [0.05, 1.0],
            "seed_everything": [1, 2],
        },
        include=[{"data.class_path": "TextOnlyDataModule", PROPORTION: 0, "base": "text.yaml"}],
        exclude=[{"data.class_path": "CurriculumDataModule", PROPORTION: [1]}],
    )
    cells = {cell.name: cell for cell in expand_cells(spec)}
    assert list(cells) == [
        "MixedDataModule-p0.05-seed1",
        "MixedDataModule-p0.05-seed2",
        "MixedDataModule-p1-seed1",
        "MixedDataModule-p1-seed2",
        "CurriculumDataModule-p0.05-seed1",
        "CurriculumDataModule-p0.05-seed2",
        "TextOnlyDataModule-p0-seed1-text",
        "TextOnlyDataModule-p0-seed2-text",
    ]
    text_only = cells["TextOnlyDataModule-p0-seed2-text"]
    assert text_only.base == Path("text.yaml")
    assert text_only.overrides() == [
        "--data.class_path",
        "TextOnlyDataModule",
        f"--{PROPORTION}",
        "0",
        "--seed_everything",
        "2",
    ]


def test_axis_labels_are_short_and_unique():
    keys = ["seed_everything", "data.init_args.speech_subset.seed", "model.init_args.optimizer.lr", "base"]
    assert axis_labels(keys) == {
        "seed_everything": "seed",
        "model.init_args.optimizer.lr": "lr",
        "base": "",
        "data.init_args.speech_subset.seed": "speech_subset.seed",
    }


def test_a_path_valued_axis_names_cells_by_the_paths_last_part_and_passes_the_whole_path(tmp_path):
    backbones = ["logs/ablation/backbones/all", "logs/ablation/backbones/no-align", "tiny-heard"]
    spec = SweepSpec(base=tmp_path / "base.yaml", root=tmp_path, axes={"model.init_args.backbone": backbones})
    cells = expand_cells(spec)
    assert [cell.name for cell in cells] == ["backbone=all", "backbone=no-align", "backbone=tiny-heard"]
    assert cells[1].overrides() == ["--model.init_args.backbone", "logs/ablation/backbones/no-align"]
    clash = SweepSpec(
        base=tmp_path / "base.yaml", root=tmp_path, axes={"model.init_args.backbone": ["a/all", "b/all"]}
    )
    with pytest.raises(SweepError, match="both named 'backbone=all'"):
        expand_cells(clash)


def test_a_bad_sweep_file_gets_every_problem_in_one_message(tmp_path):
    bad = write_yaml(
        tmp_path / "bad.yaml",
        {
            "base": "missing.yaml",
            "root": "x",
            "colour": 1,
            "axes": {"run.name": ["a"], PROPORTION: []},
            "exclude": [{"seed_everything": 1}],
        },
    )
    with pytest.raises(SweepError) as error:
        load_spec(bad)
    message = str(error.value)
    problems = ("colour", "'run.name'", "non-empty list", "'seed_everything' is not an axis", "missing.yaml")
    assert all(problem in message for problem in problems), message


@pytest.mark.parametrize(
    "name, extra", [("sweep", []), ("sweep_pretrained", ["configs/backbones/pretrained_tiny.yaml"])]
)
def test_the_demo_sweeps_are_the_papers_reduced_grid(monkeypatch, name, extra):
    monkeypatch.chdir(Path(__file__).parents[2])  # its paths are relative to the repository root
    cells = expand_cells(load_spec(Path(f"configs/demo/{name}.yaml")))
    seeds = (0, 1, 2) if extra else (0,)  # the pretrained stand-in's grid has three seeds
    regimes = ["text_only-p0"] + (["cascade-p0"] if extra else [])
    regimes += [f"{regime}-p{p}" for regime in ("mixed", "curriculum") for p in ("0.02", "0.1", "1")]
    assert sorted(cell.name for cell in cells) == sorted(f"{r}-seed{seed}" for r in regimes for seed in seeds)
    for cell in cells:
        fit = cell.commands(Path("logs/sweeps/x"))[0]
        configs = [fit[i + 1] for i, arg in enumerate(fit) if arg == "--config"]
        assert configs == [str(cell.base), *extra]


def test_the_heard_voices_grid_is_the_pretrained_grid_on_its_backbone(monkeypatch):
    """The quick start's backbone config differs from pretrained_tiny.yaml in the backbone alone, and
    its grid has the same cells, the cascade's recogniser swapped too."""
    monkeypatch.chdir(Path(__file__).parents[2])
    settings = [
        yaml.safe_load(Path(f"configs/backbones/{n}.yaml").read_text())
        for n in ("pretrained_tiny", "heard_voices")
    ]
    backbones = [setting["model"]["init_args"].pop("backbone") for setting in settings]
    assert backbones == ["tiny-heard", "tiny-heard-voices"] and settings[0] == settings[1]
    recogniser = "data.init_args.corpus.init_args.recogniser"
    grids = [
        expand_cells(load_spec(Path(f"configs/demo/{n}.yaml")))
        for n in ("sweep_pretrained", "sweep_heard_voices")
    ]
    cells = [
        [(str(cell.base), {k: v for k, v in cell.values.items() if "corpus" not in k}) for cell in grid]
        for grid in grids
    ]
    assert cells[0] == cells[1]
    cascades = [cell for cell in grids[1] if str(cell.base) == "configs/demo/cascade.yaml"]
    assert len(cascades) == 3 and all(cell.values[recogniser] == "tiny-heard-voices" for cell in cascades)


def test_the_paper_sweep_is_the_full_grid_on_eight_gpus(monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])
    cells = expand_cells(load_spec(Path("configs/paper/slurp_sweep.yaml")))
    assert len(cells) == 2 * 5 * 3 + 3  # mixing and curriculum x 5 proportions x 3 seeds, text-only x 3 seeds
    fit = cells[0].commands(Path("logs/sweeps/paper-slurp"))[0]
    configs = [fit[i + 1] for i, arg in enumerate(fit) if arg == "--config"]
    assert configs[-1] == "configs/trainer/fsdp_8gpu.yaml" and configs[0].startswith("configs/paper/")


@pytest.mark.parametrize("path", ["paper/speech_massive_sweep", "extensions/italic_sweep"])
def test_the_cross_lingual_and_italic_grids_swap_regimes_on_one_base(monkeypatch, path):
    monkeypatch.chdir(Path(__file__).parents[2])
    cells = expand_cells(load_spec(Path(f"configs/{path}.yaml")))
    assert len(cells) == 2 * 5 + 1
    text_only = [cell for cell in cells if "TextOnly" in cell.name]
    assert len(text_only) == 1 and "--model.init_args.train_audio_encoder" in text_only[0].overrides()


def test_cells_run_at_once_share_the_cores_unless_the_user_set_the_threads(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert cell_environment(2, {"PATH": "/bin"}) == {"PATH": "/bin", "OMP_NUM_THREADS": "4"}
    assert cell_environment(16, {})["OMP_NUM_THREADS"] == "1"
    assert cell_environment(2, {"OMP_NUM_THREADS": "3"}) == {"OMP_NUM_THREADS": "3"}
    assert "OMP_NUM_THREADS" not in cell_environment(1, {})


def test_a_sweep_started_on_busy_cores_says_how_many_threads_to_use():
    busy = busy_cores_warning({}, jobs=1, load=2.0, cores=2)  # another run holds both cores
    assert busy is not None and "load 2.0 on 2 cores" in busy and "OMP_NUM_THREADS=1" in busy
    assert "OMP_NUM_THREADS=3" in busy_cores_warning({}, jobs=2, load=2.0, cores=8)
    assert busy_cores_warning({}, jobs=1, load=0.3, cores=2) is None  # idle
    assert busy_cores_warning({"OMP_NUM_THREADS": "1"}, jobs=1, load=1.0, cores=2) is None  # fits
    assert busy_cores_warning({"OMP_NUM_THREADS": "4"}, jobs=2, load=0.0, cores=8) is None
    one_each = busy_cores_warning({"OMP_NUM_THREADS": "1"}, jobs=2, load=2.2, cores=2)
    assert "fewer cells at once" in one_each and "OMP_NUM_THREADS=" not in one_each  # threads are not it


def test_the_transfer_sweep_has_three_text_only_seeds_and_a_full_speech_cell_per_backbone(monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])
    cells = expand_cells(load_spec(Path("configs/demo/sweep_transfer.yaml")))
    text_only = [cell for cell in cells if "mixed" not in cell.name]
    (mixed,) = [cell for cell in cells if "mixed" in cell.name]
    assert [cell.values["seed_everything"] for cell in text_only] == [0, 1, 2]
    assert str(mixed.base) == "configs/demo/mixed.yaml"
    assert mixed.values["data.init_args.speech_subset.proportion"] == 1.0
    assert all(cell.values["model.init_args.backbone"] == "tiny-heard" for cell in cells)


def test_the_compression_sweep_crosses_every_reading_with_three_text_only_seeds_and_a_full_speech_cell(
    monkeypatch,
):
    monkeypatch.chdir(Path(__file__).parents[2])
    cells = expand_cells(load_spec(Path("configs/demo/sweep_compression.yaml")))
    readings = ["none", "ctc", "ctc_posterior"]
    for reading in readings:
        mine = [cell for cell in cells if cell.values["model.init_args.audio_compression"] == reading]
        text_only = [cell for cell in mine if str(cell.base) == "configs/demo/text_only.yaml"]
        (mixed,) = [cell for cell in mine if str(cell.base) == "configs/demo/mixed.yaml"]
        assert [cell.values["seed_everything"] for cell in text_only] == [0, 1, 2]
        assert mixed.values["data.init_args.speech_subset.proportion"] == 1.0
    assert len(cells) == 4 * len(readings)


def test_the_speech_x5_sweep_is_the_demo_curriculum_with_its_speech_subset_shown_five_times(monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])
    cells = expand_cells(load_spec(Path("configs/demo/sweep_speech_x5.yaml")))
    assert [cell.name for cell in cells] == [f"p{p}-seed{s}" for p in (0.02, 0.1) for s in (0, 1, 2)]
    assert all(str(cell.base) == "configs/demo/curriculum.yaml" for cell in cells)
    phases = yaml.safe_load(Path("configs/demo/curriculum.yaml").read_text())["data"]["init_args"]["phases"]
    x5 = yaml.safe_load(Path("configs/phases/speech_x5.yaml").read_text())["data"]["init_args"]["phases"]
    phases[1]["mix"]["speech"]["oversample"] = 5
    assert x5 == phases  # nothing else differs from the curriculum it is compared with


def test_the_tts_speech_fragment_is_the_tts_augmented_demo_plus_the_speech_subset(monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])
    tts = yaml.safe_load(Path("configs/demo/tts_augmented.yaml").read_text())["data"]["init_args"]
    both = yaml.safe_load(Path("configs/phases/tts_speech.yaml").read_text())["data"]["init_args"]
    assert both["tts_corpus"] == tts["tts_corpus"]
    ((phase,), (tts_phase,)) = both["phases"], tts["phases"]
    assert phase["epochs"] == tts_phase["epochs"] and "speech" not in tts_phase["mix"]
    assert phase["mix"] == {**tts_phase["mix"], "speech": {"fraction": 1.0, "oversample": 1}}
    cells = expand_cells(load_spec(Path("configs/demo/sweep_tts_speech.yaml")))
    assert [cell.name for cell in cells] == ["p0.02-seed0", "p0.02-seed1", "p0.02-seed2"]
    assert [cell.name for cell in expand_cells(load_spec(Path("configs/demo/sweep_tts.yaml")))] == [
        "seed0",
        "seed1",
        "seed2",
    ]


def test_the_noisy_curriculum_is_the_demo_curriculum_reading_noisy_transcripts_in_every_phase(monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])
    phases = yaml.safe_load(Path("configs/demo/curriculum.yaml").read_text())["data"]["init_args"]["phases"]
    noisy = yaml.safe_load(Path("configs/phases/noisy.yaml").read_text())["data"]["init_args"]["phases"]
    for phase in phases:
        phase["name"] = phase["name"].replace("text", "text+noisy")
        phase["mix"]["noisy"] = {"fraction": 1.0, "oversample": 1}
    assert noisy == phases  # nothing else differs from the curriculum it is compared with
    noise = yaml.safe_load(Path("configs/noise/recogniser_2pct.yaml").read_text())["data"]["init_args"]
    cells = expand_cells(load_spec(Path("configs/demo/sweep_noise_curriculum.yaml")))
    assert [cell.name for cell in cells] == ["p0.02-seed0", "p0.02-seed1", "p0.02-seed2"]
    calibration = noise["recogniser_noise"]["speech_subset"]
    assert calibration["proportion"] == 0.02 and calibration["seed"] == 0  # = the runs' speech subset
    assert all(cell.values["data.init_args.speech_subset.proportion"] == 0.02 for cell in cells)


def test_the_uniform_noise_ablation_differs_from_the_noise_sweep_in_the_confusions_alone(monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])
    plain, uniform = (
        expand_cells(load_spec(Path(f"configs/demo/sweep_noise{kind}.yaml"))) for kind in ("", "_uniform")
    )
    assert [cell.name for cell in plain] == ["seed0", "seed1", "seed2"]
    for a, b in zip(plain, uniform, strict=True):  # the ablation differs in the confusions alone
        assert b.values == {**a.values, "data.init_args.recogniser_noise.confusions": "uniform"}
        assert (a.base, a.extra) == (b.base, b.extra)


def test_the_noisy_copies_sweep_differs_from_the_noise_sweep_in_the_number_of_copies_alone(monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])
    plain, more = (
        expand_cells(load_spec(Path(f"configs/demo/sweep_noise{kind}.yaml"))) for kind in ("", "_copies")
    )
    assert [cell.name for cell in more] == [f"copies{c}-seed{s}" for c in (2, 3) for s in (0, 1, 2)]
    default = yaml.safe_load(Path("configs/noise/recogniser_2pct.yaml").read_text())["data"]["init_args"]
    assert default["recogniser_noise"]["copies"] == 1  # what logs/reports/noise measured
    copies = "data.init_args.recogniser_noise.copies"
    for a, b, n in zip(plain * 2, more, (2, 2, 2, 3, 3, 3), strict=True):
        assert b.values == {**a.values, copies: n}
        assert (a.base, a.extra) == (b.base, b.extra)


def test_the_noisy_curriculum_with_copies_differs_from_the_noisy_curriculum_in_the_copies_alone(monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])
    one, three = (
        expand_cells(load_spec(Path(f"configs/demo/sweep_noise_curriculum{kind}.yaml")))
        for kind in ("", "_copies")
    )
    assert [cell.name for cell in three] == [f"p0.02-copies3-seed{s}" for s in (0, 1, 2)]
    for a, b in zip(one, three, strict=True):
        assert b.values == {**a.values, "data.init_args.recogniser_noise.copies": 3}
        assert (a.base, a.extra) == (b.base, b.extra)


def test_the_steps_control_trains_the_noise_sweep_for_as_many_steps_as_three_copies(monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])
    plain, longer = (
        expand_cells(load_spec(Path(f"configs/demo/sweep_noise{kind}.yaml"))) for kind in ("", "_steps")
    )
    epochs = yaml.safe_load(Path("configs/demo/text_only.yaml").read_text())["trainer"]["max_epochs"]
    assert epochs == 3  # three copies: 4 texts per transcript x 3 epochs = 12; one copy: 2 x 6 = 12
    for a, b in zip(plain, longer, strict=True):
        assert b.values == {**a.values, "trainer.max_epochs": 6}
        assert (a.base, a.extra) == (b.base, b.extra)


def test_the_cell_folders_the_sweep_files_comments_name_are_cells_they_make(monkeypatch):
    """A comment's ``<root>/<cell>/`` must be a folder the sweep writes (``S`` in ``seedS``: any seed)."""
    monkeypatch.chdir(Path(__file__).parents[2])
    named = 0
    for path in sorted(Path("configs").glob("*/*sweep*.yaml")):
        spec = load_spec(path)
        cells = [cell.name for cell in expand_cells(spec)]
        comments = "\n".join(line for line in path.read_text().splitlines() if line.lstrip().startswith("#"))
        for folder in re.findall(rf"{re.escape(str(spec.root))}/([^/\s]+)/", comments):
            pattern = re.escape(folder).replace("seedS", r"seed\d+")
            assert any(re.fullmatch(pattern, cell) for cell in cells), (str(path), folder)
            named += 1
    assert named >= 2  # configs/demo/sweep.yaml's example and sweep_noise_domain_lm.yaml's template


@pytest.mark.slow
def test_sigterm_reaches_the_running_cell_which_saves_and_is_recorded_interrupted(toy_corpus, tmp_path):
    """The sweep passes SIGTERM on to its training cell and waits for it: the fit saves last.ckpt
    and stops, the cell is ``interrupted`` (not failed), the sweep exits 143, and no cell process
    is left training; a rerun plans to resume it."""
    base = yaml.safe_load(write_base(tmp_path, toy_corpus).read_text())
    base["trainer"]["max_epochs"] = 1000  # far longer than the test waits
    spec = {
        "base": str(write_yaml(tmp_path / "long.yaml", base)),
        "root": str(tmp_path / "sweeps" / "stopped"),
        "axes": {PROPORTION: [0.5]},
    }
    sweep_file = write_yaml(tmp_path / "sweep.yaml", spec)
    command = [sys.executable, "-m", "slu_lightning.cli", "sweep", "--config", str(sweep_file)]
    sweep = subprocess.Popen(
        command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE, text=True
    )
    log = Path(spec["root"]) / "p0.5" / "sweep.log"
    deadline = time.monotonic() + 240
    while not (log.is_file() and "now stops the run" in log.read_text()):  # training has started
        assert sweep.poll() is None and time.monotonic() < deadline, "the cell never started training"
        time.sleep(0.5)
    sweep.send_signal(signal.SIGTERM)
    _, err = sweep.communicate(timeout=180)
    assert sweep.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM; interrupted: p0.5" in err
    (cell,) = cells_of(Path(spec["root"])).values()
    assert cell["status"] == "interrupted" and cell["returncode"] == 128 + signal.SIGTERM
    assert (Path(spec["root"]) / "p0.5" / "checkpoints" / "last.ckpt").is_file()
    assert "run interrupted by SIGTERM" in log.read_text()
    left = [p for p in Path("/proc").glob("[0-9]*/cmdline") if spec["root"].encode() in _read(p)]
    assert not left, "a cell process outlived the sweep"
    rerun = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, check=True)
    assert "p0.5: resume" in rerun.stdout


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the process ended while the folder was listed
        return b""
