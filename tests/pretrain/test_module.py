import pytest
import torch

from slu_lightning.data.asr_corpus import make_asr_corpus
from slu_lightning.data.datamodules import SLUDataset
from slu_lightning.data.features import LogMelExtractor
from slu_lightning.data.readers.manifest import read_manifest
from slu_lightning.pretrain.module import LossWeights, TinyPretrainModule
from slu_lightning.pretrain.objectives import hidden_distillation_loss, token_alignment_loss

ALL_OFF = dict(asr=0.0, ctc=0.0, align=0.0, distill=0.0, continuation=0.0, read=0.0)


@pytest.fixture(scope="module")
def asr_corpus(tmp_path_factory):
    return make_asr_corpus(tmp_path_factory.mktemp("asr") / "tiny", size="tiny", seed=0, locales=["en-US"])


@pytest.fixture(scope="module")
def batch(tiny_backbone, asr_corpus):
    examples = read_manifest(asr_corpus / "train.jsonl")[:4]
    dataset = SLUDataset([(example, True) for example in examples], LogMelExtractor())
    return TinyPretrainModule(backbone=str(tiny_backbone)).collator([dataset[i] for i in range(len(dataset))])


def train(backbone, batch: dict, steps: int, **weights) -> tuple[TinyPretrainModule, list[dict]]:
    """``steps`` AdamW steps on one batch; returns the module and each step's losses."""
    module = TinyPretrainModule(backbone=str(backbone), weights=LossWeights(**{**ALL_OFF, **weights}))
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=3e-3)
    history = []
    for _ in range(steps):
        losses = module.losses(batch)
        total = sum(getattr(module.weights, name) * value for name, value in losses.items())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append({name: value.item() for name, value in losses.items()})
    return module, history


def test_every_pretraining_loss_falls(tiny_backbone, batch):
    _, history = train(tiny_backbone, batch, 30, **LossWeights().__dict__)
    first, last = history[0], history[-1]
    assert set(first) == {"asr", "ctc", "align", "distill", "continuation"}
    for name in ("asr", "ctc", "continuation"):
        assert last[name] < 0.8 * first[name], name
    assert last["align"] < 0.2 * first["align"]


def test_switched_off_losses_are_not_computed(tiny_backbone, batch):
    module = TinyPretrainModule(backbone=str(tiny_backbone), weights=dict(ALL_OFF, ctc=1.0))
    assert set(module.losses(batch)) == {"ctc"}


def per_token_distance(module: TinyPretrainModule, batch: dict) -> float:
    with torch.no_grad():
        clips = module.audio_clips(batch)
        targets = [list(t) for t in batch["ctc_targets"]]
        return token_alignment_loss(clips, targets, module.embeddings, module.blank)[0].item()


def test_the_alignment_objective_brings_audio_vectors_to_their_token_embeddings(tiny_backbone, batch):
    recognition = dict(asr=1.0, ctc=0.5)
    without, _ = train(tiny_backbone, batch, 20, **recognition)
    with_alignment, _ = train(tiny_backbone, batch, 20, **recognition, align=0.5)
    assert per_token_distance(with_alignment, batch) < 0.3 * per_token_distance(without, batch)


def student_teacher_gap(module: TinyPretrainModule, batch: dict) -> float:
    """The distillation loss measured directly: LLM states after audio vs after the same text."""
    lm = module.model.model.language_model
    with torch.no_grad():
        embeds = module.embed_with_audio(batch["student_ids"], module.audio_clips(batch))
        student = lm(inputs_embeds=embeds, attention_mask=batch["student_mask"], output_hidden_states=True)
        teacher = lm(
            input_ids=batch["teacher_ids"], attention_mask=batch["teacher_mask"], output_hidden_states=True
        )
        return hidden_distillation_loss(
            student.hidden_states, teacher.hidden_states, batch["student_suffix"], batch["teacher_suffix"]
        ).item()


def test_distillation_makes_the_llm_read_audio_like_its_transcript(tiny_backbone, batch):
    without, _ = train(tiny_backbone, batch, 20, asr=1.0)
    distilled, _ = train(tiny_backbone, batch, 20, asr=1.0, distill=1.0)
    assert student_teacher_gap(distilled, batch) < 0.5 * student_teacher_gap(without, batch)


def test_reading_makes_the_llm_use_its_input(tiny_backbone, batch):
    texts = [example.text for example in batch["examples"]]
    others = texts[1:] + texts[:1]  # each transcript behind another clip's text
    reader, history = train(tiny_backbone, batch, 60, read=1.0)
    assert set(history[0]) == {"read"} and history[-1]["read"] < 0.3 * history[0]["read"]
    assert reader.reading_loss(texts, texts) < 0.3 * reader.reading_loss(texts, others)
    listener, _ = train(tiny_backbone, batch, 60, asr=1.0)  # the text prompt's input is never trained
    listener_gain = listener.reading_loss(texts, others) - listener.reading_loss(texts, texts)
    assert listener_gain < 0.5 * (reader.reading_loss(texts, others) - reader.reading_loss(texts, texts))


def test_fresh_llm_layers_keep_the_audio_side_and_the_token_embeddings(tiny_backbone):
    def fresh(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return TinyPretrainModule(backbone=str(tiny_backbone), fresh_llm=True).model.state_dict()

    trained = TinyPretrainModule(backbone=str(tiny_backbone)).model.state_dict()
    new, again, other = fresh(0), fresh(0), fresh(1)
    kept = [name for name in trained if torch.equal(trained[name], new[name])]
    redrawn = [name for name in trained if "language_model.layers" in name and name.endswith("proj.weight")]
    assert "model.language_model.embed_tokens.weight" in kept and "lm_head.weight" in kept
    assert all(name in kept for name in trained if "audio_tower" in name or "projector" in name)
    assert redrawn and not any(name in kept for name in redrawn)
    assert all(torch.equal(new[name], again[name]) for name in new)  # the seed decides the new layers
    assert not torch.equal(new[redrawn[0]], other[redrawn[0]])


def test_a_grown_ear_starts_where_the_backbones_left_off_then_trains_its_new_layers(
    tiny_backbone, batch, tmp_path
):
    plain = TinyPretrainModule(backbone=str(tiny_backbone), weights=dict(ALL_OFF, ctc=1.0))
    grown = TinyPretrainModule(backbone=str(tiny_backbone), weights=dict(ALL_OFF, ctc=1.0), grow_encoder=2)
    depth = len(plain.model.model.audio_tower.layers)
    assert len(grown.model.model.audio_tower.layers) == depth + 2
    with torch.no_grad():
        before, after = torch.cat(plain.audio_clips(batch)), torch.cat(grown.audio_clips(batch))
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)  # the new layers are the identity

    new_layer = grown.model.model.audio_tower.layers[-1]
    assert new_layer.self_attn.q_proj.weight.std() > 0  # drawn, not zero: only the outputs start at 0
    optimizer = torch.optim.AdamW([p for p in grown.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(2):  # the zeroed outputs learn first; the layer's inner weights then get gradients
        optimizer.zero_grad()
        grown.losses(batch)["ctc"].backward()
        optimizer.step()
    assert new_layer.fc2.weight.abs().sum() > 0 and new_layer.fc1.weight.grad.abs().sum() > 0

    grown.model.save_pretrained(tmp_path)  # the config records the depth, so the export loads
    reloaded = type(grown.model).from_pretrained(tmp_path)
    assert len(reloaded.model.audio_tower.layers) == depth + 2
    reloaded_layer = reloaded.model.audio_tower.layers[-1]
    torch.testing.assert_close(reloaded_layer.fc2.weight, new_layer.fc2.weight)


def test_learning_rate_warms_up_then_decays_to_its_floor(tiny_backbone):
    module = TinyPretrainModule(backbone=str(tiny_backbone), warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    factors = [module.lr_factor(step) for step in (0, 9, 10, 60, 110, 500)]
    assert factors[0] == pytest.approx(0.1) and factors[1] == factors[2] == pytest.approx(1.0)
    assert factors[3] == pytest.approx(0.55) and factors[4] == factors[5] == pytest.approx(0.1)


def test_the_hearing_stage_trains_ctc_alone_then_every_loss_joins(tiny_backbone, batch):
    module = TinyPretrainModule(backbone=str(tiny_backbone), hear_steps=5)
    assert module.weights_at(4) == LossWeights(**dict(ALL_OFF, ctc=LossWeights().ctc))
    assert module.weights_at(5) == LossWeights()
    llm = module.model.model.language_model.layers[0].mlp.up_proj.weight
    module.training_step(batch, 0).backward()  # global step 0: hearing
    assert llm.grad is None and module.embeddings.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="CTC weight"):
        TinyPretrainModule(backbone=str(tiny_backbone), hear_steps=5, weights=dict(ALL_OFF, asr=1.0))


def test_the_reading_stage_trains_the_text_losses_alone_without_the_encoder(tiny_backbone, batch):
    weights = LossWeights(read=1.0)
    module = TinyPretrainModule(backbone=str(tiny_backbone), weights=weights, read_steps=3, hear_steps=2)
    reading = LossWeights(**dict(ALL_OFF, read=1.0, continuation=weights.continuation))
    assert [module.weights_at(step) for step in (0, 2)] == [reading, reading]
    assert module.weights_at(3) == module.weights_at(4) == LossWeights(**dict(ALL_OFF, ctc=weights.ctc))
    assert module.weights_at(5) == weights
    assert set(module.losses(batch, module.weights_at(0))) == {"read", "continuation"}
    module.training_step(batch, 0).backward()  # global step 0: reading
    encoder = module.model.model.audio_tower.layers[0].fc1.weight
    llm = module.model.model.language_model.layers[0].mlp.up_proj.weight
    assert encoder.grad is None and llm.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="read weight"):
        TinyPretrainModule(backbone=str(tiny_backbone), read_steps=3)
