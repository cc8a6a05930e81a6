"""The toolkit through its command line, as a user runs it (tiny model, toy corpus)."""

import importlib
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from jsonargparse import Namespace

from slu_lightning.cli import (
    COMMANDS,
    RunError,
    check_untuned,
    follow_run_seed,
    main,
    parse_command,
    user_message,
)
from slu_lightning.data.errors import ConfigError, DataError

CONFIGS = sorted(
    path
    for path in Path(__file__).parents[1].glob("configs/**/*.yaml")
    if "axes" not in yaml.safe_load(path.read_text())
)  # sweep grids are tested with the sweep


CURRICULUM = [  # 1 text epoch (4 steps of 6), then text + speech (5 steps) with the audio side unfrozen
    {"name": "text", "epochs": 1, "mix": {"text": {"fraction": 1.0}}},
    {
        "name": "text+speech",
        "epochs": 1,
        "mix": {"text": {"fraction": 1.0}, "speech": {"fraction": 1.0}},
        "lr": 5e-4,
        "warmup_ratio": 0.2,
        "train_audio_encoder": True,
        "train_projector": True,
        "reset_optimizer": True,
    },
]


def write_config(tmp_path: Path, corpus: Path, regime: str = "MixedDataModule") -> Path:
    config = {
        "run": {"name": "toy", "root": str(tmp_path / "logs")},
        "trainer": {
            "max_epochs": 2,
            "accelerator": "cpu",
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
        },
        "model": {
            "class_path": "slu_lightning.model.module.SLUModule",
            "init_args": {
                "backbone": "tiny-test",
                "optimizer": {"lr": 1e-3},
                "generation": {"num_beams": 1, "max_new_tokens": 8},
                "generate_during_validation": False,
            },
        },
        "data": {
            "class_path": f"slu_lightning.data.datamodules.{regime}",
            "init_args": {
                "corpus": {
                    "class_path": "slu_lightning.data.corpora.ManifestCorpus",
                    "init_args": {"train": str(corpus / "train.jsonl"), "dev": str(corpus / "dev.jsonl")},
                },
                "speech_subset": {"proportion": 0.25},
                "batch_size": 6,
            },
        },
    }
    if regime == "CurriculumDataModule":
        config["data"]["init_args"]["phases"] = CURRICULUM
    path = tmp_path / f"{regime}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def exit_code(args: list[str]) -> int:
    with pytest.raises(SystemExit) as stop:
        main(args)
    return stop.value.code


@pytest.fixture(scope="module")
def trained(toy_corpus, tmp_path_factory):
    """One short fit shared by the tests below."""
    tmp_path = tmp_path_factory.mktemp("cli")
    config = write_config(tmp_path, toy_corpus)
    main(["fit", "--config", str(config)])
    return config, tmp_path / "logs" / "toy"


def test_fit_writes_a_named_run_directory(trained):
    _, run = trained
    assert (run / "checkpoints" / "last.ckpt").is_file()
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
    assert any(key.startswith("RunCheckpoint{") for key in saved)  # last.ckpt follows every epoch
    assert (run / "config.yaml").is_file() and list(run.glob("events.out.tfevents.*"))
    assert len((run / "speech_subset_ids.txt").read_text().split()) == 6
    summary = json.loads((run / "training_data.json").read_text())
    assert summary["text_examples"] == 24 and summary["speech_examples"] == 6
    assert summary["locales"] == ["en-US", "fr-FR"] and summary["speech_subset"].startswith("SpeechSubset(")
    assert 6 * 0.6 / 3600 <= summary["speech_hours"] <= 6 * 1.5 / 3600  # toy clips last 0.6-1.5 s


def test_unset_model_and_data_seeds_follow_seed_everything(trained):
    saved = yaml.safe_load((trained[1] / "config.yaml").read_text())
    assert saved["seed_everything"] == 0  # the default, recorded as the seeds used
    assert saved["model"]["init_args"]["seed"] == 0 and saved["data"]["init_args"]["seed"] == 0
    model, data = Namespace(init_args=Namespace(seed=None)), Namespace(init_args=Namespace(seed=3))
    config = Namespace(seed_everything=7, model=model, data=data)
    follow_run_seed(config)
    assert (config.model.init_args.seed, config.data.init_args.seed) == (7, 3)  # a set seed is kept


def test_the_run_records_its_provenance(trained):
    _, run = trained
    record = json.loads((run / "provenance.json").read_text())
    (fit,) = record["segments"]
    from importlib.metadata import version

    assert {name: fit["packages"][name] for name in ("torch", "lightning")} == {
        name: version(name) for name in ("torch", "lightning")
    }
    assert len(fit["code"]["commit"]) == 40 or fit["code"]["commit"].startswith("unknown")
    assert record["global_step"] == 10 and record["wall_seconds"] == fit["wall_seconds"] > 0
    assert (fit["first_step"], fit["last_step"]) == (0, 10) and "CPU" in fit["device"]
    assert len(fit["data_files"]) == 2 and all(len(h) == 64 for h in fit["data_files"].values())
    assert record["training_data"]["speech_examples"] == 6


def test_a_resumed_run_keeps_the_provenance_of_its_earlier_fits(trained):
    config, run = trained
    fit = ["fit", "--config", str(config), "--run.name", "provenance", "--trainer.max_steps"]
    main([*fit, "2"])
    (first,) = json.loads((run.parent / "provenance" / "provenance.json").read_text())["segments"]
    main([*fit, "3", "--ckpt_path", "last"])
    record = json.loads((run.parent / "provenance" / "provenance.json").read_text())
    assert record["segments"][0] == first and record["global_step"] == 3
    assert [(fit["first_step"], fit["last_step"]) for fit in record["segments"]] == [(0, 2), (2, 3)]


def test_checkpoint_loads_weights_only_and_holds_only_trainable_tensors(trained):
    _, run = trained
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    names = list(checkpoint["state_dict"])
    assert names and all("lora_" in name for name in names)  # LoRA run: no frozen base in the file
    assert checkpoint["global_step"] == 10  # 2 epochs x ceil((24 + 6) / 6)


def test_relaunching_never_silently_restarts(trained, capsys):
    config, run = trained
    assert exit_code(["fit", "--config", str(config)]) == 2
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert exit_code(["fit", "--config", str(config), "--run.name", "other", "--ckpt_path", "last"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err


def test_a_resume_on_other_data_is_refused_before_the_run_folder_is_touched(trained, capsys):
    config, run = trained
    copy = shutil.copytree(run, run.parent / "other-data")
    before = {path.name: path.read_bytes() for path in copy.iterdir() if path.is_file()}
    assert {"config.yaml", "speech_subset_ids.txt", "training_data.json"} <= set(before)
    fit = ["fit", "--config", str(config), "--run.name", "other-data", "--ckpt_path", "last"]
    assert exit_code([*fit, "--data.init_args.speech_subset.proportion", "0.5"]) == 2
    assert "the checkpoint was trained on different data" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in copy.iterdir() if path.is_file()} == before


def test_a_run_that_holds_its_own_checkpoint_never_resumes_another(trained, capsys):
    """A run started from another run's checkpoint keeps its path in config.yaml; relaunched from
    it (a cluster requeue), the run went back to that checkpoint and lost the steps it had trained."""
    config, run = trained
    fit = ["fit", "--config", str(config), "--run.name"]
    main([*fit, "warm-source", "--trainer.max_steps", "2"])
    other = str(run.parent / "warm-source" / "checkpoints" / "last.ckpt")
    main([*fit, "warm", "--trainer.max_steps", "3", "--ckpt_path", other])
    saved = run.parent / "warm" / "config.yaml"
    assert exit_code(["fit", "--config", str(saved)]) == 2
    assert "already holds its own checkpoint, and resuming" in capsys.readouterr().err
    own = run.parent / "warm" / "checkpoints" / "last.ckpt"
    main(["fit", "--config", str(saved), "--ckpt_path", str(own)])  # its own, by path: resumes
    assert torch.load(own, weights_only=True)["global_step"] == 3


def test_a_users_logger_logs_beside_the_runs_tensorboard_and_another_run_folder_is_refused(
    trained, tmp_path, capsys
):
    """--trainer.logger and --trainer.default_root_dir were replaced silently: the user's logger got
    nothing, and the saved config named TensorBoard alone."""
    config, run = trained
    csv = tmp_path / "lightning_logs"
    csv_logger = [
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
        f"--trainer.logger.save_dir={tmp_path}",
    ]
    main(["fit", "--config", str(config), "--run.name", "csv", "--trainer.max_steps", "1", *csv_logger])
    logged = run.parent / "csv"
    assert "train/loss" in (csv / "version_0" / "metrics.csv").read_text()
    assert list(logged.glob("events.out.tfevents.*"))
    saved = yaml.safe_load((logged / "config.yaml").read_text())["trainer"]["logger"]
    assert [entry["class_path"].rsplit(".", 1)[1] for entry in saved] == ["TensorBoardLogger", "CSVLogger"]
    main(["fit", "--config", str(logged / "config.yaml"), "--run.name", "csv-again"])  # the saved config
    assert len(list(logged.glob("events.out.tfevents.*"))) == 1  # not the first run's TensorBoard again
    assert list((run.parent / "csv-again").glob("events.out.tfevents.*"))
    assert (csv / "version_1" / "metrics.csv").is_file()
    fit = ["fit", "--config", str(config), "--run.name", "elsewhere"]
    assert exit_code([*fit, "--trainer.default_root_dir", str(tmp_path)]) == 2
    says = f"a run's folder is <run.root>/<run.name>, here {run.parent / 'elsewhere'}"
    assert says in capsys.readouterr().err
    assert exit_code([*fit, "--trainer.logger", "false"]) == 2
    assert "a run always logs to TensorBoard in its folder" in capsys.readouterr().err


def test_a_damaged_checkpoint_is_named_with_its_siblings_not_a_torch_traceback(trained, tmp_path, capsys):
    config, run = trained
    shutil.copytree(run, tmp_path / "damaged")
    last = tmp_path / "damaged" / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:100_000])  # a copy cut short
    args = [
        "--config",
        str(config),
        "--run.root",
        str(tmp_path),
        "--run.name",
        "damaged",
        "--ckpt_path",
        "last",
    ]
    for command in ("fit", "test"):
        assert exit_code([command, *args]) == 2
        err = capsys.readouterr().err
        assert f"error: {last}: not a readable checkpoint" in err and "holds best-epoch=" in err
        assert "Traceback" not in err


def test_a_torch_file_that_is_no_checkpoint_and_fit_from_best_are_refused_in_one_line(
    trained, tmp_path, capsys
):
    """A zip that torch.load reads but Lightning cannot restore crashed with a traceback and left
    an empty run folder; ``best`` is an evaluation's choice, not a resume."""
    config, _ = trained
    torch.save({"a": 1}, tmp_path / "other.ckpt")
    base = ["--config", str(config), "--run.root", str(tmp_path / "runs")]
    for command in ("fit", "test"):
        assert (
            exit_code([command, *base, "--run.name", command, "--ckpt_path", str(tmp_path / "other.ckpt")])
            == 2
        )
        err = capsys.readouterr().err
        assert "other.ckpt: not a checkpoint of `slu-lightning fit`" in err and "Traceback" not in err
        assert not (tmp_path / "runs" / command).exists()
    assert exit_code(["fit", *base, "--run.name", "best", "--ckpt_path", "best"]) == 2
    assert "--ckpt_path best picks a checkpoint to evaluate" in capsys.readouterr().err


def test_a_fit_without_max_epochs_is_refused_before_lightning_makes_it_1000_epochs(trained, tmp_path, capsys):
    config, _ = trained
    args = ["fit", "--config", str(config), "--run.root", str(tmp_path), "--run.name", "endless"]
    assert exit_code([*args, "--trainer.max_epochs", "null"]) == 2
    assert "trainer.max_epochs is unset" in capsys.readouterr().err
    assert not (tmp_path / "endless").exists()


def test_ckpt_path_best_evaluates_the_runs_best_checkpoint(trained, tmp_path, capsys, caplog):
    config, run = trained
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    with caplog.at_level("INFO"):
        main(["validate", "--config", str(config), "--ckpt_path", "best"])
    assert f"weights from the checkpoint at {best}" in caplog.text  # Lightning's own line
    shutil.copytree(run, tmp_path / "two")
    shutil.copy(best, tmp_path / "two" / "checkpoints" / "best-epoch=9-step=99.ckpt")
    args = ["--config", str(config), "--run.root", str(tmp_path), "--run.name", "two", "--ckpt_path", "best"]
    assert exit_code(["validate", *args]) == 2
    assert "holds 2 best-*.ckpt" in capsys.readouterr().err


def assert_same_weights(first: Path, second: Path) -> None:
    a, b = (torch.load(path, weights_only=True) for path in (first, second))
    assert a["global_step"] == b["global_step"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, tensor in a["state_dict"].items():
        assert torch.equal(b["state_dict"][key], tensor), key


@pytest.mark.parametrize("stop_at_step", [5, 7], ids=["epoch-boundary", "mid-epoch-in-a-moved-folder"])
def test_an_interrupted_run_resumed_ends_with_the_uninterrupted_weights(trained, stop_at_step):
    config, run = trained
    name, root = f"split-{stop_at_step}", run.parent
    main(["fit", "--config", str(config), "--run.name", name, "--trainer.max_steps", str(stop_at_step)])
    if stop_at_step == 7:  # resumed elsewhere (another machine, a renamed folder): same last.ckpt
        root = run.parent.parent / "moved"
        root.mkdir()
        (run.parent / name).rename(root / name)
    main(["fit", "--config", str(config), "--run.name", name, "--run.root", str(root), "--ckpt_path", "last"])
    assert_same_weights(root / name / "checkpoints" / "last.ckpt", run / "checkpoints" / "last.ckpt")
    assert not list((root / name / "checkpoints").glob("last-v*.ckpt"))


@pytest.mark.slow
def test_a_curriculum_resumed_at_or_inside_a_phase_ends_with_the_uninterrupted_weights(toy_corpus, tmp_path):
    config = write_config(tmp_path, toy_corpus, "CurriculumDataModule")
    logs = tmp_path / "logs"
    main(["fit", "--config", str(config), "--run.name", "whole"])
    whole = logs / "whole" / "checkpoints" / "last.ckpt"
    assert torch.load(whole, weights_only=True)["global_step"] == 4 + 5
    for stop in (4, 6):  # at the phase boundary, and inside the speech phase
        name = f"stop-{stop}"
        main(["fit", "--config", str(config), "--run.name", name, "--trainer.max_steps", str(stop)])
        main(["fit", "--config", str(config), "--run.name", name, "--ckpt_path", "last"])
        assert_same_weights(logs / name / "checkpoints" / "last.ckpt", whole)
    # stopped at the phase boundary, then resumed with a larger max_steps: Lightning alone would
    # re-enter the text epoch and end without training the speech phase (pytorch-lightning#19617)
    fit = ["fit", "--config", str(config), "--run.name", "raised"]
    main([*fit, "--trainer.max_steps", "4"])
    main([*fit, "--trainer.max_steps", "7", "--ckpt_path", "last"])
    last = logs / "raised" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 7
    main([*fit, "--ckpt_path", "last"])
    assert_same_weights(last, whole)
    assert logged_steps(logs / "raised", "train/loss") == logged_steps(logs / "whole", "train/loss")


def scalar_events(run: Path, tag: str) -> list:
    """A run's TensorBoard events of scalar ``tag`` (``step``, ``value``), over all its fits in order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = []
    for events in sorted(run.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        found += accumulator.Scalars(tag) if tag in accumulator.Tags()["scalars"] else []
    return found


def logged_steps(run: Path, tag: str) -> list[int]:
    """The steps at which a run's TensorBoard events hold ``tag``, over all its fits."""
    return sorted(event.step for event in scalar_events(run, tag))


def test_test_writes_scorer_format_predictions_and_says_its_headline_in_a_line(trained, caplog, capsys):
    config, run = trained
    capsys.readouterr()
    with caplog.at_level("INFO", logger="slu_lightning.model.module"):
        main(["test", "--config", str(config), "--ckpt_path", str(run / "checkpoints" / "last.ckpt")])
    metrics = json.loads((run / "metrics_test.json").read_text())["speech"]
    assert f"test on speech, 8 examples: intent_acc {metrics['intent_acc']:.3f} [" in caplog.text
    assert "num_examples_ci_low" not in metrics  # a count has no interval
    assert "Test metric" not in capsys.readouterr().out  # Lightning's table of every metric is off
    rows = [json.loads(line) for line in (run / "predictions_test.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and {row["modality"] for row in rows} == {"speech"}
    assert [row["id"] for row in rows] == sorted(row["id"] for row in rows)  # not the decoding order
    assert {"file", "scenario", "action", "entities", "raw", "status", "reference"} <= set(rows[0])


def test_a_checkpoint_of_another_configuration_is_refused_clearly(trained, capsys):
    config, run = trained
    ckpt = str(run / "checkpoints" / "last.ckpt")
    trained_with = (run / "config.yaml").read_text()
    assert (
        exit_code(
            ["test", "--config", str(config), "--model.init_args.finetuning", "full", "--ckpt_path", ckpt]
        )
        == 2
    )
    assert "finetuning='lora'" in capsys.readouterr().err
    assert (run / "config.yaml").read_text() == trained_with
    tested = run / "config_test.yaml"  # written when a test ends: a refused one leaves an earlier test's
    assert not tested.exists() or "finetuning: full" not in tested.read_text()


def test_the_backbone_named_another_way_is_accepted_and_other_weights_are_refused(
    trained, tmp_path, capsys, caplog
):
    from safetensors.torch import load_file, save_file

    from slu_lightning.model.backbone import resolve_backbone

    config, run = trained
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["backbone"] = "/moved/away/tiny-test"  # its folder is gone
    torch.save(checkpoint, tmp_path / "moved.ckpt")
    weights = load_file(resolve_backbone("tiny-test") / "model.safetensors")
    resharded = shutil.copytree(resolve_backbone("tiny-test"), tmp_path / "resharded")
    (resharded / "model.safetensors").unlink()
    names, files = sorted(weights), ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    for file, part in zip(files, (names[::2], names[1::2]), strict=True):  # the same tensors in two files
        save_file({name: weights[name] for name in part}, resharded / file, metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {name: files[i % 2] for i, name in enumerate(names)}}
    (resharded / "model.safetensors.index.json").write_text(json.dumps(index))
    test = ["test", "--config", str(config), "--ckpt_path", str(tmp_path / "moved.ckpt")]
    with caplog.at_level("WARNING", logger="slu_lightning.model.module"):
        main([*test, "--run.name", "resharded", "--model.init_args.backbone", f"{resharded}/"])
    assert f"{resharded} holds the same weights" in caplog.text
    other = shutil.copytree(resolve_backbone("tiny-test"), tmp_path / "other")
    noisy = {name: tensor + 0.01 for name, tensor in weights.items()}
    save_file(noisy, other / "model.safetensors", metadata={"format": "pt"})
    assert exit_code([*test, "--run.name", "other", "--model.init_args.backbone", str(other)]) == 2
    assert "which holds other weights" in capsys.readouterr().err


def test_a_wrong_config_key_gets_one_clear_message(trained, capsys):
    config, _ = trained
    assert exit_code(["fit", "--config", str(config), "--model.init_args.no_such_option", "1"]) == 2
    assert "no_such_option" in capsys.readouterr().err


def test_optimizer_settings_are_the_models_and_lightnings_optimizer_options_are_refused(trained, capsys):
    """LightningCLI's --optimizer would replace SLUModule.configure_optimizers and crash on its
    parameter groups; the learning rate is model.init_args.optimizer.lr."""
    config, _ = trained
    assert exit_code(["fit", "--config", str(config), "--run.name", "opt", "--optimizer", "AdamW"]) == 2
    assert "unrecognized arguments: --optimizer AdamW" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--optimizer"):
        parse_command(["fit", "--config", str(config), "--optimizer", "AdamW"])


@pytest.mark.parametrize(
    ("regime", "override", "says"),
    [
        (
            "MixedDataModule",
            ["--data.init_args.speech_subset.proportion", "1.5"],
            "1.5 does not conform to restriction v>=0 and v<=1",
        ),
        (
            "CurriculumDataModule",
            ["--trainer.max_epochs", "9"],
            "phases last 2 epochs but trainer.max_epochs is 9",
        ),
        (
            "MixedDataModule",
            ["--data.init_args.eval_locales", "[xx-XX]"],
            "eval_locales: the dev speech split has no example of ['xx-XX']",
        ),
    ],
)
def test_a_value_that_cannot_work_gets_one_line_not_a_traceback(
    toy_corpus, tmp_path, capsys, regime, override, says
):
    config = write_config(tmp_path, toy_corpus, regime)
    (tmp_path / "logs" / "kept").mkdir(parents=True)
    events = tmp_path / "logs" / "kept" / "events.out.tfevents.earlier"
    events.write_bytes(b"an earlier run's")
    assert exit_code(["fit", "--config", str(config), *override]) == 2
    error = capsys.readouterr().err
    assert says in error and "Traceback" not in error
    assert not (tmp_path / "logs" / "toy").exists()  # a refused fresh run leaves no empty run behind
    assert exit_code(["fit", "--config", str(config), "--run.name", "kept", *override]) == 2
    assert [path.name for path in events.parent.iterdir()] == [events.name]


def test_a_missing_backbone_gets_one_clear_message(trained, capsys):
    config, _ = trained
    assert (
        exit_code(
            ["fit", "--config", str(config), "--run.name", "x", "--model.init_args.backbone", "/no/such/dir"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "neither a tiny preset" in err and "Traceback" not in err


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: str(path.relative_to(path.parents[1])))
def test_every_shipped_config_parses_against_the_code(config, capsys):
    """Fragments are composed after a full config, as their comments say."""
    bases = {
        "trainer": "paper/slurp_curriculum.yaml",
        "backbones": "demo/text_only.yaml",
        "phases": "demo/curriculum.yaml",
        "noise": "demo/text_only.yaml",
        "cascade": "demo/cascade.yaml",
    }
    base = bases.get(config.parent.name)
    args = (["--config", str(config.parents[1] / base)] if base else []) + ["--config", str(config)]
    assert exit_code(["fit", *args, "--print_config"]) == 0
    assert "class_path" in capsys.readouterr().out


def test_predict_on_a_folder_of_audio_in_any_rate_prints_one_json_line_per_file(trained, tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    config, run = trained
    folder = tmp_path / "clips"
    folder.mkdir()
    sf.write(folder / "a.wav", np.zeros(8000, dtype=np.float32), 8000)
    sf.write(
        folder / "b.flac",
        np.random.default_rng(0).standard_normal((44100, 2)).astype(np.float32) * 0.1,
        44100,
    )
    capsys.readouterr()
    main(
        [
            "predict",
            "--config",
            str(config),
            "--data.init_args.predict_audio",
            str(folder),
            "--ckpt_path",
            str(run / "checkpoints" / "last.ckpt"),
            "--trainer.enable_progress_bar",
            "true",  # off when stdout is not a terminal: its bar would end the JSON lines
        ]
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["file"] for row in lines] == ["a.wav", "b.flac"]  # SLURP's scorer keys by name
    assert all({"scenario", "action", "entities", "status"} <= set(row) for row in lines)
    assert all(row["modality"] == "speech" for row in lines)  # score leaves unheard rows out by it
    assert len((run / "predictions_predict.jsonl").read_text().splitlines()) == 2


def test_predict_names_each_listed_file_once_and_refuses_when_every_input_was_skipped(
    trained, tmp_path, capsys, caplog
):
    import numpy as np
    import soundfile as sf

    config, run = trained
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / "same.wav", np.zeros(4000, dtype=np.float32), 16000)
    sf.write(tmp_path / "one" / "other.wav", np.zeros(4000, dtype=np.float32), 16000)
    listed = tmp_path / "list.txt"
    listed.write_text("one/same.wav\n./one/same.wav\ntwo/same.wav\none/other.wav\n")
    predict = ["predict", "--config", str(config), "--ckpt_path", "last", "--data.init_args.predict_audio"]
    capsys.readouterr()
    with caplog.at_level("WARNING"):
        main([*predict, str(listed)])
    files = [json.loads(line)["file"] for line in capsys.readouterr().out.splitlines()]
    assert files == sorted(
        ["other.wav", str(tmp_path / "one" / "same.wav"), str(tmp_path / "two" / "same.wav")]
    )
    assert "lines repeating a file named before: 1 (each" in caplog.text
    assert "file names that occur more than once: 1 (same.wav" in caplog.text
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "empty.wav").write_bytes(b"")
    before = {path.name: path.read_bytes() for path in run.iterdir() if path.is_file()}
    assert exit_code([*predict, str(tmp_path / "bad"), "--data.init_args.bad_input", "skip"]) == 2
    assert "nothing to predict: every input was skipped (skipped 1 record" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in run.iterdir() if path.is_file()} == before


def test_predict_without_audio_fails_clearly(trained, capsys):
    config, _ = trained
    assert exit_code(["predict", "--config", str(config), "--ckpt_path", "last"]) == 2
    assert "predict_audio" in capsys.readouterr().err


def test_predict_on_a_file_that_is_not_utf8_text_fails_in_one_line_leaving_nothing(trained, tmp_path, capsys):
    """A list of audio paths saved as Latin-1 (or audio of a format predict does not take, read as one)."""
    config, run = trained
    listed = tmp_path / "list.txt"
    listed.write_bytes("caf\u00e9.wav\n".encode("latin-1"))
    before = {path.name: path.read_bytes() for path in run.iterdir() if path.is_file()}
    predict = ["predict", "--config", str(config), "--ckpt_path", "last", "--data.init_args.predict_audio"]
    assert exit_code([*predict, str(listed)]) == 2
    assert f"error: file {listed}: not UTF-8 text (byte 0xe9 on line 1)" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in run.iterdir() if path.is_file()} == before


def test_exported_adapter_and_merged_model_generate_like_the_toolkit(trained, tmp_path):
    from peft import PeftModel
    from transformers import GenerationConfig

    from slu_lightning.data.collate import SLUCollator, SLUItem
    from slu_lightning.data.records import SLUExample
    from slu_lightning.export import load_for_export
    from slu_lightning.model.backbone import load_model

    _, run = trained
    ckpt, out = run / "checkpoints" / "last.ckpt", tmp_path / "export"
    main(["export", "--ckpt", str(ckpt), "--out", str(out), "--merged"])
    module = load_for_export(ckpt).eval()
    text = "set alarm seven"
    batch = SLUCollator(module.tokenizer, module.prompt, with_labels=False, with_prompts=True)(
        [SLUItem(SLUExample("x", "en-US", text, "alarm", "set", ()))]
    )
    ours = module.generate_texts(batch)  # what test and predict decode, with the run's settings
    prompt = module.tokenizer(module.prompt.render_prompt(text), return_tensors="pt")
    decoding = GenerationConfig.from_pretrained(out / "adapter")  # the run's beam width and length
    plain = PeftModel.from_pretrained(load_model(module.backbone_path), out / "adapter").eval()
    merged = load_model(out / "merged").eval()  # reads its own generation_config.json
    for model, kwargs in ((plain, {"generation_config": decoding}), (merged, {})):
        answer = model.generate(**prompt, **kwargs)[:, prompt["input_ids"].shape[1] :]
        assert module.tokenizer.batch_decode(answer, skip_special_tokens=True) == ours
    record = json.loads((out / "merged" / "export.json").read_text())
    assert (
        record["prompt"]["instruction"] == module.prompt.instruction
        and record["generation"]["max_new_tokens"] == 8
    )
    assert record["precision"] == "32-true" and record["prompt"]["labels"] == ""  # no {labels} slot
    assert (out / "adapter" / "tokenizer_config.json").is_file()


def test_export_replaces_only_its_own_folders_and_names_a_bad_checkpoint(trained, tmp_path, capsys):
    ckpt, out = trained[1] / "checkpoints" / "last.ckpt", tmp_path / "export"
    main(["export", "--ckpt", str(ckpt), "--out", str(out)])
    main(["export", "--ckpt", str(ckpt), "--out", str(out)])  # an export's own folder is replaced
    mine = tmp_path / "mine"
    (mine / "adapter").mkdir(parents=True)
    (mine / "adapter" / "thesis.txt").write_text("precious")
    assert exit_code(["export", "--ckpt", str(ckpt), "--out", str(mine)]) == 2
    assert "no earlier export wrote it" in capsys.readouterr().err
    assert (mine / "adapter" / "thesis.txt").read_text() == "precious"
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    torch.save({"a": 1}, tmp_path / "other.ckpt")
    for bad, says in (
        (tmp_path / "missing.ckpt", "no such checkpoint file; the folder holds notes.ckpt, other.ckpt"),
        (tmp_path / "notes.ckpt", "not a readable checkpoint"),
        (tmp_path / "other.ckpt", "not a checkpoint of `slu-lightning fit`"),
    ):
        assert exit_code(["export", "--ckpt", str(bad), "--out", str(tmp_path / "x")]) == 2
        assert f"error: {bad}: {says}" in capsys.readouterr().err


def test_an_export_names_the_folders_beside_it_that_another_checkpoint_wrote(trained, tmp_path, caplog):
    _, run = trained
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    main(["export", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--out", str(tmp_path), "--merged"])
    with caplog.at_level("WARNING", logger="slu_lightning.export"):
        main(["export", "--ckpt", str(best), "--out", str(tmp_path)])
    assert (
        f"{tmp_path / 'merged'} is an earlier export of {(run / 'checkpoints' / 'last.ckpt').resolve()}"
        in caplog.text
    )
    assert "adapter" not in caplog.text  # replaced by this export


def test_export_keeps_the_runs_audio_compression_and_warns_that_plain_transformers_will_not(
    trained, tmp_path, caplog
):
    from slu_lightning.export import export_checkpoint, load_for_export

    checkpoint = torch.load(trained[1] / "checkpoints" / "last.ckpt", weights_only=True)
    assert load_for_export(trained[1] / "checkpoints" / "last.ckpt").audio_compression == "none"
    checkpoint["hyper_parameters"]["audio_compression"] = "ctc_posterior"
    torch.save(checkpoint, tmp_path / "compressed.ckpt")
    assert load_for_export(tmp_path / "compressed.ckpt").audio_compression == "ctc_posterior"
    with caplog.at_level("WARNING", logger="slu_lightning.export"):
        export_checkpoint(tmp_path / "compressed.ckpt", tmp_path / "export")
    assert "plain transformers run on the export reads uncompressed audio" in caplog.text


def test_score_reproduces_the_metrics_of_test_from_its_predictions_file(trained, capsys):
    config, run = trained
    main(["test", "--config", str(config), "--ckpt_path", str(run / "checkpoints" / "last.ckpt")])
    capsys.readouterr()
    main(
        [
            "score",
            "--gold",
            str(run / "predictions_test.jsonl"),
            "--pred",
            str(run / "predictions_test.jsonl"),
            "--gold-format",
            "predictions",
            "--modality",
            "speech",
            "--json",
        ]
    )
    scored = json.loads(capsys.readouterr().out)
    logged = json.loads((run / "metrics_test.json").read_text())["speech"]
    for name in ("intent_acc", "entity_f1", "slu_f1", "invalid_rate"):
        assert scored["metrics"][name] == pytest.approx(logged[name], abs=1e-9), name
    for name in ("action_acc", "intent_acc", "entity_f1", "slu_f1"):  # the same bootstrap draws
        assert scored["ci95"][name] == [logged[f"{name}_ci_low"], logged[f"{name}_ci_high"]], name


def test_tensorboard_shows_what_the_curriculum_and_the_model_did(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run = trained
    tags = set()
    for events in run.glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    expected = {
        "train/loss",
        "train/loss_text",
        "train/loss_speech",
        "curriculum/speech_fraction",
        "curriculum/speech_examples_seen",
        "curriculum/speech_hours_seen",
        "curriculum/phase",
        "throughput/examples_per_second",
        "val/loss",
        "val/loss_speech",
    }
    assert expected <= tags, expected - tags
    assert any(tag.startswith("lr-") for tag in tags)


def test_an_evaluation_is_logged_at_the_training_step_of_the_weights_it_evaluated(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config, run = trained
    last = run / "checkpoints" / "last.ckpt"
    step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    command = ["--config", str(config), "--ckpt_path", str(last), "--run.name"]
    main(["test", *command, "eval-steps"])
    main(["validate", *command, "eval-steps"])
    steps = {}
    for events in (run.parent / "eval-steps").glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            steps.setdefault(tag, []).extend(event.step for event in accumulator.Scalars(tag))
    assert step > 0  # not the step Lightning would log at
    assert steps["test/speech/intent_acc"] == [step] and steps["val/loss"] == [step]


def test_checkpoints_are_written_atomically_beside_their_target(tmp_path):
    from slu_lightning.checkpoint_io import AtomicCheckpointIO

    path = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(3)}, path)
    assert torch.load(path, weights_only=True)["step"] == 3
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_a_runs_saved_config_keeps_ckpt_path_as_given_so_it_never_resumes_another_run(trained, caplog):
    config, run = trained
    trained_with = (run / "config.yaml").read_text()
    with caplog.at_level("INFO", logger="slu_lightning"):
        main(["fit", "--config", str(config), "--ckpt_path", "auto"])  # finished: resumes and stops
    assert f"resuming from {run / 'checkpoints' / 'last.ckpt'}" in caplog.text
    assert (run / "config.yaml").read_text() == trained_with  # it trained nothing
    fit = ["fit", "--config", str(config), "--run.name", "resumed-auto", "--trainer.max_steps"]
    main([*fit, "2"])
    main([*fit, "3", "--ckpt_path", "auto"])
    resumed = run.parent / "resumed-auto"
    assert yaml.safe_load((resumed / "config.yaml").read_text())["ckpt_path"] == "auto"
    with caplog.at_level("INFO", logger="slu_lightning"):
        main(["test", "--config", str(resumed / "config.yaml")])  # auto: the run's last.ckpt
    assert f"test: the weights of {resumed / 'checkpoints' / 'last.ckpt'}" in caplog.text


def test_a_refused_resume_leaves_the_config_that_trained_the_checkpoint(trained, capsys):
    """The model refuses a checkpoint of another fine-tuning mode once it is restored, after setup:
    a config saved at setup held the refused settings, and testing the run by it was refused."""
    config, run = trained
    fit = ["fit", "--config", str(config), "--run.name", "refused", "--trainer.max_steps"]
    main([*fit, "2"])
    saved = run.parent / "refused" / "config.yaml"
    trained_with = saved.read_text()
    assert exit_code([*fit, "3", "--ckpt_path", "last", "--model.init_args.finetuning", "full"]) == 2
    assert "finetuning='lora'" in capsys.readouterr().err
    assert saved.read_text() == trained_with
    main(["test", "--config", str(saved), "--ckpt_path", "last"])


def test_a_runs_saved_config_runs_it_again_with_atomic_checkpoints(trained):
    """config.yaml names the checkpoint plugin by class path, so it parses back (it once held the
    plugin's repr, which no later command could read)."""
    _, run = trained
    assert "class_path: slu_lightning.checkpoint_io.AtomicCheckpointIO" in (run / "config.yaml").read_text()
    again = ["--config", str(run / "config.yaml"), "--run.name", "toy-again"]
    main(["test", *again, "--ckpt_path", str(run / "checkpoints" / "last.ckpt")])
    assert json.loads((run.parent / "toy-again" / "metrics_test.json").read_text())
    assert {p.name for p in (run.parent / "toy-again").glob("config*.yaml")} == {"config_test.yaml"}


def test_validate_decodes_writes_its_predictions_and_says_its_loss_and_headline(trained, caplog):
    config, run = trained
    command = ["validate", "--config", str(config), "--run.name", "val-run", "--ckpt_path"]
    with caplog.at_level("INFO", logger="slu_lightning.model.module"):
        main(
            [
                *command,
                str(run / "checkpoints" / "last.ckpt"),
                "--model.init_args.generate_during_validation",
                "true",
            ]
        )
    rows = (run.parent / "val-run" / "predictions_val.jsonl").read_text().splitlines()
    assert len(rows) == 8 and {"raw", "reference", "status"} <= set(json.loads(rows[0]))
    assert re.search(r"validate: val/loss \d\.\d{4} \(val/loss_speech \d\.\d{4}", caplog.text)
    assert "validate on speech, 8 examples: intent_acc " in caplog.text


def test_this_runs_config_wins_over_the_checkpoints_settings_and_says_so(trained, caplog):
    config, run = trained
    with caplog.at_level("WARNING", logger="slu_lightning"):
        main(
            [
                "validate",
                "--config",
                str(config),
                "--run.name",
                "other-settings",
                "--ckpt_path",
                str(run / "checkpoints" / "last.ckpt"),
                "--model.init_args.generation.num_beams",
                "2",
            ]
        )
    assert "generation" in caplog.text and "this run's value wins" in caplog.text


def test_the_tts_augmented_demo_trains_on_synthesised_speech_and_no_real_speech(tmp_path):
    """configs/demo/tts_augmented.yaml cut down: the tiny demo corpus and its TTS, tiny-test, 3 steps."""
    config = Path(__file__).parents[1] / "configs" / "demo" / "tts_augmented.yaml"
    phases = [{"name": "text+tts", "epochs": 1, "mix": {"text": {}, "tts": {}}}]
    overrides = {
        "run.root": str(tmp_path),
        "model.init_args.backbone": "tiny-test",
        "data.init_args.corpus.init_args.size": "tiny",
        "data.init_args.tts_corpus.init_args.size": "tiny",
        "data.init_args.phases": json.dumps(phases),
        "data.init_args.max_eval_examples": "8",
        "trainer.max_epochs": "1",
        "trainer.limit_train_batches": "3",
        "trainer.limit_val_batches": "1",
        "trainer.enable_progress_bar": "false",
    }
    main(
        [
            "fit",
            "--config",
            str(config),
            *(arg for key, value in overrides.items() for arg in (f"--{key}", value)),
        ]
    )
    run = tmp_path / "demo-tts-augmented"
    summary = json.loads((run / "training_data.json").read_text())
    assert summary["text_examples"] == summary["tts_examples"] == 6 * 26 and summary["speech_examples"] == 0
    assert not (run / "speech_subset_ids.txt").exists()
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"][
        "CurriculumCallback"
    ]
    assert (
        state["examples_seen"] == 3 * 16
        and state["speech_examples_seen"] == 0
        and state["tts_examples_seen"] > 0
    )


def test_the_cascade_tests_a_text_checkpoint_on_recognised_transcripts(
    trained, toy_corpus, tiny_backbone, tmp_path
):
    """configs/demo/cascade.yaml on the toy run: the recogniser writes the transcripts when the test
    starts, then the text-trained checkpoint is tested on them."""
    config, run = trained
    transcripts = tmp_path / "asr-dev.jsonl"
    base = {
        "class_path": "slu_lightning.data.corpora.ManifestCorpus",
        "init_args": {"train": str(toy_corpus / "train.jsonl"), "dev": str(toy_corpus / "dev.jsonl")},
    }
    corpus = {
        "class_path": "slu_lightning.data.corpora.CascadeCorpus",
        "init_args": {"base": base, "transcripts": str(transcripts), "recogniser": str(tiny_backbone)},
    }
    main(
        [
            "test",
            "--config",
            str(config),
            "--run.name",
            "toy-cascade",
            "--data.init_args.corpus",
            json.dumps(corpus),
        ]
        + ["--data.init_args.eval_modality", "text", "--ckpt_path", str(run / "checkpoints" / "last.ckpt")]
    )
    rows = [
        json.loads(line)
        for line in (run.parent / "toy-cascade" / "predictions_test.jsonl").read_text().splitlines()
    ]
    recognised = {row["id"]: row for row in map(json.loads, transcripts.read_text().splitlines())}
    assert sorted(row["id"] for row in rows) == sorted(recognised)  # every recording, once, as text
    assert all(row["modality"] == "text" for row in rows)
    assert all(row["reference"]["text"] == recognised[row["id"]]["text"] for row in rows)
    assert {row["meta"]["gold_text"] for row in rows} == {
        e["text"] for e in map(json.loads, (toy_corpus / "dev.jsonl").read_text().splitlines())
    }


def test_help_lists_every_command_with_what_it_does(capsys):
    main(["--help"])
    shown = capsys.readouterr().out
    for name, (target, what) in COMMANDS.items():
        assert f"  {name}" in shown and what in shown
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(f"slu_lightning.{module}"), function))


def test_a_mistyped_command_gets_the_nearest_one_and_the_list(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sweeep", "--config", "x.yaml"])
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and "unknown command 'sweeep' (did you mean 'sweep'?)" in error
    assert "compare-transcripts" in error


def test_evaluating_without_a_checkpoint_is_the_zero_shot_baseline_and_never_replaces_a_runs_results(
    tmp_path, caplog
):
    with caplog.at_level("WARNING", logger="slu_lightning"):
        check_untuned("test", tmp_path / "checkpoints")
    assert "test without --ckpt_path: the backbone as loaded" in caplog.text
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(RunError, match="predict without --ckpt_path would score the backbone as loaded"):
        check_untuned("predict", tmp_path / "checkpoints")


class FailingClips(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int):
        raise DataError("audio contains NaN or infinite samples", file="clips/bad.wav", record="r7")


def test_an_error_in_a_loader_worker_is_shown_as_its_own_line_not_the_workers_traceback():
    loader = torch.utils.data.DataLoader(FailingClips(), num_workers=1)
    with pytest.raises(DataError) as caught:
        next(iter(loader))
    assert "Original Traceback" in str(caught.value)  # how torch re-raises it in the main process
    assert (
        user_message(caught.value) == "file clips/bad.wav, record r7: audio contains NaN or infinite samples"
    )
    assert user_message(DataError("empty audio", file="a.wav")) == "file a.wav: empty audio"


def test_ckpt_path_help_describes_how_this_cli_resolves_it(capsys):
    for command, says in (("fit", "auto: resume it if it exists, else"), ("test", "best: its best-*.ckpt")):
        assert exit_code([command, "--help"]) == 0
        assert says in " ".join(capsys.readouterr().out.split())


def test_a_corpus_folder_of_the_users_own_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert exit_code(["make-demo-corpus", "--size", "tiny", "--out", str(tmp_path / "mine")]) == 2
    err = capsys.readouterr().err
    assert f"make-demo-corpus: error: {tmp_path / 'mine'} exists and is not a demo corpus" in err
    assert "Traceback" not in err and (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_runs_config_is_replaced_whole_not_rewritten_in_place(tmp_path):
    """Written in place, a kill mid-write left a truncated config.yaml; a rename leaves the old file
    whole (here: its other hard link keeps the old text) until the new one is complete."""
    from types import SimpleNamespace

    from jsonargparse import ArgumentParser

    from slu_lightning.cli import RunConfigSaver

    parser = ArgumentParser()
    parser.add_argument("--lr", type=float)
    (tmp_path / "config.yaml").write_text("lr: 0.5\n")
    (tmp_path / "held.yaml").hardlink_to(tmp_path / "config.yaml")
    saver = RunConfigSaver(parser, parser.parse_args(["--lr", "0.1"]), overwrite=True)
    trainer = SimpleNamespace(
        log_dir=str(tmp_path), is_global_zero=True, strategy=SimpleNamespace(broadcast=lambda x: x)
    )
    saver.setup(trainer, None, "fit")
    assert (tmp_path / "config.yaml").read_text() == "lr: 0.1\n"
    assert (tmp_path / "held.yaml").read_text() == "lr: 0.5\n"


def test_an_abbreviated_option_is_refused_not_taken_for_the_option_it_begins(trained):
    """argparse took --trainer.max_epoch for --trainer.max_epochs: a typo could change another setting."""
    config, _ = trained
    with pytest.raises(ConfigError, match=re.escape("--trainer.max_epoch")):
        parse_command(["fit", "--config", str(config), "--trainer.max_epoch", "3"])
    assert parse_command(["fit", "--config", str(config), "--trainer.max_epochs", "3"])
