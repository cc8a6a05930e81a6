import json
import shutil

import torch

from benchmarks.lease_checkpoint import convert_moments, restore_backbone_weights


def test_packed_moments_come_back_as_float32_within_bfloat16_precision():
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 32)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(8, 64)).square().sum().backward()
    optimizer.step()
    original = optimizer.state_dict()
    checkpoint = {"optimizer_states": [{"state": {k: dict(v) for k, v in original["state"].items()}}]}
    packed = convert_moments(checkpoint, torch.bfloat16)["optimizer_states"][0]["state"]
    assert all(state["exp_avg_sq"].dtype == torch.bfloat16 for state in packed.values())
    unpacked = convert_moments(checkpoint, torch.float32)["optimizer_states"][0]["state"]
    for key, state in original["state"].items():
        for name in ("exp_avg", "exp_avg_sq"):
            assert unpacked[key][name].dtype == torch.float32
            torch.testing.assert_close(unpacked[key][name], state[name], rtol=2**-8, atol=0)
        assert torch.equal(unpacked[key]["step"], state["step"])


def test_unpack_gives_a_backbone_carried_without_weights_the_checkpoints_own(tiny_backbone, tmp_path):
    from slu_lightning.model.backbone import load_model

    backbone = tmp_path / "backbone"
    shutil.copytree(tiny_backbone, backbone, ignore=shutil.ignore_patterns("*.safetensors"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "settings.json").write_text(json.dumps({"backbone": str(backbone)}))
    torch.manual_seed(0)
    original = load_model(tiny_backbone).state_dict()
    trained = {f"model.{k}": v + torch.randn_like(v) for k, v in original.items()}

    restore_backbone_weights(run, trained)

    restored = load_model(backbone).state_dict()
    assert restored.keys() == {k.removeprefix("model.") for k in trained}
    for name, tensor in restored.items():  # stored in float16, like an export
        torch.testing.assert_close(tensor, trained[f"model.{name}"].half().float())
    before = (backbone / "model.safetensors").stat().st_mtime_ns
    restore_backbone_weights(run, trained)  # a backbone carried whole is left alone
    assert (backbone / "model.safetensors").stat().st_mtime_ns == before
