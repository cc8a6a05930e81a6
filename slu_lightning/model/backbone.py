"""Loading a Qwen2-Audio backbone: a local Qwen2-Audio-7B-Instruct directory or a tiny preset.

Only local files are read (``local_files_only=True``) and no repository code is executed
(``trust_remote_code`` is never set): a backbone is a directory you can inspect.
"""

from __future__ import annotations

from pathlib import Path

import torch

from slu_lightning.model.tiny import TINY_PRESETS, ensure_tiny_backbone

REQUIRED_FILES = (
    "config.json",
    "preprocessor_config.json|processor_config.json",
    "tokenizer.json|vocab.json",
    "*.safetensors|*.bin",
)


BUNDLED_DIR = Path(__file__).resolve().parents[1] / "backbones"
"""Pretrained stand-ins shipped with the package (written by ``slu-lightning pretrain-tiny``)."""


class BackboneError(ValueError):
    """The backbone cannot be used as configured; the message says what to fix."""


def bundled_backbones() -> dict[str, Path]:
    """Name -> directory of each backbone shipped in ``slu_lightning/backbones/``."""
    return {config.parent.name: config.parent for config in sorted(BUNDLED_DIR.glob("*/config.json"))}


def resolve_backbone(name_or_path: str) -> Path:
    """A tiny preset name (built and cached on first use), a bundled pretrained stand-in, or a local
    model directory."""
    if name_or_path in TINY_PRESETS:
        return ensure_tiny_backbone(name_or_path)
    bundled = bundled_backbones()
    if name_or_path in bundled:
        return bundled[name_or_path]
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        names = ", ".join([*TINY_PRESETS, *bundled])
        raise BackboneError(
            f"backbone {name_or_path!r} is neither a tiny preset, a bundled stand-in ({names}) nor a local "
            "directory. Download Qwen2-Audio-7B-Instruct once (e.g. `huggingface-cli download "
            "Qwen/Qwen2-Audio-7B-Instruct --local-dir DIR`) and pass DIR."
        )
    missing = [pattern for pattern in REQUIRED_FILES if not _has_any(path, pattern.split("|"))]
    if missing:
        raise BackboneError(f"backbone directory {path} is missing {', '.join(missing)}")
    return path


def _has_any(directory: Path, patterns: list[str]) -> bool:
    return any(next(directory.glob(pattern), None) is not None for pattern in patterns)


def load_processor(path: Path):
    """The backbone's ``Qwen2AudioProcessor`` (tokenizer, feature extractor, chat template)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = "<|endoftext|>"
    return processor


def load_model(path: Path, dtype: torch.dtype = torch.float32):
    """The ``Qwen2AudioForConditionalGeneration`` of ``path``, checked for untied embeddings."""
    from transformers import Qwen2AudioForConditionalGeneration

    model = Qwen2AudioForConditionalGeneration.from_pretrained(
        path, dtype=dtype, local_files_only=True, trust_remote_code=False
    )
    check_untied_embeddings(model)
    return model


def check_untied_embeddings(model) -> None:
    """Qwen2-Audio must not tie input and output embeddings (transformers 5.10.0-5.10.3 did)."""
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    tied_flag = bool(getattr(model.config.text_config, "tie_word_embeddings", False))
    if tied_flag or embed.data_ptr() == head.data_ptr():
        raise BackboneError(
            "the loaded Qwen2-Audio ties its word embeddings to lm_head; the model then emits only audio "
            "markers. Use a transformers release other than 5.10.0-5.10.3."
        )
