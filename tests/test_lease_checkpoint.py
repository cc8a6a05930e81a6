import torch

from benchmarks.lease_checkpoint import convert_moments


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
