"""What trains: LoRA adapters on the language model or full weights, and per-module freeze switches.

Qwen2-Audio has three parts: the audio encoder (``audio_tower``), the projector
(``multi_modal_projector``) and the language model (``language_model`` + ``lm_head``). LoRA
targets are anchored to the language model's module paths: the audio encoder also has
``q_proj``/``v_proj``/``fc1`` layers, and plain suffix matching would silently put trainable
adapters into the tower that is meant to be frozen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch

if TYPE_CHECKING:
    from peft import PeftModel

FinetuningMode = Literal["lora", "full"]
FIXED_TABLES = ("audio_tower.embed_positions.weight",)  # Whisper's sinusoids: fixed, never trained
INPUT_EMBEDDINGS = "language_model.embed_tokens.weight"
MODULE_PREFIXES = {
    "audio_encoder": ("model.audio_tower.",),
    "projector": ("model.multi_modal_projector.",),
    "llm": ("model.language_model.", "lm_head."),
}
WHOLE_MODULES = {"audio_encoder": "audio_tower", "projector": "multi_modal_projector"}
"""The peft module name of each part that trains its full weights under LoRA."""


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyper-parameters (used when ``finetuning: lora``)."""

    rank: int = 16
    """Adapter rank: higher is more expressive and uses more memory."""
    alpha: int = 32
    """Scaling numerator: the update is scaled by alpha / rank."""
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    """Language-model projections that get adapters (attention and MLP by default)."""

    def target_regex(self) -> str:
        """A full-match regex for peft that only matches language-model layers."""
        names = "|".join(re.escape(name) for name in self.target_modules)
        return rf"model\.language_model\.layers\.\d+\.(self_attn|mlp)\.({names})"


def apply_lora(model: torch.nn.Module, settings: LoraSettings):
    """Wrap ``model`` in a peft ``PeftModel`` with adapters on the language model only."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_regex(),
        bias="none",
    )
    return get_peft_model(model, config)


def save_whole_modules(model: PeftModel, parts: list[str]) -> None:
    """Declare ``parts`` (of ``WHOLE_MODULES``) as the peft model's ``modules_to_save``, so that its
    ``save_pretrained`` adapter carries their current (trained) weights and
    ``PeftModel.from_pretrained`` puts them back over the base's.

    peft wraps each module in a ``ModulesToSaveWrapper`` holding a copy of it: used on a model about
    to be exported, never in training, whose checkpoints name the modules unwrapped.
    """
    from peft.utils.other import set_additional_trainable_modules

    config = model.peft_config[model.active_adapter]
    config.modules_to_save = [*(config.modules_to_save or []), *(WHOLE_MODULES[part] for part in parts)]
    set_additional_trainable_modules(
        model=model, peft_config=config, model_config=model.config, adapter_name=model.active_adapter
    )


def module_of(name: str) -> str:
    """Which part (``audio_encoder``, ``projector``, ``llm``) a parameter name belongs to."""
    name = name.removeprefix("base_model.model.")
    for module, prefixes in MODULE_PREFIXES.items():
        if name.startswith(prefixes):
            return module
    raise ValueError(f"parameter {name!r} belongs to no known part of Qwen2-Audio")


def trainable_candidates(
    model: torch.nn.Module, mode: FinetuningMode, train_input_embeddings: bool = True
) -> dict[str, list[torch.nn.Parameter]]:
    """The parameters each part would train when switched on, for this fine-tuning mode.

    Under LoRA the language model trains its adapters only; the audio encoder and projector
    train their full weights when switched on (they are small next to the language model).
    ``train_input_embeddings=False`` keeps the LLM's input-embedding matrix fixed under full
    fine-tuning: text-only training then cannot move the token embeddings that a pretrained
    audio side was aligned to.
    """
    fixed = FIXED_TABLES if train_input_embeddings else (*FIXED_TABLES, INPUT_EMBEDDINGS)
    groups: dict[str, list[torch.nn.Parameter]] = {part: [] for part in MODULE_PREFIXES}
    for name, param in model.named_parameters():
        if name.endswith(fixed):
            continue
        part = module_of(name)
        if part == "llm" and mode == "lora" and "lora_" not in name:
            continue
        groups[part].append(param)
    return groups


def set_trainable(groups: dict[str, list[torch.nn.Parameter]], switches: dict[str, bool]) -> None:
    """Switch ``requires_grad`` of each part on or off; parts outside ``groups`` stay frozen."""
    for part, params in groups.items():
        for param in params:
            param.requires_grad_(switches[part])


def freeze_all(model: torch.nn.Module) -> None:
    for param in model.parameters():
        param.requires_grad_(False)
