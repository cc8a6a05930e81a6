"""A curriculum phase that freezes a part leaves its weights as they were: in one process by
``requires_grad``, under DDP by dropping the part's gradients (the two-process fits are in
tests/test_distributed.py)."""

import lightning as L
import pytest
import torch
from lightning.pytorch.trainer.states import TrainerFn

from slu_lightning.cli import main
from slu_lightning.data.errors import ConfigError
from slu_lightning.model.module import SLUModule
from tests.model.part_weights import assert_frozen_then_trained, freezing_config


def test_a_phase_that_freezes_the_audio_side_leaves_its_weights_as_they_were(toy_corpus, tmp_path):
    config = freezing_config(tmp_path, toy_corpus, audio_side_by_default=True)
    main(["fit", "--config", str(config)])
    assert_frozen_then_trained(torch.load(tmp_path / "rank0.pt", weights_only=True))


def on_a_ddp_fit(module: SLUModule) -> SLUModule:
    """``module`` attached to a two-process DDP fit as each rank sets it up (nothing launched)."""
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)
    trainer.state.fn = TrainerFn.FITTING
    module.trainer = trainer
    return module


def test_under_ddp_a_part_a_phase_freezes_keeps_requiring_gradients_and_is_held_back():
    """DDP synchronises the parameters that require gradients when it wraps the model, before any phase."""
    module = SLUModule(backbone="tiny-test", train_projector=True, always_run_audio_encoder=True)
    on_a_ddp_fit(module).configure_model()
    assert module.held_back == []
    module.set_trainable(projector=False)
    projector = module.candidates["projector"]
    assert all(p.requires_grad for p in projector) and module.held_back == projector


def test_a_ddp_fit_that_trains_the_audio_side_runs_the_dummy_clip():
    module = on_a_ddp_fit(SLUModule(backbone="tiny-test", train_projector=True))
    with pytest.raises(ConfigError, match=r"\(projector\).*always_run_audio_encoder"):
        module.configure_model()
