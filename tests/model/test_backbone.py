"""Local backbone folders in the real layout (sharded weights, an index), intact and broken."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

from slu_lightning.model.backbone import BackboneError, bundled_backbones, load_model
from slu_lightning.model.module import SLUModule


@pytest.fixture(scope="module")
def real_layout(tmp_path_factory) -> Path:
    """``tiny-heard-voices`` saved as Qwen2-Audio-7B-Instruct is: 4 bf16 shards listed in
    ``model.safetensors.index.json``, the feature extractor and tokenizer files beside them."""
    source, folder = bundled_backbones()["tiny-heard-voices"], tmp_path_factory.mktemp("real") / "qwen2-audio"
    model = Qwen2AudioForConditionalGeneration.from_pretrained(source, dtype=torch.bfloat16)
    model.save_pretrained(folder, max_shard_size="3MB")
    processor = AutoProcessor.from_pretrained(source)
    processor.feature_extractor.save_pretrained(folder)
    processor.tokenizer.save_pretrained(folder)
    return folder


def broken_copy(real_layout: Path, tmp_path: Path, damage: Callable[[Path], None]) -> Path:
    folder = tmp_path / "backbone"
    shutil.copytree(real_layout, folder)
    damage(folder)
    return folder


def set_model_type(model_type: str | None) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config.pop("model_type")
        if model_type is not None:
            config["model_type"] = model_type
        (folder / "config.json").write_text(json.dumps(config))

    return damage


def test_the_real_layout_loads_as_the_bundled_stand_in(real_layout):
    module = SLUModule(backbone=str(real_layout))
    module.configure_model()
    bundled = load_model(bundled_backbones()["tiny-heard-voices"])
    head = bundled.lm_head.weight.to(torch.bfloat16).float()  # the real layout holds it in bf16
    assert len(list(real_layout.glob("model-*-of-*.safetensors"))) > 1
    assert torch.equal(module.hf.lm_head.weight, head)


@pytest.mark.parametrize("model_type", ["llama", "qwen2", "whisper", None])
def test_a_folder_of_another_model_type_is_refused_naming_it(real_layout, tmp_path, model_type):
    folder = broken_copy(real_layout, tmp_path, set_model_type(model_type))
    found = "no model_type" if model_type is None else f"model_type '{model_type}'"
    with pytest.raises(BackboneError) as error:
        SLUModule(backbone=str(folder))
    assert str(error.value).startswith(
        f"backbone {folder} is not a qwen2_audio model: its config.json has {found}"
    )


def delete_shard(folder: Path) -> None:
    (folder / "model-00003-of-00004.safetensors").unlink()


def truncate_shard(folder: Path) -> None:
    shard = folder / "model-00002-of-00004.safetensors"
    shard.write_bytes(shard.read_bytes()[:100_000])


def vocab_without_merges(folder: Path) -> None:
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    (folder / "vocab.json").write_text(json.dumps(tokenizer["model"]["vocab"]))
    (folder / "tokenizer.json").unlink()


def vocab_and_merges_of_a_fast_only_tokenizer(folder: Path) -> None:
    """The files a slow Qwen2 tokenizer reads, for one whose config names no slow class: they do not
    load (a multi-line error from transformers)."""
    merges = json.loads((folder / "tokenizer.json").read_text())["model"]["merges"]
    vocab_without_merges(folder)
    (folder / "merges.txt").write_text("\n".join(["#version: 0.2", *(" ".join(pair) for pair in merges)]))


def cut_tokenizer(folder: Path) -> None:
    (folder / "tokenizer.json").write_text((folder / "tokenizer.json").read_text()[:5000])


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (
            delete_shard,
            ": model.safetensors.index.json lists model-00003-of-00004.safetensors, which the folder lacks",
        ),
        (
            truncate_shard,
            ": model-00002-of-00004.safetensors cannot be read (Error while deserializing header",
        ),
        (vocab_without_merges, " is missing tokenizer.json or vocab.json with merges.txt"),
        (
            vocab_and_merges_of_a_fast_only_tokenizer,
            ": its processor (tokenizer, feature extractor) cannot be loaded: Couldn't instantiate",
        ),
        (cut_tokenizer, ": its processor (tokenizer, feature extractor) cannot be loaded: Expecting"),
    ],
)
def test_a_broken_folder_is_refused_naming_it_and_the_file(real_layout, tmp_path, damage, says):
    folder = broken_copy(real_layout, tmp_path, damage)
    with pytest.raises(BackboneError) as error:
        SLUModule(backbone=str(folder))
    assert f"{folder}{says}" in str(error.value) and "\n" not in str(error.value)


def test_weights_that_do_not_fit_the_config_are_refused_naming_the_folder(real_layout, tmp_path):
    def widen_the_mlp(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config["text_config"]["intermediate_size"] += 8
        (folder / "config.json").write_text(json.dumps(config))

    folder = broken_copy(real_layout, tmp_path, widen_the_mlp)
    module = SLUModule(backbone=str(folder))  # the files are all there and readable ...
    with pytest.raises(
        BackboneError, match=f"backbone {folder}: its weights cannot be loaded: .*ignore_mismatched"
    ):
        module.configure_model()  # ... but the weights are not this config's
