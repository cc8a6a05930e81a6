import pytest
import torch

from slu_lightning.model.backbone import load_model
from slu_lightning.model.finetuning import (
    LoraSettings,
    apply_lora,
    freeze_all,
    module_of,
    set_trainable,
    trainable_candidates,
)


def trainable_parts(model) -> set[str]:
    return {module_of(name) for name, p in model.named_parameters() if p.requires_grad}


def frozen_model(tiny_backbone):
    """The backbone with every weight frozen, as SLUModule starts before its switches apply."""
    model = load_model(tiny_backbone)
    freeze_all(model)
    return model


def lora_model(tiny_backbone):
    return apply_lora(frozen_model(tiny_backbone), LoraSettings(rank=4))


def test_lora_adapters_sit_in_the_language_model_only(tiny_backbone):
    model = lora_model(tiny_backbone)
    adapter_names = [name for name, _ in model.named_parameters() if "lora_" in name]
    assert adapter_names and all(".language_model.layers." in name for name in adapter_names)
    # the audio encoder has q_proj/v_proj/fc1 too: none of them got adapters
    assert not any("audio_tower" in name for name in adapter_names)
    projections = {name.split(".lora_")[0].rsplit(".", 1)[1] for name in adapter_names}
    assert projections == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


@pytest.mark.parametrize(
    ("mode", "switches", "expected"),
    [
        ("lora", {"audio_encoder": False, "projector": False, "llm": True}, {"llm"}),
        (
            "lora",
            {"audio_encoder": True, "projector": True, "llm": True},
            {"audio_encoder", "projector", "llm"},
        ),
        ("full", {"audio_encoder": False, "projector": False, "llm": True}, {"llm"}),
        ("full", {"audio_encoder": False, "projector": True, "llm": False}, {"projector"}),
    ],
)
def test_freeze_switches_select_the_trainable_parts(tiny_backbone, mode, switches, expected):
    model = lora_model(tiny_backbone) if mode == "lora" else frozen_model(tiny_backbone)
    set_trainable(trainable_candidates(model, mode), switches)
    assert trainable_parts(model) == expected
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    if mode == "lora":
        assert all("lora_" in name for name in trainable if module_of(name) == "llm")


def test_lora_trains_far_fewer_parameters_than_full(tiny_backbone):
    def count(model, mode):
        set_trainable(
            trainable_candidates(model, mode), {"audio_encoder": False, "projector": False, "llm": True}
        )
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    full = frozen_model(tiny_backbone)
    lora_count, full_count = count(lora_model(tiny_backbone), "lora"), count(full, "full")
    llm_params = sum(p.numel() for n, p in full.named_parameters() if module_of(n) == "llm")
    assert full_count == llm_params
    assert 0 < lora_count < full_count / 4


def test_one_optimizer_step_changes_every_trainable_tensor_and_no_frozen_one(tiny_backbone):
    model = lora_model(tiny_backbone)
    set_trainable(
        trainable_candidates(model, "lora"), {"audio_encoder": False, "projector": True, "llm": True}
    )
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(10, 200, (2, 12))
    for _ in range(2):  # LoRA's B starts at zero: A only moves from the second step on
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    for name, p in model.named_parameters():
        changed = not torch.equal(before[name], p.detach())
        if p.requires_grad and "multi_modal_projector" not in name:  # no audio here: projector gets no grad
            assert changed, f"trainable {name} did not change"
        if not p.requires_grad:
            assert not changed, f"frozen {name} changed"
        assert p.dtype == torch.float32 or not p.requires_grad


def test_whisper_position_table_never_trains(tiny_backbone):
    model = frozen_model(tiny_backbone)
    everything = {"audio_encoder": True, "projector": True, "llm": True}
    set_trainable(trainable_candidates(model, "full"), everything)
    positions = model.model.audio_tower.embed_positions.weight
    assert not positions.requires_grad
    trainable = [p.requires_grad for n, p in model.named_parameters() if "embed_positions" not in n]
    assert all(trainable)


def test_input_embeddings_can_stay_fixed_under_full_fine_tuning(tiny_backbone):
    model = frozen_model(tiny_backbone)
    everything = {"audio_encoder": True, "projector": True, "llm": True}
    set_trainable(trainable_candidates(model, "full", train_input_embeddings=False), everything)
    assert not model.get_input_embeddings().weight.requires_grad
    assert model.lm_head.weight.requires_grad  # the output embeddings are a separate, trained matrix
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert sorted(frozen) == [
        "model.audio_tower.embed_positions.weight",
        "model.language_model.embed_tokens.weight",
    ]
