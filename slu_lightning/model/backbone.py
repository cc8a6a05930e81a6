"""Loading a Qwen2-Audio backbone: a local Qwen2-Audio-7B-Instruct directory or a tiny preset.

Only local files are read (``local_files_only=True``) and no repository code is executed
(``trust_remote_code`` is never set): a backbone is a directory you can inspect. A local directory
is checked before it is loaded (its files, its ``model_type``, every weight shard its index lists
and every safetensors header), and a load that still fails names the folder: transformers would
otherwise load another model type with a random ``lm_head`` and a warning, or fail deep inside
with an error that names no file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from slu_lightning.model.tiny import TINY_PRESETS, ensure_tiny_backbone

REQUIRED_FILES = (
    "config.json",
    "preprocessor_config.json|processor_config.json",
    "tokenizer.json|vocab.json+merges.txt",
    "*.safetensors|*.bin",
)
"""Files a backbone directory needs: ``|`` separates alternatives, ``+`` files needed together (a
tokenizer without ``tokenizer.json`` is built from ``vocab.json`` and ``merges.txt``)."""
MODEL_TYPE = "qwen2_audio"


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
        names = ", ".join(pattern.replace("|", " or ").replace("+", " with ") for pattern in missing)
        raise BackboneError(f"backbone directory {path} is missing {names}")
    check_model_type(path)
    check_weight_files(path)
    return path


def _has_any(directory: Path, alternatives: list[str]) -> bool:
    """Whether ``directory`` holds every pattern of one of the ``+``-joined ``alternatives``."""
    return any(
        all(next(directory.glob(pattern), None) is not None for pattern in alternative.split("+"))
        for alternative in alternatives
    )


def check_model_type(path: Path) -> None:
    """Refuse a directory of another architecture: transformers would load its matching tensors
    into a Qwen2-Audio, initialise the rest (``lm_head``) at random and only warn."""
    try:
        model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise BackboneError(
            f"backbone {path}: config.json is not a readable JSON object ({error})"
        ) from error
    if model_type != MODEL_TYPE:
        found = "no model_type" if model_type is None else f"model_type {model_type!r}"
        raise BackboneError(
            f"backbone {path} is not a {MODEL_TYPE} model: its config.json has {found}; pass a "
            "Qwen2-Audio(-7B-Instruct) directory"
        )


def check_weight_files(path: Path) -> None:
    """Refuse a shard that an index (``*.index.json``) lists but the folder lacks, and a safetensors
    file whose header cannot be read (truncated, or another kind of file), naming the file: the
    loader's own errors come mid-load and the safetensors one names none."""
    for index in sorted(path.glob("*.index.json")):
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise BackboneError(
                f"backbone {path}: {index.name} is not a readable shard index ({error})"
            ) from error
        if absent := sorted(shard for shard in shards if not (path / shard).is_file()):
            raise BackboneError(
                f"backbone {path}: {index.name} lists {', '.join(absent)}, which the folder lacks"
            )
    for weights in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(weights, framework="pt"):
                pass
        except (OSError, SafetensorError) as error:
            raise BackboneError(f"backbone {path}: {weights.name} cannot be read ({error})") from error


def load_processor(path: Path):
    """The backbone's ``Qwen2AudioProcessor`` (tokenizer, feature extractor, chat template)."""
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise BackboneError(
            f"backbone {path}: its processor (tokenizer, feature extractor) cannot be loaded: "
            f"{_one_line(error)}"
        ) from error
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = "<|endoftext|>"
    return processor


def load_model(path: Path, dtype: torch.dtype = torch.float32):
    """The ``Qwen2AudioForConditionalGeneration`` of ``path``, checked for untied embeddings."""
    from transformers import Qwen2AudioForConditionalGeneration

    try:
        model = Qwen2AudioForConditionalGeneration.from_pretrained(
            path, dtype=dtype, local_files_only=True, trust_remote_code=False
        )
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise BackboneError(f"backbone {path}: its weights cannot be loaded: {_one_line(error)}") from error
    check_untied_embeddings(model)
    return model


def _one_line(error: BaseException) -> str:
    """A library's error message on one line, for the CLI's one-line error."""
    return " ".join(str(error).split())


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


def weights_fingerprint(folder: Path) -> str:
    """A hash of every tensor's name, dtype, shape and first and last rows: the same for a copy, a
    move or a resharding of a backbone folder, different for other weights of the architecture
    (training changes every row of a tensor it trains), and cheap for a 7B model, whose full hash
    would read 16 GB."""
    rows: dict[str, bytes] = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(path, framework="pt") as weights:
            for name in weights.keys():
                rows[name] = _edge_rows(weights.get_slice(name))
    digest = hashlib.sha256()
    for name in sorted(rows):
        digest.update(name.encode() + rows[name])
    return digest.hexdigest()


def _edge_rows(tensor) -> bytes:
    shape = tensor.get_shape()
    edges = [tensor[:]] if not shape else [tensor[0:1], tensor[shape[0] - 1 : shape[0]]]
    data = b"".join(edge.contiguous().flatten().view(torch.uint8).numpy().tobytes() for edge in edges)
    return f"{tensor.get_dtype()} {shape}".encode() + data
