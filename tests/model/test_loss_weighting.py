"""Under gradient accumulation every answer token of an optimizer step weighs alike, as in one
large batch: the gradient the optimizer steps with is the step's token mean, not the mean of the
micro-batches' means."""

import lightning as L
import torch

from slu_lightning.curriculum import CurriculumCallback
from slu_lightning.data.corpora import ManifestCorpus
from slu_lightning.data.datamodules import TextOnlyDataModule
from slu_lightning.model.finetuning import LoraSettings
from slu_lightning.model.module import SLUModule


def tiny_module() -> SLUModule:
    """No dropout anywhere (the tiny backbone has none), so a step's gradient can be recomputed."""
    return SLUModule(backbone="tiny-test", lora=LoraSettings(dropout=0.0), generate_during_validation=False)


class StepRecorder(L.Callback):
    """The micro-batches of the first step and the gradients the optimizer stepped with (read after
    the step: Lightning runs the last micro-batch's backward inside ``optimizer.step``)."""

    def __init__(self) -> None:
        self.batches: list[dict] = []
        self.gradients: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer, pl_module) -> None:
        def record(optimizer, args, kwargs) -> None:
            named = pl_module.named_parameters()
            self.gradients = {name: p.grad.clone() for name, p in named if p.grad is not None}

        trainer.optimizers[0].register_step_post_hook(record)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches.append(batch)


def gradients_of(loss_of_batches, batches: list[dict]) -> dict[str, torch.Tensor]:
    """The gradients of a fresh module (the same initial weights) for a loss of the batches' losses."""
    module = tiny_module()
    module.configure_model()
    module.train()
    losses = [module.example_losses(batch) for batch in batches]  # each (sums, counts), (batch,)
    loss_of_batches([(sums.sum(), counts.sum()) for sums, counts in losses]).backward()
    return {name: p.grad for name, p in module.named_parameters() if p.grad is not None}


def test_an_accumulated_step_is_the_token_mean_of_all_its_micro_batches(toy_corpus, tmp_path, caplog):
    module, recorder = tiny_module(), StepRecorder()
    corpus = ManifestCorpus(str(toy_corpus / "train.jsonl"), str(toy_corpus / "dev.jsonl"))
    datamodule = TextOnlyDataModule(corpus, batch_size=2)
    datamodule.connect(module.tokenizer, module.prompt, module.n_mels)
    trainer = L.Trainer(
        max_epochs=1,
        max_steps=1,
        accumulate_grad_batches=2,
        reload_dataloaders_every_n_epochs=1,
        use_distributed_sampler=False,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[CurriculumCallback(), recorder],
        default_root_dir=tmp_path,
    )
    with caplog.at_level("INFO", logger="slu_lightning.data.datamodules"):
        trainer.fit(module, datamodule)
    assert "effective batch 4: batch_size 2 x accumulate_grad_batches 2 x 1 device(s)" in caplog.text
    assert len(recorder.batches) == 2
    tokens = [int((batch["labels"] != -100).sum()) for batch in recorder.batches]
    assert tokens[0] != tokens[1]  # otherwise both weightings agree and the test could not fail

    token_mean = gradients_of(
        lambda parts: sum(t for t, _ in parts) / sum(n for _, n in parts), recorder.batches
    )
    mean_of_means = gradients_of(lambda parts: sum(t / n for t, n in parts) / len(parts), recorder.batches)
    assert recorder.gradients.keys() == token_mean.keys() and len(token_mean) > 0
    for name, gradient in recorder.gradients.items():
        torch.testing.assert_close(gradient, token_mean[name], rtol=1e-4, atol=1e-7, msg=name)
    assert any(
        not torch.allclose(recorder.gradients[name], mean_of_means[name], rtol=1e-3, atol=1e-6)
        for name in recorder.gradients
    )
