"""``TinyPretrainModule``: pretrains the tiny Qwen2-Audio stand-in on tasks that are not SLU.

Each step sees a batch of transcribed clips and trains every weight (except the encoder's fixed
sinusoidal position table) on a weighted sum of six losses (``LossWeights``): recognition
through the decoder, CTC through the input-embedding matrix, per-token alignment of audio and
text embeddings, hidden-state distillation from the text teacher, reading (the teacher's own task:
the transcript given as text, written back), and text continuation. Setting a weight to 0 switches
that loss off (and skips its compute), which is how the ablation runs.

Training may come in three stages. The first ``read_steps`` train the text losses alone (``read``
and ``continuation``; the audio encoder does not run): the LLM learns to read its input before it
is asked to read audio like text. The next ``hear_steps`` train CTC alone: the encoder, projector
and embedding matrix learn to recognise words before the LLM-side losses start. Measured from the
same checkpoint (2 CPU cores, 120 steps): CTC alone lowered the held-out CTC loss 3.20 -> 3.06 at
2.4 s a step, all five losses moved it 3.20 -> 3.27 at 4.9 s a step (docs/pretraining-log.md,
"The hearing stage, measured").

``grow_encoder`` deepens the backbone's ear by layers that start as the identity, so the deeper
ear starts exactly where the backbone's left off (``append_identity_encoder_layers``).

``fresh_llm`` starts from a backbone's audio side and token embeddings with new LLM layers: an LLM
pretrained while it could not hear has learned to ignore its input, and relearns to read far more
slowly than new layers learn to (``reinitialise_llm_layers``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import lightning as L
import torch

from slu_lightning.evaluation.error_rates import error_counts
from slu_lightning.model.audio_encoder import audio_token_count, encode_audio, scatter_audio
from slu_lightning.model.backbone import load_model, load_processor, resolve_backbone
from slu_lightning.model.module import answer_cross_entropy
from slu_lightning.pretrain.batches import PretrainCollator, training_form
from slu_lightning.pretrain.objectives import (
    ctc_loss,
    greedy_ctc_ids,
    hidden_distillation_loss,
    split_clips,
    token_alignment_loss,
)


@dataclass(frozen=True)
class LossWeights:
    """Weight of each pretraining loss in the total; 0 switches a loss off."""

    asr: float = 1.0
    """Cross-entropy of the transcript given the audio prompt (the decoder read-out)."""
    ctc: float = 0.5
    """CTC of the transcript over the audio vectors, scored against the input embeddings."""
    align: float = 0.5
    """Per-token regression of CTC-aligned audio vectors to their token embeddings."""
    distill: float = 1.0
    """Hidden-state matching of the audio prompt (student) to the text prompt (teacher)."""
    continuation: float = 0.5
    """Cross-entropy of a sentence's second half given its first half, as text."""
    read: float = 0.0
    """Cross-entropy of the transcript given the transcription prompt with the transcript as text:
    the one loss that rewards reading a text input back, so that the distillation teacher reads."""


class TinyPretrainModule(L.LightningModule):
    """The stand-in backbone and its pretraining losses; ``export`` writes the backbone directory."""

    def __init__(
        self,
        backbone: str = "tiny",
        lr: float = 2.0e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 300,
        max_steps: int = 20_000,
        min_lr_ratio: float = 0.1,
        weights: LossWeights | dict | None = None,
        hear_steps: int = 0,
        read_steps: int = 0,
        fresh_llm: bool = False,
        audio_tasks: str = "transcribe",
        grow_encoder: int = 0,
    ):
        super().__init__()
        weights = LossWeights(**weights) if isinstance(weights, dict) else weights or LossWeights()
        self.save_hyperparameters({**locals(), "weights": asdict(weights)}, ignore=["self", "__class__"])
        if hear_steps and not weights.ctc:
            raise ValueError("hear_steps trains the CTC loss alone; it needs a CTC weight above 0")
        if read_steps and not weights.read:
            raise ValueError("read_steps trains the text losses alone; it needs a read weight above 0")
        self.weights, self.hear_steps, self.read_steps = weights, hear_steps, read_steps
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        self.max_steps, self.min_lr_ratio = max_steps, min_lr_ratio
        self.backbone_path = resolve_backbone(backbone)
        self.processor = load_processor(self.backbone_path)
        self.collator = PretrainCollator(self.processor.tokenizer, tuple(audio_tasks.split(",")))
        self.model = load_model(self.backbone_path).train()
        if fresh_llm:
            reinitialise_llm_layers(self.model)
        if grow_encoder:
            append_identity_encoder_layers(self.model, grow_encoder)
        self.model.model.audio_tower.embed_positions.requires_grad_(False)  # fixed sinusoids
        self.blank = self.processor.tokenizer.pad_token_id

    @property
    def embeddings(self) -> torch.Tensor:
        return self.model.get_input_embeddings().weight  # (vocab, hidden)

    def audio_clips(self, batch: dict) -> list[torch.Tensor]:
        """The projector's audio vectors of each clip: [(tokens, hidden), ...]."""
        mask = batch["feature_attention_mask"]
        audio = encode_audio(self.model, batch["input_features"], mask)  # (total tokens, hidden)
        return split_clips(audio, audio_token_count(mask.sum(-1)))

    def embed_with_audio(self, ids: torch.Tensor, clips: list[torch.Tensor]) -> torch.Tensor:
        """Token embeddings of ``ids`` with the clips' audio vectors in the ``<|AUDIO|>`` positions."""
        embeds = self.model.get_input_embeddings()(ids)  # (batch, tokens, hidden)
        return scatter_audio(embeds, ids, torch.cat(clips), self.model.config.audio_token_id)

    def weights_at(self, step: int) -> LossWeights:
        """The loss weights in effect at ``step``: the text losses alone during the first
        ``read_steps``, CTC alone during the next ``hear_steps``, then all of the run's."""
        off = dict.fromkeys(asdict(self.weights), 0.0)
        if step < self.read_steps:
            return LossWeights(
                **{**off, "read": self.weights.read, "continuation": self.weights.continuation}
            )
        if step < self.read_steps + self.hear_steps:
            return LossWeights(**{**off, "ctc": self.weights.ctc})
        return self.weights

    def losses(self, batch: dict, weights: LossWeights | None = None) -> dict[str, torch.Tensor]:
        """Every loss switched on in ``weights`` (default: all of the run's), unweighted."""
        w, lm = weights or self.weights, self.model.model.language_model
        hears = w.asr or w.distill or w.ctc or w.align
        clips = self.audio_clips(batch) if hears else []
        targets = [list(t) for t in batch["ctc_targets"]]
        out: dict[str, torch.Tensor] = {}
        if w.asr or w.distill:
            student = lm(
                inputs_embeds=self.embed_with_audio(batch["student_ids"], clips),
                attention_mask=batch["student_mask"],
                output_hidden_states=bool(w.distill),
            )
            out["asr"] = self.answer_loss(student.last_hidden_state, batch["student_labels"])
        if w.distill or w.read:
            with torch.set_grad_enabled(torch.is_grad_enabled() and bool(w.read)):
                teacher = lm(
                    input_ids=batch["teacher_ids"],
                    attention_mask=batch["teacher_mask"],
                    output_hidden_states=bool(w.distill),
                )
            if w.read:
                out["read"] = self.answer_loss(teacher.last_hidden_state, batch["teacher_labels"])
            if w.distill:  # the teacher's states are targets: detached inside the loss
                out["distill"] = hidden_distillation_loss(
                    student.hidden_states,
                    teacher.hidden_states,
                    batch["student_suffix"],
                    batch["teacher_suffix"],
                )
        if w.ctc:
            out["ctc"] = ctc_loss(clips, targets, self.embeddings, self.blank)
        if w.align:
            out["align"], _ = token_alignment_loss(clips, targets, self.embeddings, self.blank)
        if w.continuation:
            hidden = lm(
                input_ids=batch["continue_ids"], attention_mask=batch["continue_mask"]
            ).last_hidden_state  # (batch, tokens, hidden)
            out["continuation"] = self.answer_loss(hidden, batch["continue_labels"])
        return out

    def answer_loss(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy per answer token of the LLM's last hidden states (batch, tokens, hidden)."""
        sums, counts = answer_cross_entropy(hidden, labels, self.model.lm_head)
        return sums.sum() / counts.sum()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        weights = self.weights_at(self.global_step)
        losses = self.losses(batch, weights)
        total = sum(getattr(weights, name) * value for name, value in losses.items())
        size = len(batch["examples"])
        self.log("train/loss", total, prog_bar=True, batch_size=size)
        self.log_dict({f"train/{name}": value for name, value in losses.items()}, batch_size=size)
        return total

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """Losses and the CTC read-out's word and character errors on held-out voices (cheap: no
        decoding). Each rate is pooled over the validation set (weighted by reference length)."""
        losses = self.losses(batch)
        self.log_dict(
            {f"val/{name}": value for name, value in losses.items()}, batch_size=len(batch["examples"])
        )
        references = [example.text for example in batch["examples"]]
        others = references[1:] + references[:1]
        gain = self.reading_loss(references, others) - self.reading_loss(references, references)
        self.log("val/input_gain", gain, batch_size=len(references))
        hypotheses = self.ctc_transcripts(self.audio_clips(batch))
        for unit in ("wer", "cer"):
            errors, total = error_counts(references, hypotheses, unit)
            self.log(f"val/ctc_{unit}", errors / total, batch_size=total, prog_bar=unit == "wer")

    def reading_loss(self, transcripts: list[str], inputs: list[str]) -> torch.Tensor:
        """Cross-entropy of ``transcripts`` when the text prompt holds ``inputs``. With each
        transcript's own text it is the ``read`` loss; with another one's, the rise over that shows
        how much the LLM uses its input at all (``val/input_gain``; 0: it answers from its prior)."""
        collator = self.collator
        prompts = [collator.teacher_prompt(text) for text in inputs]
        rows = training_form("read", prompts, [collator.answer(t) for t in transcripts], collator.pad_id)
        rows = {name: value.to(self.device) for name, value in rows.items()}
        lm = self.model.model.language_model
        hidden = lm(input_ids=rows["read_ids"], attention_mask=rows["read_mask"]).last_hidden_state
        return self.answer_loss(hidden, rows["read_labels"])

    @torch.no_grad()
    def ctc_transcripts(self, clips: list[torch.Tensor]) -> list[str]:
        """Greedy CTC read-out of each clip's audio vectors (``audio_clips``), decoded to text."""
        ids = greedy_ctc_ids(clips, self.embeddings, self.blank)
        return self.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def configure_optimizers(self):
        decay = [p for p in self.parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for p in self.parameters() if p.requires_grad and p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr,
            betas=(0.9, 0.98),
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def lr_factor(self, step: int) -> float:
        """Linear warm-up, then cosine decay to ``min_lr_ratio`` at ``max_steps``."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.max_steps - self.warmup_steps))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def reinitialise_llm_layers(model) -> None:
    """New random transformer layers and final norm for the LLM of a Qwen2-Audio ``model`` (drawn
    from the global seed). The token embeddings, where the CTC read-out lives, the output head and
    the audio side stay as trained.

    Why: copying a sentence from a text prompt (the ``read`` task), measured on 2 CPU cores, batch
    32, lr 1e-3. The LLM of a backbone pretrained 2.8k steps while its audio was uninformative left
    a 0.29-nat gap between a sentence behind its own text and behind another's after 300 steps. New
    layers on the same embeddings left 7.9 nats (docs/pretraining-log.md, "What limits it")."""
    llm = model.model.language_model
    fresh = type(llm)(llm.config)
    llm.layers.load_state_dict(fresh.layers.state_dict())
    llm.norm.load_state_dict(fresh.norm.state_dict())


def append_identity_encoder_layers(model, count: int) -> None:
    """Append ``count`` layers to the audio encoder of a Qwen2-Audio ``model``, each the identity
    until trained: the attention's and the feed-forward's output projections start at zero, so
    both residual branches add nothing (the other weights are drawn like the tower's own, from the
    global seed). The config records the new depth, so the export loads with it.

    Why: a deeper ear trained from scratch relearns what the backbone's already knows (``tiny-ear``
    trailed ``tiny`` after 3,000 steps); grown this way it starts at the backbone's error rates and
    spends only its new capacity (docs/pretraining-log.md, "A deeper ear grown from the trained
    one": three grown layers matched the control at equal steps)."""
    tower = model.model.audio_tower
    for _ in range(count):
        layer = type(tower.layers[0])(tower.config)
        layer.apply(tower._init_weights)
        for projection in (layer.self_attn.out_proj, layer.fc2):
            torch.nn.init.zeros_(projection.weight)
            torch.nn.init.zeros_(projection.bias)
        tower.layers.append(layer.to(dtype=tower.conv1.weight.dtype, device=tower.conv1.weight.device))
    model.config.audio_config.encoder_layers = len(tower.layers)  # the tower's own config object
