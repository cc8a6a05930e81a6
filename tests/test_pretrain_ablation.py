"""The pretraining ablation's arms: each is tiny-heard's last stage with one piece switched off."""

import argparse
import json
from dataclasses import asdict

from benchmarks.pretrain_ablation import ARMS, recipe
from slu_lightning.model.backbone import resolve_backbone
from slu_lightning.pretrain.recipe import ADDED_LATER, PretrainSettings, parse_command


def flat(settings: PretrainSettings | dict) -> dict:
    values = asdict(settings) if isinstance(settings, PretrainSettings) else dict(settings)
    weights = values.pop("weights")
    return {**values, **{f"weights.{name}": weight for name, weight in weights.items()}}


def test_the_control_arm_restarts_the_stage_that_made_tiny_heard():
    control, _ = parse_command(recipe(argparse.Namespace(steps=150, lr=5e-4, eval_clips=120)))
    card = json.loads((resolve_backbone("tiny-heard") / "pretraining.json").read_text())["settings"]
    restarted = {"backbone": "tiny-heard", "steps": 150, "warmup_steps": 10}
    # settings added to the recipe after tiny-heard was made were off when it was made
    assert flat(control) == {**ADDED_LATER, **flat(card), **restarted}


def test_each_arm_switches_off_exactly_its_piece():
    args = argparse.Namespace(steps=150, lr=5e-4, eval_clips=120)
    control = flat(parse_command(recipe(args))[0])
    switched = {
        "all": {},
        "no-distill": {"weights.distill": 0.0},
        "no-align": {"weights.align": 0.0},
        "no-read": {"weights.read": 0.0},
        "transcribe-only": {"audio_tasks": "transcribe"},
    }
    assert list(ARMS) == list(switched)
    for arm, flags in ARMS.items():
        settings = flat(parse_command(recipe(args) + flags)[0])
        assert {key: value for key, value in settings.items() if control[key] != value} == switched[arm], arm
