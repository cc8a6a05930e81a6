"""A fit resumed from a checkpoint under other optimizer settings trains on this run's."""

from pathlib import Path

import pytest
import torch

from slu_lightning.cli import main
from slu_lightning.curriculum import CurriculumPhase, build_schedule
from tests.test_cli import exit_code, scalar_events, write_config

PHASES = [CurriculumPhase("text"), CurriculumPhase("text+speech", lr=5e-4, warmup_ratio=0.2)]
"""What the learning rate of tests.test_cli.CURRICULUM follows: a text phase on the model's settings
(lr 1e-3, warm-up 0.04, cosine), then a phase with its own peak and warm-up."""


def fitted(
    tmp_path: Path, corpus: Path, steps: int, regime: str = "CurriculumDataModule"
) -> tuple[list[str], str]:
    """The test CLI's ``regime`` fitted for ``steps`` steps at batch 6: the command, and its checkpoint."""
    config = write_config(tmp_path, corpus, regime)
    fit = ["fit", "--config", str(config)]
    main([*fit, "--run.name", "stopped", "--trainer.max_steps", str(steps)])
    return fit, str(tmp_path / "logs" / "stopped" / "checkpoints" / "last.ckpt")


def logged_lr(run: Path) -> dict[int, float]:
    """The learning rate a run's TensorBoard events hold, by step."""
    return {event.step: event.value for event in scalar_events(run, "lr-AdamW")}


def test_a_resume_trains_on_this_runs_learning_rate_and_weight_decay(toy_corpus, tmp_path):
    """The checkpoint's param groups and scheduler base rate were restored over this run's: the new lr
    and weight decay were ignored, and the phase's own peak (5e-4) came out at 5e-5."""
    fit, checkpoint = fitted(tmp_path, toy_corpus, steps=2)
    new = ["--model.init_args.optimizer.lr", "0.01", "--model.init_args.optimizer.weight_decay", "0.5"]
    main([*fit, "--run.name", "resumed", "--ckpt_path", checkpoint, *new])
    run = tmp_path / "logs" / "resumed"
    schedule = build_schedule(PHASES, [4, 5], base_lr=0.01, base_warmup=0.04, base_schedule="cosine")
    lrs = logged_lr(run)
    assert lrs == pytest.approx({step: 0.01 * schedule(step) for step in range(2, 9)})
    assert max(lrs[step] for step in range(4, 9)) == pytest.approx(5e-4)  # the speech phase's peak
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    group = saved["optimizer_states"][0]["param_groups"][0]
    assert (group["initial_lr"], group["weight_decay"]) == (0.01, 0.5)
    assert saved["lr_schedulers"][0]["base_lrs"] == [0.01]


def test_a_resume_at_an_epochs_end_under_another_batch_size_starts_the_next_phase_with_its_data(
    toy_corpus, tmp_path
):
    """The text epoch took 4 steps at batch 6. Resumed at batch 3, the schedule counted it as 8 steps:
    the speech phase, 10 steps from step 4, began its warm-up at step 8 and was cut off at step 13."""
    fit, checkpoint = fitted(tmp_path, toy_corpus, steps=4)
    main([*fit, "--run.name", "resumed", "--ckpt_path", checkpoint, "--data.init_args.batch_size", "3"])
    run = tmp_path / "logs" / "resumed"
    schedule = build_schedule(PHASES, [4, 10], base_lr=1e-3, base_warmup=0.04, base_schedule="cosine")
    assert logged_lr(run) == pytest.approx({step: 1e-3 * schedule(step) for step in range(4, 14)})
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch_start_steps"] == [0, 4]


def test_a_resume_that_would_train_other_weights_is_refused_naming_the_switch(toy_corpus, tmp_path, capsys):
    """It failed on the optimizer's param groups ("doesn't match the size of optimizer's group") after
    logging that this run's value wins."""
    fit, checkpoint = fitted(tmp_path, toy_corpus, steps=2, regime="TextOnlyDataModule")
    projector = ["--model.init_args.train_projector", "true"]
    assert exit_code([*fit, "--run.name", "resumed", "--ckpt_path", checkpoint, *projector]) == 2
    said = capsys.readouterr().err
    assert "checkpoint was trained with train_projector=False but this run has train_projector=True" in said
    assert "this run's value wins" not in said
