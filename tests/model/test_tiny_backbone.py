import json
from importlib.metadata import version

import pytest
import torch
from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor

from slu_lightning.model import tiny
from slu_lightning.model.backbone import BackboneError, check_untied_embeddings, load_model, resolve_backbone
from slu_lightning.model.tiny import TINY_PRESETS, general_text, tokenizer_inputs, whisper_sinusoids


def test_tiny_backbone_round_trips_through_from_pretrained(tiny_backbone, tmp_path):
    model = load_model(tiny_backbone)
    processor = AutoProcessor.from_pretrained(tiny_backbone, local_files_only=True)
    assert isinstance(processor, Qwen2AudioProcessor)
    assert processor.feature_extractor.feature_size == 128
    model.save_pretrained(tmp_path)
    again = Qwen2AudioForConditionalGeneration.from_pretrained(tmp_path, local_files_only=True)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_tiny_backbone_has_the_configured_sizes_and_untied_embeddings(tiny_backbone):
    model = load_model(tiny_backbone)
    preset = TINY_PRESETS["tiny-test"]
    assert model.config.audio_config.d_model == preset.encoder_dim
    assert model.config.text_config.hidden_size == preset.llm_dim
    assert model.config.text_config.tie_word_embeddings is False
    check_untied_embeddings(model)


def test_audio_positions_are_whisper_sinusoids_not_random(tiny_backbone):
    positions = load_model(tiny_backbone).model.audio_tower.embed_positions.weight
    assert torch.allclose(positions, whisper_sinusoids(*positions.shape), atol=1e-6)


def test_tied_embeddings_are_refused(tiny_backbone):
    model = load_model(tiny_backbone)
    model.lm_head.weight = model.get_input_embeddings().weight
    with pytest.raises(BackboneError, match="ties its word embeddings"):
        check_untied_embeddings(model)


def test_tokenizer_text_is_general_not_slu_data(toy_corpus):
    text = "\n".join(general_text(max_number=20))
    for line in (toy_corpus / "test.jsonl").read_text().splitlines()[:5]:
        assert '"text": "' in line
        sentence = line.split('"text": "')[1].split('"')[0]
        assert sentence not in text


@pytest.fixture
def uncached_tokenizer_inputs(monkeypatch):
    """``monkeypatch``, with ``tokenizer_inputs`` recomputed after the test undoes its patches."""
    tokenizer_inputs.cache_clear()
    yield monkeypatch
    tokenizer_inputs.cache_clear()


def test_the_cache_key_follows_what_the_tokenizer_is_trained_from(uncached_tokenizer_inputs):
    """New CLDR data or another tokenizers release must build a new backbone, not reuse the old."""
    monkeypatch, preset = uncached_tokenizer_inputs, TINY_PRESETS["tiny-test"]
    keys = [preset.key()]
    original = tiny.general_text
    monkeypatch.setattr(
        tiny, "general_text", lambda max_number=1000: [*original(max_number), "new cldr name"]
    )
    tokenizer_inputs.cache_clear()
    keys.append(preset.key())
    monkeypatch.setattr(tiny, "version", lambda name: "99.0" if name == "tokenizers" else version(name))
    tokenizer_inputs.cache_clear()
    keys.append(preset.key())
    assert len(set(keys)) == 3


def test_the_cached_folder_is_named_by_the_key_and_its_card_records_the_tokenizer_inputs(tiny_backbone):
    inputs = tokenizer_inputs()
    assert tiny_backbone.name == f"tiny-test-{TINY_PRESETS['tiny-test'].key()}"
    assert set(inputs) == {"text_sha256", "babel", "num2words", "tokenizers"}
    assert inputs["tokenizers"] == version("tokenizers")
    assert (
        f"- tokenizer inputs: `{json.dumps(inputs, sort_keys=True)}`"
        in (tiny_backbone / "README.md").read_text()
    )


def test_unknown_backbone_and_incomplete_directory_get_clear_errors(tmp_path):
    with pytest.raises(BackboneError, match="neither a tiny preset"):
        resolve_backbone("no-such-model")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(BackboneError, match=r"missing .*safetensors"):
        resolve_backbone(str(tmp_path))


def test_bundled_stand_ins_resolve_by_name(tmp_path, monkeypatch, tiny_backbone):
    import shutil

    from slu_lightning.model import backbone

    shutil.copytree(tiny_backbone, tmp_path / "tiny-heard")
    (tmp_path / "half-written").mkdir()  # no config.json: not offered
    monkeypatch.setattr(backbone, "BUNDLED_DIR", tmp_path)
    assert backbone.bundled_backbones() == {"tiny-heard": tmp_path / "tiny-heard"}
    assert resolve_backbone("tiny-heard") == tmp_path / "tiny-heard"
    with pytest.raises(BackboneError, match="tiny-heard"):  # the error lists what exists
        resolve_backbone("half-written")


def test_the_wide_ear_preset_spends_its_parameters_on_audio_and_fits_the_bundle_limit():
    from slu_lightning.model.tiny import tiny_model_config, train_tokenizer

    tokenizer = train_tokenizer(TINY_PRESETS["tiny"].vocab_size)
    counts = {}
    for name in ("tiny", "tiny-ear"):
        with torch.device("meta"):
            model = Qwen2AudioForConditionalGeneration(tiny_model_config(TINY_PRESETS[name], tokenizer))
        audio = sum(p.numel() for p in model.model.audio_tower.parameters())
        llm = sum(p.numel() for p in model.model.language_model.parameters())
        counts[name] = (audio, llm, sum(p.numel() for p in model.parameters()))
    assert counts["tiny-ear"][0] > 2.5 * counts["tiny"][0]  # the encoder grows ...
    assert counts["tiny-ear"][1] == counts["tiny"][1]  # ... the LLM does not
    assert 2 * counts["tiny-ear"][2] < 20e6  # float16 bytes: under the 20 MB bundle limit
