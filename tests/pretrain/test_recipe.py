import json
import shutil

import pytest
import torch

from slu_lightning.cli import main as cli
from slu_lightning.model.backbone import load_model, load_processor
from slu_lightning.pretrain.module import LossWeights
from slu_lightning.pretrain.recipe import (
    ADDED_LATER,
    EVAL_CLIPS,
    PretrainSettings,
    _check_run_dir,
    add_wall_time,
    backbone_lineage,
    build_parser,
    command_line,
    machine_name,
    model_card,
    parse_command,
    stage_plan,
)

SMALL = [  # fmt: skip
    "--backbone",
    "tiny-test",
    "--corpus-size",
    "tiny",
    "--batch-size",
    "8",
    "--warmup-steps",
    "2",
    "--hear-steps",
    "2",
]


def last_checkpoint(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def last_step(run_dir) -> int:
    return last_checkpoint(run_dir)["global_step"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 6-step pretraining run stopped by its time budget after its first step, then resumed
    (profiled)."""
    root = tmp_path_factory.mktemp("pretrain")
    args = [*SMALL, "--steps", "6", "--run-dir", str(root / "run"), "--val-every", "3", "--eval-clips", "4"]
    cli(["pretrain-tiny", *args, "--out", str(root / "six"), "--max-minutes", "0.00001"])
    stopped, exported_early = last_checkpoint(root / "run"), (root / "six").exists()
    cli(["pretrain-tiny", *args, "--out", str(root / "six"), "--profile"])
    return root, args, stopped, exported_early


def test_pretraining_writes_a_backbone_that_loads_like_any_other(run):
    root, *_ = run
    backbone = root / "six"
    model, processor = load_model(backbone), load_processor(backbone)
    assert model.dtype == torch.float32  # stored in float16, upcast on load
    assert processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>") == model.config.audio_token_id
    record = json.loads((backbone / "pretraining.json").read_text())
    assert record["steps_done"] == 6 and record["settings"]["steps"] == 6
    assert set(record["error_rates"]) == {"heldout", "slu-phrased", "unheard-voices"}
    for rates in record["error_rates"].values():
        assert set(rates) == {"ctc", "decoder", "by_locale"}
        assert all(0 <= rates[readout][unit] for readout in ("ctc", "decoder") for unit in ("wer", "cer"))
        assert sum(locale["clips"] for locale in rates["by_locale"].values()) == 4  # --eval-clips
    card = (backbone / "README.md").read_text()
    assert command_line(record["settings"]) in card and "slu-lightning pretrain-tiny" in card
    locales = {locale for rates in record["error_rates"].values() for locale in rates["by_locale"]}
    assert "By locale:" in card and all(f"| {locale} | " in card for locale in locales)
    assert "- unheard-voices: the heldout sentences, each spoken by an eSpeak variant outside" in card


def test_the_card_measures_the_weights_it_ships(run, tmp_path, monkeypatch):
    """The card's error rates come from the float16 weights the folder holds (upcast as any loader
    does), not from the float32 ones they were rounded from."""
    from slu_lightning.pretrain import recipe

    root, args, *_ = run
    measure, measured = recipe.error_rates_by_set, {}

    def recording(module, *rest):
        measured.update({name: tensor.clone() for name, tensor in module.model.state_dict().items()})
        return measure(module, *rest)

    monkeypatch.setattr(recipe, "error_rates_by_set", recording)
    cli(["pretrain-tiny", *args, "--out", str(tmp_path / "again")])
    shipped = load_model(tmp_path / "again").state_dict()
    assert measured.keys() == shipped.keys()
    assert all(torch.equal(measured[name], shipped[name].to(measured[name].dtype)) for name in shipped)


def test_rerunning_a_finished_run_leaves_its_export_as_it_is(run, tmp_path, caplog):
    root, args, *_ = run
    out = shutil.copytree(root / "six", tmp_path / "six", copy_function=shutil.copy2)
    written = (out / "pretraining.json").stat().st_mtime_ns
    with caplog.at_level("INFO", logger="slu_lightning.pretrain.recipe"):
        cli(["pretrain-tiny", *args, "--out", str(out)])
    assert (out / "pretraining.json").stat().st_mtime_ns == written
    assert "already holds this run's export (all 6 steps" in caplog.text
    more_clips = [*args[:-1], "5"]  # --eval-clips 5: measured again, and written
    cli(["pretrain-tiny", *more_clips, "--out", str(out)])
    assert json.loads((out / "pretraining.json").read_text())["eval_clips"] == 5


def test_a_stage_from_an_earlier_stage_exported_again_is_neither_resumed_nor_taken_as_done(
    run, tmp_path, tiny_backbone, caplog, capsys
):
    """The run folder and the export record the weights of --backbone's folder, not just its path:
    once an earlier stage is exported again there with other weights, the next stage's rerun is
    refused (its checkpoint continues the old ones), and records without them are taken on trust."""
    root, *_ = run
    stage1 = shutil.copytree(root / "six", tmp_path / "stage1")
    args = ["--backbone", str(stage1), *SMALL[2:], "--steps", "2", "--eval-clips", "4"]
    args += ["--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "stage2")]
    cli(["pretrain-tiny", *args])
    record_file, settings_file = tmp_path / "stage2" / "pretraining.json", tmp_path / "run" / "settings.json"
    written = record_file.stat().st_mtime_ns
    shutil.copy(tiny_backbone / "model.safetensors", stage1 / "model.safetensors")  # other weights
    with caplog.at_level("INFO", logger="slu_lightning.pretrain.recipe"), pytest.raises(SystemExit):
        cli(["pretrain-tiny", *args])
    err = " ".join(capsys.readouterr().err.split())
    assert f"was started from other weights of --backbone {stage1}" in err and "new --run-dir" in err
    assert "already holds" not in caplog.text and record_file.stat().st_mtime_ns == written
    made_from = json.loads(record_file.read_text())["backbone_weights"]
    assert json.loads(settings_file.read_text())["backbone_weights"] == made_from
    for old in (record_file, settings_file):  # as written before the weights were recorded
        old.write_text(
            json.dumps({k: v for k, v in json.loads(old.read_text()).items() if k != "backbone_weights"})
        )
    caplog.clear()
    with caplog.at_level("INFO", logger="slu_lightning.pretrain.recipe"):
        cli(["pretrain-tiny", *args])
    assert "records no fingerprint" in caplog.text and "already holds this run's export" in caplog.text


def test_a_profiled_run_says_where_its_training_steps_spent_their_time(run):
    root, *_ = run
    profile = (root / "run" / "fit-profile.txt").read_text()
    for part in ("train_dataloader_next", "training_step", "backward", "optimizer_step", "validation_step"):
        assert part in profile, part
    settings = json.loads((root / "six" / "pretraining.json").read_text())["settings"]
    assert "--profile" not in command_line(settings)  # a run option, not how the weights were made


def test_a_backbone_pretrained_in_stages_names_every_command_that_made_it(run):
    root, *_ = run
    first = json.loads((root / "six" / "pretraining.json").read_text())
    assert first["lineage"] == []  # started from a preset
    lineage = backbone_lineage(str(root / "six"))
    assert lineage == [
        {
            "backbone": str(root / "six"),
            "command": command_line(first["settings"]),
            "steps_done": 6,
            "steps_planned": 6,
        }
    ]
    second = {**first, "settings": {**first["settings"], "backbone": str(root / "six")}}
    earlier, this = model_card({**second, "lineage": lineage}).split("then:")
    assert f"{command_line(first['settings'])} --run-dir logs/pretrain-stage1 --out {root / 'six'}" in earlier
    assert "ran all 6 steps, then exported" in earlier and "stopped" not in earlier
    assert f"--backbone {root / 'six'}" in this
    stopped = [{**lineage[0], "steps_done": 4}]
    earlier, _ = model_card({**second, "lineage": stopped}).split("then:")
    assert "stopped at step 4 and exported (--export-unfinished)" in earlier


def test_the_commands_on_a_staged_card_run_in_turn_and_stop_where_each_stage_stopped():
    """Each earlier stage runs in a run folder of its own (in the default one, the second stage was
    refused as the first under other settings), and one that stopped early stops at that step."""
    first, second = PretrainSettings(steps=6000), PretrainSettings(backbone="stage-1", hear_steps=0)
    lineage = [
        {
            "backbone": "stage-1",
            "command": command_line(first.to_json()),
            "steps_done": 2791,
            "steps_planned": 6000,
        },
        {
            "backbone": "stage-2",
            "command": command_line(second.to_json()),
            "steps_done": 10,
            "steps_planned": 10,
        },
    ]
    card = model_card({**card_record(PretrainSettings(backbone="stage-2")), "lineage": lineage})
    lines = [
        line.strip() for line in card.splitlines() if line.strip().startswith("slu-lightning pretrain-tiny")
    ]
    parsed = [parse_command(line.split()[2:]) for line in lines]
    assert [settings for settings, _ in parsed] == [first, second, PretrainSettings(backbone="stage-2")]
    run_dirs = [options.run_dir for _, options in parsed]
    assert len(set(run_dirs)) == 3  # the last in the default folder
    assert [(options.stop_at_step, options.export_unfinished) for _, options in parsed] == [
        (2791, True),
        (None, False),
        (None, False),
    ]


def test_the_exported_weights_are_the_trained_ones(run, tiny_backbone):
    root, *_ = run
    checkpoint = torch.load(root / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    trained = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()}
    exported, initial = load_model(root / "six").state_dict(), load_model(tiny_backbone).state_dict()
    for name in ("model.audio_tower.layers.0.fc1.weight", "model.multi_modal_projector.linear.weight"):
        assert torch.equal(exported[name], trained[name].half().float())
        assert not torch.allclose(exported[name], initial[name], atol=1e-4)  # trained, not the random init


def test_a_stopped_run_resumes_where_it_stopped(run):
    root, _, stopped, exported_early = run
    assert stopped["global_step"] == 1 and not exported_early  # the time budget ran out after step 1
    # saved mid-epoch: the resumed call goes on with batch 2 of the tiny corpus's 15 (a checkpoint
    # written after fit returned marked epoch 0 as done, and the resumed call started epoch 1)
    assert (
        stopped["epoch"] == 0 and stopped["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 0
    )
    assert last_step(root / "run") == 6
    wall = json.loads((root / "run" / "wall_time.json").read_text())
    assert wall["seconds"] > 0 and list(wall["by_hardware"]) == [machine_name()]  # both calls, one machine
    assert sum(wall["by_hardware"].values()) == pytest.approx(wall["seconds"])


def test_a_run_folder_refuses_other_settings(run, capsys):
    root, args, *_ = run
    with pytest.raises(SystemExit):
        cli(["pretrain-tiny", *args, "--lr", "0.01"])
    assert "other settings (lr differ)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["pretrain-tiny", *args, "--fresh-llm"])
    assert "other settings (fresh_llm differ)" in capsys.readouterr().err


def test_folders_it_did_not_write_are_refused_before_any_training(run, tmp_path, capsys):
    root, args, *_ = run
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    other = [*SMALL, "--steps", "6", "--eval-clips", "4"]
    for command, says in (
        ([*args, "--out", str(mine)], "no earlier pretrain-tiny export wrote it"),
        ([*other, "--run-dir", str(mine)], "holds files but no pretrain-tiny run"),
    ):
        with pytest.raises(SystemExit):
            cli(["pretrain-tiny", *command])
        assert says in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    cli(["pretrain-tiny", *args, "--out", str(root / "six")])  # its own export is replaced


def test_impossible_settings_are_refused_together_before_anything_is_written(tmp_path, capsys):
    run_dir = tmp_path / "run"
    bad = ["--batch-size", "0", "--read-steps", "1", "--ctc-weight", "0", "--grow-encoder", "-1"]
    bad += ["--audio-tasks", "transcribe,summarise", "--val-every", "0", "--run-dir", str(run_dir)]
    with pytest.raises(SystemExit):
        cli(["pretrain-tiny", "--backbone", "tiny-test", "--corpus-size", "tiny", *bad])
    err = " ".join(capsys.readouterr().err.split())
    for says in (
        "--batch-size 0 is below 1",
        "--read-steps trains the text losses alone: it needs --read-weight above 0",
        "--hear-steps trains the CTC loss alone: it needs --ctc-weight above 0",
        "--grow-encoder -1 is below 0",
        "--audio-tasks: unknown 'summarise'",
        "--val-every 0 is below 1",
    ):
        assert says in err, says
    assert not run_dir.exists()  # so the corrected command starts there
    with pytest.raises(SystemExit):
        cli(["pretrain-tiny", "--backbone", "tiny-tset", "--corpus-size", "tiny", "--run-dir", str(run_dir)])
    assert "--backbone: backbone 'tiny-tset' is neither" in capsys.readouterr().err and not run_dir.exists()


def test_a_run_folder_without_a_checkpoint_takes_new_settings(tmp_path):
    """A first call that stopped before its first checkpoint trained nothing that settings could
    contradict: the next command starts afresh under its own."""
    first, fixed = PretrainSettings(backbone="tiny-tset"), PretrainSettings(backbone="tiny-test")
    _check_run_dir(tmp_path, first)
    assert _check_run_dir(tmp_path, fixed) is None
    assert json.loads((tmp_path / "settings.json").read_text()) == fixed.to_json()


def test_settings_not_yet_in_effect_may_change_during_the_hearing_stage(tmp_path, capsys):
    args = [*SMALL[:-2], "--steps", "6", "--run-dir", str(tmp_path / "run"), "--eval-clips", "4"]
    cli(["pretrain-tiny", *args, "--hear-steps", "4", "--max-minutes", "0.00001"])  # stops at step 1
    cli(["pretrain-tiny", *args, "--hear-steps", "3", "--distill-weight", "0", "--max-minutes", "0.00001"])
    saved = json.loads((tmp_path / "run" / "settings.json").read_text())
    assert (
        saved["hear_steps"] == 3 and saved["weights"]["distill"] == 0.0 and last_step(tmp_path / "run") == 2
    )
    for changed in (["--hear-steps", "2"], ["--hear-steps", "3", "--ctc-weight", "1.0"]):
        with pytest.raises(SystemExit):  # step 2 is past a 2-step stage; CTC has acted since step 0
            cli(["pretrain-tiny", *args, "--distill-weight", "0", *changed])
        assert "other settings" in capsys.readouterr().err


def test_a_run_started_before_a_loss_or_stage_existed_resumes_with_them_off(tmp_path):
    run_dir = tmp_path / "run"
    args = [
        *SMALL,
        "--steps",
        "2",
        "--run-dir",
        str(run_dir),
        "--eval-clips",
        "4",
        "--max-minutes",
        "0.00001",
    ]
    cli(["pretrain-tiny", *args])  # stops at step 1
    saved = json.loads((run_dir / "settings.json").read_text())
    del saved["read_steps"], saved["fresh_llm"], saved["weights"]["read"]  # as written before they existed
    (run_dir / "settings.json").write_text(json.dumps(saved))
    cli(["pretrain-tiny", *args])  # the hearing stage (2 steps) is over: any real change is refused
    assert last_step(run_dir) == 2
    with pytest.raises(SystemExit):
        cli(["pretrain-tiny", *args, "--read-weight", "1.0"])


def test_a_run_with_more_voices_and_spec_augment_trains_and_its_card_says_so(tmp_path):
    out, flags = tmp_path / "voiced", ["--extra-voices", "2", "--spec-augment", "--eval-clips", "4"]
    cli(["pretrain-tiny", *SMALL, "--steps", "2", *flags, "--run-dir", str(tmp_path), "--out", str(out)])
    record = json.loads((out / "pretraining.json").read_text())
    assert record["steps_done"] == 2 and record["settings"]["spec_augment"] is True
    card = (out / "README.md").read_text()
    assert "--extra-voices 2" in card and "--spec-augment" in card
    assert "pretrain voices and 2 more eSpeak variants per locale" in card
    corpus = PretrainSettings(corpus_size="tiny", extra_voices=2).corpus_dir()
    assert corpus.name == "asr-tiny-seed0-voices2" and (corpus / "train.jsonl").is_file()


def test_a_grown_ear_resumes_exports_at_its_new_depth_and_its_card_says_so(tmp_path):
    out = tmp_path / "grown"
    args = [*SMALL, "--steps", "2", "--grow-encoder", "1", "--eval-clips", "4", "--run-dir", str(tmp_path)]
    cli(["pretrain-tiny", *args, "--out", str(out), "--max-minutes", "0.00001"])  # stops at step 1
    assert last_step(tmp_path) == 1 and not out.exists()
    cli(["pretrain-tiny", *args, "--out", str(out)])  # the checkpoint holds the grown layer
    assert len(load_model(out).model.audio_tower.layers) == 3  # tiny-test's 2, and 1 grown
    card = (out / "README.md").read_text()
    assert "--grow-encoder 1" in card and "1 encoder layer appended to the backbone's ear" in card
    assert ADDED_LATER["grow_encoder"] == 0


def test_validation_reports_the_ctc_word_and_character_error_rates(run):
    root, *_ = run
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(root / "run" / "tensorboard"))
    events.Reload()
    wer = events.Scalars("val/ctc_wer")
    # every 3 steps, and when the time budget stopped the first call (Lightning counts steps from 0)
    assert [e.step for e in wer] == [0, 2, 5] and all(e.value >= 0 for e in wer)
    cer = events.Scalars("val/ctc_cer")
    assert [e.step for e in cer] == [0, 2, 5] and all(e.value >= 0 for e in cer)
    assert [e.step for e in events.Scalars("val/input_gain")] == [0, 2, 5]
    # logged at step 0 (training: the hearing stage, CTC alone) and at each validation (all losses)
    losses = ("asr", "ctc", "align", "distill", "continuation")
    assert {"train/ctc", *(f"val/{name}" for name in losses)} <= set(events.Tags()["scalars"])


def test_settings_name_the_command_that_reproduces_them():
    settings = PretrainSettings(steps=100, lr=1e-3, weights=LossWeights(distill=0.0))
    assert command_line(settings.to_json()) == (
        "slu-lightning pretrain-tiny --steps 100 --lr 0.001 --distill-weight 0.0"
    )
    reading = PretrainSettings(read_steps=50, weights=LossWeights(read=1.0)).to_json()
    assert command_line(reading) == "slu-lightning pretrain-tiny --read-steps 50 --read-weight 1.0"
    assert (
        stage_plan(reading)
        == ", read and continuation alone for the first 50 steps, CTC alone for the next 8000 steps"
    )
    fresh = PretrainSettings(fresh_llm=True, read_steps=50, hear_steps=0, weights=LossWeights(read=1.0))
    assert command_line(fresh.to_json()) == (
        "slu-lightning pretrain-tiny --hear-steps 0 --read-steps 50 --fresh-llm --read-weight 1.0"
    )
    assert stage_plan(fresh.to_json()) == (
        ", new LLM layers on the backbone's audio side and token embeddings,"
        " read and continuation alone for the first 50 steps"
    )


def card_record(settings: PretrainSettings, wall_time_seconds: float = 10.0) -> dict:
    """A minimal export record of a 10-step run, enough for ``model_card``."""
    return {
        "settings": settings.to_json(),
        "steps_done": 10,
        "error_rates": {},
        "eval_clips": 4,
        "wall_time_seconds": wall_time_seconds,
        "hardware": "CPU (x86_64, 2 threads)",
        "corpus": {"sizes": {"train": 20}, "locales": ["en-US"]},
    }


def test_everyday_words_name_their_corpus_and_appear_on_the_card():
    settings = PretrainSettings(everyday_words=5000)
    assert command_line(settings.to_json()) == "slu-lightning pretrain-tiny --everyday-words 5000"
    assert settings.corpus_dir().name == "asr-large-seed0-everyday5000"
    assert PretrainSettings().corpus_dir().name == "asr-large-seed0"
    record = card_record(settings)
    assert "en-US), random words with each language's 5000 most frequent; pretrain" in model_card(record)
    del record["settings"]["everyday_words"]  # a card written before the option
    assert "most frequent" not in model_card(record)


def test_spec_augment_is_a_flag_of_the_command_and_off_in_runs_made_before_it():
    flags = command_line(PretrainSettings(spec_augment=True).to_json())
    assert flags == "slu-lightning pretrain-tiny --spec-augment"
    assert ADDED_LATER["spec_augment"] is False and PretrainSettings().spec_augment is False


def test_extra_voices_name_their_corpus_and_appear_on_the_card():
    settings = PretrainSettings(everyday_words=5000, extra_voices=48)
    assert command_line(settings.to_json()).endswith("--everyday-words 5000 --extra-voices 48")
    assert settings.corpus_dir().name == "asr-large-seed0-everyday5000-voices48"
    record = card_record(settings)
    assert "most frequent; pretrain voices and 48 more eSpeak variants per locale" in model_card(record)
    del record["settings"]["extra_voices"]  # a card written before the option
    assert "; pretrain voices only" in model_card(record)


def test_wall_time_is_kept_per_machine_and_the_card_names_each(tmp_path):
    (tmp_path / "wall_time.json").write_text('{"seconds": 413.0}')  # a record older than the split
    add_wall_time(tmp_path, 7.0)
    wall = json.loads((tmp_path / "wall_time.json").read_text())
    assert wall == {"seconds": 420.0, "by_hardware": {"unrecorded": 413.0, machine_name(): 7.0}}
    record = card_record(PretrainSettings(), wall_time_seconds=420.0)
    record["wall_time_by_hardware"] = {"NVIDIA H200": 360.0, "CPU (x86_64, 2 threads)": 60.0}
    assert "0.12 h: NVIDIA H200 0.10 h, CPU (x86_64, 2 threads) 0.02 h" in model_card(record)


def test_every_flag_says_what_it_sets_and_its_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(["pretrain-tiny", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--steps STEPS optimizer steps", "--hear-steps HEAR_STEPS steps of the CTC loss"):
        assert flag in text
    assert (
        "--distill-weight DISTILL_WEIGHT weight of the distill loss; 0 switches it off (default: 1.0)" in text
    )


def test_the_machine_is_named_with_its_thread_count_in_words(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert machine_name().endswith(", 1 thread)")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert machine_name().endswith(", 2 threads)")


def test_the_cards_reproduce_line_measures_as_many_clips_as_the_card():
    record = card_record(PretrainSettings(everyday_words=5000))
    assert "    slu-lightning pretrain-tiny --everyday-words 5000 --eval-clips 4\n" in model_card(record)
    record["eval_clips"] = EVAL_CLIPS
    assert "    slu-lightning pretrain-tiny --everyday-words 5000\n" in model_card(record)


def test_the_corpus_size_answers_to_the_name_the_other_commands_give_it():
    assert build_parser().parse_args(["--asr-size", "tiny"]).corpus_size == "tiny"
    assert build_parser().parse_args(["--corpus-size", "small"]).corpus_size == "small"
