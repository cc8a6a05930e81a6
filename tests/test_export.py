"""``slu-lightning export`` of LoRA runs, loaded the way the README says (tiny model, no training loop)."""

import json
from pathlib import Path

import pytest
import torch

from slu_lightning.cli import main
from slu_lightning.data.collate import SLUCollator, SLUItem
from slu_lightning.data.features import LogMelExtractor
from slu_lightning.data.records import SLUExample
from slu_lightning.export import export_checkpoint, load_for_export
from slu_lightning.model.backbone import load_model
from slu_lightning.model.module import SLUModule

AUDIO_SIDE = ("model.audio_tower.", "model.multi_modal_projector.")


@pytest.fixture(scope="module")
def audio_side_checkpoint(tiny_backbone, tmp_path_factory) -> Path:
    """A LoRA run's checkpoint that trained the audio encoder and projector too: every trainable
    tensor moved away from the backbone's, saved as ``fit`` saves it (``on_save_checkpoint``)."""
    module = SLUModule(backbone="tiny-test", train_audio_encoder=True, train_projector=True)
    module.configure_model()
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in module.parameters():
            if param.requires_grad:
                param.add_(0.05 * torch.randn(param.shape, generator=noise))
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(checkpoint)
    path = tmp_path_factory.mktemp("run") / "last.ckpt"
    torch.save(checkpoint, path)
    return path


def speech_batch(module: SLUModule, waveform: torch.Tensor) -> dict:
    """The prompt batch ``test`` and ``predict`` build for one clip."""
    features, n_frames = LogMelExtractor(module.n_mels)(waveform)  # (mels, frames + margin)
    example = SLUExample("x", "en-US", "", "alarm", "set", ())
    collate = SLUCollator(module.tokenizer, module.prompt, with_labels=False, with_prompts=True)
    return collate([SLUItem(example, features, n_frames)])


def test_a_lora_adapter_carries_the_trained_audio_side_and_decodes_speech_like_the_toolkit(
    audio_side_checkpoint, tmp_path
):
    from peft import PeftModel
    from transformers import GenerationConfig

    out = export_checkpoint(audio_side_checkpoint, tmp_path / "export", merged=True)
    module = load_for_export(audio_side_checkpoint).eval()
    plain = PeftModel.from_pretrained(load_model(module.backbone_path), out / "adapter").eval()
    merged = load_model(out / "merged")

    trained = {
        name.removeprefix("model.base_model.model."): tensor
        for name, tensor in torch.load(audio_side_checkpoint, weights_only=True)["state_dict"].items()
        if name.removeprefix("model.base_model.model.").startswith(AUDIO_SIDE)
    }
    assert len(trained) == 38  # 36 audio-encoder and 2 projector tensors, each moved off the backbone's
    for name, tensor in trained.items():  # a wrapped module's attributes are its active (loaded) copy
        assert torch.equal(plain.get_base_model().get_parameter(name), tensor), name
        assert torch.equal(merged.get_parameter(name), tensor), name

    waveform = 0.1 * torch.randn(24000, generator=torch.Generator().manual_seed(1))  # 1.5 s of noise
    ours = module.generate_texts(speech_batch(module, waveform))  # what test and predict decode
    inputs = module.processor(
        text=module.prompt.render_prompt(None),
        audio=[waveform.numpy()],
        sampling_rate=16000,
        return_tensors="pt",
    )
    decoding = GenerationConfig.from_pretrained(out / "adapter")
    answer = plain.generate(**inputs, generation_config=decoding)[:, inputs["input_ids"].shape[1] :]
    assert module.tokenizer.batch_decode(answer, skip_special_tokens=True) == ours


def test_a_bfloat16_run_is_rebuilt_on_a_bfloat16_base_and_its_export_names_the_base_it_needs(
    audio_side_checkpoint, tmp_path
):
    """A LoRA run with ``base_dtype: bfloat16`` (configs/lora) decodes on a bfloat16 base: the export
    rebuilt it in float32, and export.json did not say in which dtype to load the adapter's base."""
    from peft import PeftModel
    from transformers import GenerationConfig

    checkpoint = torch.load(audio_side_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"] |= {
        "base_dtype": "bfloat16",
        "generation": {"num_beams": 1, "max_new_tokens": 24},
    }
    torch.save(checkpoint, tmp_path / "bf16.ckpt")
    module = load_for_export(tmp_path / "bf16.ckpt").eval()
    assert {param.dtype for param in module.parameters() if not param.requires_grad} == {torch.bfloat16}
    out = export_checkpoint(tmp_path / "bf16.ckpt", tmp_path / "export")
    base_dtype = json.loads((out / "adapter" / "export.json").read_text())["base_dtype"]
    assert base_dtype == "bfloat16"
    base = load_model(module.backbone_path, getattr(torch, base_dtype))
    plain = PeftModel.from_pretrained(base, out / "adapter").eval()
    decoding = GenerationConfig.from_pretrained(out / "adapter")
    collate = SLUCollator(module.tokenizer, module.prompt, with_labels=False, with_prompts=True)
    for text in ("set an alarm for seven", "what is the weather in paris", "play adele", "wake me at nine"):
        ours = module.generate_texts(collate([SLUItem(SLUExample("x", "en-US", text, "alarm", "set", ()))]))
        prompt = module.tokenizer(module.prompt.render_prompt(text), return_tensors="pt")
        answer = plain.generate(**prompt, generation_config=decoding)[:, prompt["input_ids"].shape[1] :]
        assert module.tokenizer.batch_decode(answer, skip_special_tokens=True) == ours, text
    older = export_checkpoint(audio_side_checkpoint, tmp_path / "older")  # saved before base_dtype was
    assert json.loads((older / "adapter" / "export.json").read_text())["base_dtype"] == "float32"


def test_an_audio_side_a_phase_trained_stays_float32_on_a_bfloat16_base_and_decodes_like_the_toolkit(
    audio_side_checkpoint, tmp_path
):
    """A curriculum phase, not the model's switches, trained the audio side: the export, built
    without the run's data module, rounded it into the bfloat16 base, and decoded speech otherwise
    than ``test``. Loaded as export.json says (its ``float32_modules`` cast to float32), it does not."""
    from peft import PeftModel
    from transformers import GenerationConfig

    checkpoint = torch.load(audio_side_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"] |= {
        "base_dtype": "bfloat16",
        "train_audio_encoder": False,
        "train_projector": False,
        "generation": {"num_beams": 1, "max_new_tokens": 24},
    }
    torch.save(checkpoint, tmp_path / "phase.ckpt")
    module = load_for_export(tmp_path / "phase.ckpt").eval()
    parameters = dict(module.named_parameters())
    for name, tensor in checkpoint["state_dict"].items():
        assert parameters[name].dtype == torch.float32 and torch.equal(parameters[name], tensor), name
    out = export_checkpoint(tmp_path / "phase.ckpt", tmp_path / "export")
    record = json.loads((out / "adapter" / "export.json").read_text())
    assert record["float32_modules"] == ["audio_tower", "multi_modal_projector"]
    base = load_model(module.backbone_path, getattr(torch, record["base_dtype"]))
    for name in record["float32_modules"]:
        getattr(base.model, name).float()  # the README's recipe
    plain = PeftModel.from_pretrained(base, out / "adapter").eval()
    decoding = GenerationConfig.from_pretrained(out / "adapter")
    for seed in range(4):
        waveform = 0.1 * torch.randn(24000, generator=torch.Generator().manual_seed(seed))
        ours = module.generate_texts(speech_batch(module, waveform))
        inputs = module.processor(
            text=module.prompt.render_prompt(None),
            audio=[waveform.numpy()],
            sampling_rate=16000,
            return_tensors="pt",
        )
        answer = plain.generate(**inputs, generation_config=decoding)[:, inputs["input_ids"].shape[1] :]
        assert module.tokenizer.batch_decode(answer, skip_special_tokens=True) == ours, seed


def test_export_json_names_the_runs_precision_and_the_label_inventory_of_its_prompt(
    audio_side_checkpoint, tmp_path, caplog
):
    """A bf16-mixed run's test decodes under autocast, and a ``{labels}`` prompt needs the inventory
    it was trained with: both are in the checkpoint, and the export names them."""
    checkpoint = torch.load(audio_side_checkpoint, weights_only=True)
    inventory = "Scenarios: alarm. Actions: set. Entity types: time."
    checkpoint |= {
        "precision": "bf16-mixed",
        "MixedDataModule": {"fingerprint": "f", "prompt_labels": inventory},
    }
    checkpoint["hyper_parameters"]["prompt"] = {"instruction": "{input}\n{labels}"}
    torch.save(checkpoint, tmp_path / "mixed.ckpt")
    with caplog.at_level("WARNING", logger="slu_lightning.export"):
        out = export_checkpoint(tmp_path / "mixed.ckpt", tmp_path / "export")
    record = json.loads((out / "adapter" / "export.json").read_text())
    assert record["precision"] == "bf16-mixed"
    assert record["prompt"]["instruction"] == "{input}\n{labels}" and record["prompt"]["labels"] == inventory
    assert "torch.autocast(device_type, dtype=torch.bfloat16)" in caplog.text
    older = json.loads(
        (export_checkpoint(audio_side_checkpoint, tmp_path / "older") / "adapter" / "export.json").read_text()
    )
    assert older["precision"] is None and older["prompt"]["labels"] == ""


def test_an_export_that_fails_to_merge_leaves_the_earlier_adapter_and_merged_model_as_they_were(
    audio_side_checkpoint, tmp_path, monkeypatch
):
    """The adapter and the merged model are swapped in together, never one of each checkpoint."""
    from peft.tuners.tuners_utils import BaseTuner

    out = export_checkpoint(audio_side_checkpoint, tmp_path / "export", merged=True)
    earlier = {path: path.read_bytes() for path in sorted(out.rglob("*")) if path.is_file()}
    checkpoint = torch.load(audio_side_checkpoint, weights_only=True) | {"precision": "bf16-mixed"}
    torch.save(checkpoint, tmp_path / "later.ckpt")

    def fail(*args, **kwargs):
        raise RuntimeError("out of memory while merging")

    monkeypatch.setattr(BaseTuner, "merge_and_unload", fail)
    with pytest.raises(RuntimeError, match="out of memory while merging"):
        export_checkpoint(tmp_path / "later.ckpt", out, merged=True)
    assert {path: path.read_bytes() for path in sorted(out.rglob("*")) if path.is_file()} == earlier
    assert sorted(path.name for path in out.iterdir()) == ["adapter", "merged"]  # no staging left


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux's sysfs, unwritable even to root")
def test_an_out_that_cannot_be_written_is_refused_in_one_line_before_the_model_is_built(
    audio_side_checkpoint, tmp_path, capsys
):
    checkpoint = torch.load(audio_side_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"]["backbone"] = str(tmp_path / "gone")  # building the model would fail
    torch.save(checkpoint, tmp_path / "last.ckpt")
    (tmp_path / "notes.txt").write_text("a file")
    for out, says in (
        ("/sys/exp", "--out /sys/exp cannot be written: "),
        (
            tmp_path / "notes.txt" / "exp",
            f"--out {tmp_path / 'notes.txt' / 'exp'}: {tmp_path / 'notes.txt'} is a file",
        ),
    ):
        with pytest.raises(SystemExit) as stop:
            main(["export", "--ckpt", str(tmp_path / "last.ckpt"), "--out", str(out)])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and f"slu-lightning export: error: {says}" in err
        assert "Traceback" not in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["last.ckpt", "notes.txt"]  # no probe left
