import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from slu_lightning.data.collate import SLUCollator, SLUItem
from slu_lightning.data.errors import DataError
from slu_lightning.data.features import LogMelExtractor
from slu_lightning.data.records import Entity, SLUExample
from slu_lightning.export import module_arguments
from slu_lightning.model.module import GenerationSettings, SLUModule
from slu_lightning.task import END_OF_TURN

EXAMPLES = [
    SLUExample("a", "en-US", "wake me at seven", "alarm", "set", (Entity("time", "seven"),)),
    SLUExample(
        "b", "en-US", "weather in rome", "weather", "query", (Entity("place_name", "rome"),), audio="x"
    ),
    SLUExample("c", "fr-FR", "joue du jazz", "play", "music", (Entity("music_genre", "jazz"),), audio="y"),
]


@pytest.fixture(scope="module")
def module():
    torch.manual_seed(0)
    module = SLUModule(
        backbone="tiny-test",
        finetuning="full",
        train_audio_encoder=True,
        train_projector=True,
        generation=GenerationSettings(num_beams=1, max_new_tokens=12),
    )
    module.configure_model()
    return module


def items(examples):
    """Items whose noise clip is a function of the example alone (length and content)."""
    out = []
    for example in examples:
        if example.audio is None:
            out.append(SLUItem(example))
            continue
        rng = np.random.default_rng(ord(example.id))
        wave = rng.standard_normal(12_000 + 9_000 * (ord(example.id) % 3)).astype(np.float32)
        out.append(SLUItem(example, *LogMelExtractor()(torch.from_numpy(wave))))
    return out


def batch_of(module, examples, **kwargs):
    return SLUCollator(module.tokenizer, module.prompt, **kwargs)(items(examples))


def encoder_calls(module) -> list[int]:
    calls = []
    module.hf.model.audio_tower.conv1.register_forward_hook(lambda *args: calls.append(1))
    return calls


def test_mixed_batch_forward_backward_reaches_every_part(module):
    batch = batch_of(module, EXAMPLES)
    module.zero_grad()
    sums, counts = module.example_losses(batch)
    (sums.sum() / counts.sum()).backward()
    assert torch.isfinite(sums).all() and (counts > 0).all()
    hf = module.hf
    for part in (
        hf.model.audio_tower.conv1,
        hf.model.multi_modal_projector,
        hf.model.language_model.layers[0],
    ):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_text_only_batches_never_run_the_audio_encoder(module):
    calls = encoder_calls(module)
    module.example_losses(batch_of(module, [EXAMPLES[0], EXAMPLES[1].as_text()]))
    assert calls == []
    module.example_losses(batch_of(module, EXAMPLES))
    assert calls == [1]  # one encoder pass for the whole batch's clips


def test_per_example_loss_does_not_depend_on_batch_companions(module):
    together, _ = module.example_losses(batch_of(module, EXAMPLES))
    alone = torch.cat([module.example_losses(batch_of(module, [e]))[0] for e in EXAMPLES])
    assert torch.allclose(together, alone, atol=1e-4)


def test_a_skipped_clip_adds_nothing_to_the_batch_loss(module):
    stand_in = items(EXAMPLES)
    stand_in[2] = replace(stand_in[2], error=DataError("audio contains NaN or infinite samples", file="y"))
    sums, counts = module.example_losses(SLUCollator(module.tokenizer, module.prompt)(stand_in))
    kept_sums, kept_counts = module.example_losses(batch_of(module, EXAMPLES[:2]))
    assert sums[2] == 0 and counts[2] == 0
    assert torch.allclose(sums.sum() / counts.sum(), kept_sums.sum() / kept_counts.sum(), atol=1e-5)


def test_dynamic_audio_path_gives_the_padded_paths_loss(module):
    batch = batch_of(module, EXAMPLES)
    dynamic, _ = module.example_losses(batch)
    module.dynamic_audio = False
    try:
        padded, _ = module.example_losses(batch)
    finally:
        module.dynamic_audio = True
    assert torch.allclose(dynamic, padded, atol=1e-4)


@pytest.mark.parametrize("beams", [1, 3])
def test_batched_decoding_equals_one_at_a_time(module, beams):
    module.generation = GenerationSettings(num_beams=beams, max_new_tokens=12)
    batched = module.generate_texts(batch_of(module, EXAMPLES, with_labels=False, with_prompts=True))
    single = [
        module.generate_texts(batch_of(module, [e], with_labels=False, with_prompts=True))[0]
        for e in EXAMPLES
    ]
    assert batched == single
    assert all(isinstance(text, str) for text in batched)


def test_dummy_clip_changes_neither_loss_nor_gradients(module):
    batch = batch_of(module, [EXAMPLES[0], EXAMPLES[1].as_text()])
    results = []
    for always in (False, True):
        module.always_run_audio_encoder = always
        module.zero_grad()
        sums, counts = module.example_losses(batch)
        (sums.sum() / counts.sum()).backward()
        results.append(
            (sums.detach(), {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None})
        )
    module.always_run_audio_encoder = False
    (plain, plain_grads), (dummy, dummy_grads) = results
    assert torch.equal(plain, dummy)
    for name, grad in plain_grads.items():
        assert torch.equal(grad, dummy_grads[name]), name
    tower = {n for n in dummy_grads if "audio_tower" in n}
    assert tower and not {n for n in plain_grads if "audio_tower" in n}  # the tower took part, with zeros
    assert all(dummy_grads[n].abs().sum() == 0 for n in tower)


def test_an_answer_the_model_ends_keeps_its_end_of_turn_and_a_cut_off_one_does_not(module):
    """What tells a malformed answer (``malformed``) from one the token limit cut (``truncated``)."""
    module.generation = GenerationSettings(num_beams=1, max_new_tokens=4)
    batch = batch_of(module, EXAMPLES, with_labels=False, with_prompts=True)
    end = module.tokenizer.convert_tokens_to_ids(END_OF_TURN)

    def end_at_the_third_token(_, __, logits):  # the real model, its third answer token forced to end
        if len(steps) == 2:
            logits = logits.clone()
            logits[..., end] += 1e4
        steps.append(1)
        return logits

    steps: list[int] = []
    cut = module.generate_texts(batch)
    steps.clear()
    hook = module.hf.lm_head.register_forward_hook(end_at_the_third_token)
    try:
        ended = module.generate_texts(batch)
    finally:
        hook.remove()
    assert not any(text.endswith(END_OF_TURN) for text in cut)
    assert all(text.endswith(END_OF_TURN) and END_OF_TURN not in text[: -len(END_OF_TURN)] for text in ended)


def test_bfloat16_base_keeps_trainable_parts_in_float32():
    module = SLUModule(backbone="tiny-test", finetuning="lora", train_projector=True, base_dtype="bfloat16")
    module.configure_model()
    dtypes = {name: p.dtype for name, p in module.named_parameters()}
    trainable = {name for name, p in module.named_parameters() if p.requires_grad}
    assert trainable and all(dtypes[name] == torch.float32 for name in trainable)
    assert dtypes["model.base_model.model.model.audio_tower.conv1.weight"] == torch.bfloat16
    batch = batch_of(module, EXAMPLES)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sums, _ = module.example_losses(batch)
    assert torch.isfinite(sums).all()


def test_the_base_dtype_is_saved_with_the_settings_a_checkpoint_is_rebuilt_from():
    """Left out of the hyper-parameters, an export rebuilt a bfloat16 run's base in float32."""
    module = SLUModule(backbone="tiny-test", base_dtype="bfloat16")
    assert module.hparams["base_dtype"] == "bfloat16"
    assert SLUModule(**module_arguments(dict(module.hparams))).base_dtype == torch.bfloat16


@pytest.mark.parametrize("trains", ["train_projector", "train_audio_encoder"])
def test_bfloat16_base_with_a_float32_audio_part_runs_without_autocast(trains):
    """``precision: 32`` runs no autocast: the tower and projector meet in different dtypes."""
    module = SLUModule(backbone="tiny-test", finetuning="lora", base_dtype="bfloat16", **{trains: True})
    module.configure_model()
    sums, counts = module.example_losses(batch_of(module, EXAMPLES))
    assert torch.isfinite(sums).all() and (counts > 0).all()


def test_the_backbones_own_generation_config_does_not_change_the_decoding(module, tmp_path, caplog):
    from slu_lightning.model.backbone import resolve_backbone

    folder = shutil.copytree(resolve_backbone("tiny-test"), tmp_path / "instruct-like")
    settings = json.loads((folder / "generation_config.json").read_text())
    settings |= {"repetition_penalty": 5.0, "no_repeat_ngram_size": 1, "top_k": 20}  # as 7B-Instruct's
    (folder / "generation_config.json").write_text(json.dumps(settings))
    module.generation = GenerationSettings(num_beams=1, max_new_tokens=12)
    with caplog.at_level("INFO", logger="slu_lightning.model.module"):
        instruct = SLUModule(backbone=str(folder), finetuning="full", generation=module.generation)
        instruct.configure_model()
    assert "'repetition_penalty': 5.0" in caplog.text and "are not used" in caplog.text
    text = batch_of(module, EXAMPLES[:1], with_labels=False, with_prompts=True)
    prompt = {"input_ids": text["prompt_ids"], "attention_mask": text["prompt_attention_mask"]}
    penalised = module.decoding()
    penalised.update(repetition_penalty=5.0, no_repeat_ngram_size=1)
    configs = (penalised, module.decoding())
    answers = [module.hf.generate(**prompt, generation_config=c).tolist() for c in configs]
    assert answers[0] != answers[1]  # the settings would change the answer if they joined in
    batch = batch_of(module, EXAMPLES, with_labels=False, with_prompts=True)
    assert instruct.generate_texts(batch) == module.generate_texts(batch)
