"""``SLUModule``: Qwen2-Audio (+ LoRA) fine-tuned to emit one JSON line per utterance.

What it does, in order: loads the backbone (a local Qwen2-Audio directory or a tiny preset),
applies LoRA or full fine-tuning with per-part freeze switches, embeds each batch (text tokens,
plus audio features through the dynamic-length encoder for the speech rows only), computes the
loss on the answer tokens only, and decodes with beam search for evaluation.

Resume: checkpoints hold the trainable tensors (all weights under ``full``; adapters and any
unfrozen encoder/projector under ``lora``), the optimizer and the LR schedule; the frozen base is
reloaded from the backbone directory. A checkpoint of another backbone or fine-tuning mode is
refused with a message saying which setting differs.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics
from transformers import GenerationConfig

from slu_lightning.atomic import atomic_write_text
from slu_lightning.checkpoint_io import CheckpointError
from slu_lightning.curriculum import PhaseSchedule, build_schedule
from slu_lightning.data.errors import ConfigError
from slu_lightning.data.features import padding_value
from slu_lightning.evaluation.bootstrap import utterance_cluster_id
from slu_lightning.evaluation.metrics import SLUMetrics, headline, rows_from_predictions
from slu_lightning.model.audio_compression import (
    AudioCompression,
    ctc_compress,
    place_compressed,
    warn_unless_ctc_backbone,
)
from slu_lightning.model.audio_encoder import (
    CONV_MARGIN,
    PADDED_FRAMES,
    audio_token_count,
    encode_audio,
    padded_encode_audio,
    scatter_audio,
)
from slu_lightning.model.backbone import (
    BackboneError,
    load_model,
    load_processor,
    resolve_backbone,
    weights_fingerprint,
)
from slu_lightning.model.finetuning import (
    FinetuningMode,
    LoraSettings,
    apply_lora,
    freeze_all,
    set_trainable,
    trainable_candidates,
)
from slu_lightning.pretrain.objectives import split_clips
from slu_lightning.task import END_OF_TURN, PromptTemplate, parse_prediction

log = logging.getLogger(__name__)
PARTS = ("audio_encoder", "projector", "llm")
TRAINED_PART_SWITCHES = ("train_audio_encoder", "train_projector", "train_llm", "train_input_embeddings")
"""Settings that choose which weights a run trains."""
# Evaluation scalars are torchmetrics results, already synchronised over the ranks: under DDP
# Lightning would otherwise recommend sync_dist once per metric, locale and interval bound.
warnings.filterwarnings(
    "ignore", r"It is recommended to use `self\.log\('(val|test)/|It is recommended to use `self\.log\('step'"
)


@dataclass(frozen=True)
class OptimizerSettings:
    """AdamW with warm-up and decay; the paper: lr 5e-6, warm-up 0.04, cosine."""

    lr: float = 5e-6
    """Peak learning rate (a curriculum phase may override it)."""
    weight_decay: float = 0.0
    warmup_ratio: float = 0.04
    """Warm-up share of the optimizer steps (of each phase, under a curriculum)."""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    betas: tuple[float, float] = (0.9, 0.999)
    min_lr_ratio: float = 0.0
    """Floor of the decay relative to the peak."""


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding for validation, test and predict."""

    num_beams: int = 3
    """Beam width; the paper decodes with beam 3. 1 is greedy."""
    max_new_tokens: int = 128
    """Upper bound on the answer length in tokens."""


class SLUModule(L.LightningModule):
    """Qwen2-Audio fine-tuned for SLU. See the module docstring for what resume restores."""

    def __init__(
        self,
        backbone: str = "tiny",
        finetuning: FinetuningMode = "lora",
        lora: LoraSettings = LoraSettings(),
        train_audio_encoder: bool = False,
        train_projector: bool = False,
        train_llm: bool = True,
        train_input_embeddings: bool = True,
        optimizer: OptimizerSettings = OptimizerSettings(),
        prompt: PromptTemplate = PromptTemplate(),
        generation: GenerationSettings = GenerationSettings(),
        dynamic_audio: bool = True,
        audio_compression: AudioCompression = "none",
        gradient_checkpointing: bool = False,
        generate_during_validation: bool = True,
        seed: int | None = None,
        base_dtype: Literal["float32", "bfloat16"] = "float32",
        always_run_audio_encoder: bool = False,
    ):
        """
        Args:
            backbone: a local Qwen2-Audio(-7B-Instruct) directory, or a tiny preset (``tiny``,
                ``tiny-test``) built from config on first use.
            finetuning: ``lora`` (adapters on the language model) or ``full`` (all weights of the
                parts switched on below; the paper's setting).
            lora: LoRA rank, alpha, dropout and target projections.
            train_audio_encoder: train the audio encoder (the paper: only in speech runs).
            train_projector: train the audio-to-LLM projector (the paper: only in speech runs).
            train_llm: train the language model (adapters under LoRA).
            train_input_embeddings: under full fine-tuning, also train the LLM's input-embedding
                matrix. Off keeps the token embeddings a pretrained audio side is aligned to
                (text-only fine-tuning of a stand-in pretrained by ``pretrain-tiny``).
            optimizer: AdamW and learning-rate schedule settings.
            prompt: the prompt templates for text and audio input (saved with the run).
            generation: beam width and answer length for decoding.
            dynamic_audio: run the audio encoder on features cut to the batch's longest clip
                instead of 30 s of padding (same outputs, several times faster).
            audio_compression: ``ctc`` gives the LLM one audio vector per token its CTC read-out
                hears (the mean of that token's frames, blanks dropped) instead of one per 40 ms;
                ``ctc_posterior`` gives it, per such token, the token embedding its CTC posterior
                expects. Only for a backbone pretrained with CTC through the embedding matrix
                (``pretrain-tiny``); text-only fine-tuning then carries over to speech.
            gradient_checkpointing: recompute activations in backward to save memory.
            generate_during_validation: decode the dev set at each validation and log SLU metrics
                (teacher-forced loss is always logged).
            seed: seeds the LoRA adapters' initial weights and the dropout masks of every training
                batch (with the batch number). None: the run's ``seed_everything`` under the CLI,
                else 0.
            base_dtype: dtype the backbone is loaded in. ``bfloat16`` halves the memory of a frozen
                7B base under LoRA; parts that train are always kept in float32.
            always_run_audio_encoder: run a masked dummy clip through the audio encoder when a
                training batch has no audio. Needed under FSDP/ZeRO-3 (every rank must run every
                sharded module) and under DDP where any phase trains the tower or the projector; it
                adds zero to the loss and to every gradient.
        """
        super().__init__()
        self.save_hyperparameters(
            {
                "backbone": backbone,
                "finetuning": finetuning,
                "lora": asdict(lora),
                "train_audio_encoder": train_audio_encoder,
                "train_projector": train_projector,
                "train_llm": train_llm,
                "train_input_embeddings": train_input_embeddings,
                "optimizer": asdict(optimizer),
                "prompt": asdict(prompt),
                "generation": asdict(generation),
                "dynamic_audio": dynamic_audio,
                "audio_compression": audio_compression,
                "base_dtype": base_dtype,
            }
        )
        self.backbone_path = resolve_backbone(backbone)
        if audio_compression != "none":
            warn_unless_ctc_backbone(self.backbone_path)
        self.processor = load_processor(self.backbone_path)
        self.finetuning, self.lora_settings = finetuning, lora
        self.default_switches = {
            "audio_encoder": train_audio_encoder,
            "projector": train_projector,
            "llm": train_llm,
        }
        self.train_input_embeddings = train_input_embeddings
        self.optimizer_settings, self.prompt, self.generation = optimizer, prompt, generation
        self.dynamic_audio, self.gradient_checkpointing = dynamic_audio, gradient_checkpointing
        self.audio_compression = audio_compression
        self.generate_during_validation, self.seed = generate_during_validation, 0 if seed is None else seed
        self.logged_examples = 4  # decoded examples shown in TensorBoard per evaluation
        self._checkpoint_step = 0  # of the checkpoint loaded; 0: the backbone as loaded
        self.base_dtype, self.always_run_audio_encoder = getattr(torch, base_dtype), always_run_audio_encoder
        self.strict_loading = False  # checkpoints hold trainable tensors only
        self.model = None
        self.metrics: torch.nn.ModuleDict = torch.nn.ModuleDict()
        self._predictions: list[dict] = []
        self.val_losses = torch.nn.ModuleDict({m: TokenLossSum() for m in ("speech", "text")})
        self._step_tokens: torch.Tensor | int = 0
        """Answer tokens of this rank's micro-batches since the last optimizer step."""
        self.epoch_start_steps: list[int] = []
        """The global step at which each epoch of the run began (saved in its checkpoints)."""
        self.held_back: list[torch.nn.Parameter] = []
        """Under DDP, the parameters of the parts the current phase freezes (see ``set_trainable``)."""

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def n_mels(self) -> int:
        return int(self.processor.feature_extractor.feature_size)

    def configure_model(self) -> None:
        """Load the backbone and set up fine-tuning (once; Lightning may call this again)."""
        if self.model is not None:
            return
        model = load_model(self.backbone_path, dtype=self.base_dtype)
        self._replace_generation_config(model)
        freeze_all(model)
        if self.finetuning == "lora":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)  # adapter init independent of whatever ran before
                model = apply_lora(model, self.lora_settings)
        if self.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.model = model.train()  # from_pretrained returns eval mode; Lightning keeps submodule modes
        self.candidates = trainable_candidates(model, self.finetuning, self.train_input_embeddings)
        trained = self._parts_ever_trained()
        for part in trained:
            for param in self.candidates[part]:
                param.data = param.data.float()  # trainable tensors stay fp32 under bf16-mixed
        if self._fits_under_ddp():
            self._check_ddp_audio(trained)
            set_trainable(self.candidates, {part: part in trained for part in PARTS})
        self.set_trainable()

    def _parts_ever_trained(self) -> list[str]:
        """Parts switched on by default or by any curriculum phase."""
        parts = {part for part in PARTS if self.default_switches[part]}
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        for phase in datamodule.phases() if datamodule is not None else []:
            parts |= {
                part
                for part, on in zip(
                    PARTS, (phase.train_audio_encoder, phase.train_projector, phase.train_llm), strict=True
                )
                if on
            }
        return sorted(parts)

    @property
    def hf(self):
        """The ``Qwen2AudioForConditionalGeneration`` inside (under peft, with adapters injected)."""
        return self.model.get_base_model() if self.finetuning == "lora" else self.model

    def set_trainable(
        self, audio_encoder: bool | None = None, projector: bool | None = None, llm: bool | None = None
    ) -> None:
        """Apply freeze switches; None keeps this module's configured default for that part.

        In one process (and under FSDP, which reads ``requires_grad`` again at every step) a frozen
        part stops requiring gradients. DDP fixes the parameters it synchronises when it wraps the
        model: one frozen later stalls its reducer, one unfrozen later trains on each rank's own
        gradients. So under DDP every part some phase trains keeps requiring gradients from the
        start, and a part switched off is held back instead: ``on_before_optimizer_step`` drops its
        gradients, and AdamW skips it as it skips a frozen part."""
        overrides = {"audio_encoder": audio_encoder, "projector": projector, "llm": llm}
        switches = {
            part: self.default_switches[part] if overrides[part] is None else overrides[part]
            for part in PARTS
        }
        if self._fits_under_ddp():
            frozen = [part for part in self._parts_ever_trained() if not switches[part]]
            self.held_back = [param for part in frozen for param in self.candidates[part]]
        else:
            set_trainable(self.candidates, switches)

    def _fits_under_ddp(self) -> bool:
        """Whether this is a fit whose ranks each hold the whole model, synchronised by DDP."""
        trainer = self._trainer
        fit = trainer is not None and trainer.state.fn == "fit"
        return fit and trainer.world_size > 1 and not self._sharded()

    def _check_ddp_audio(self, trained: list[str]) -> None:
        """Refuse a DDP fit whose audio side some phase trains without ``always_run_audio_encoder``:
        DDP then expects its gradients at every step, and a batch without audio would give none."""
        audio_side = sorted({"audio_encoder", "projector"} & set(trained))
        finds_unused = getattr(self.trainer.strategy, "_ddp_kwargs", {}).get("find_unused_parameters", False)
        if audio_side and not self.always_run_audio_encoder and not finds_unused:
            raise ConfigError(
                f"under DDP, parts some phase trains ({', '.join(audio_side)}) need a gradient at every "
                "step, also from batches without audio: set model.init_args.always_run_audio_encoder "
                "to true (configs/trainer/ddp_8gpu.yaml does)"
            )

    # ---- forward -------------------------------------------------------------------------
    def embed(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, batch: dict
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Token embeddings with the audio embeddings in the ``<|AUDIO|>`` positions, the attention
        mask, and position ids (None: the default, counting every position).

        Under CTC compression each clip fills only the first slots of its audio run: the rest are
        masked out and the position ids skip them."""
        embeds = self.hf.get_input_embeddings()(input_ids)  # (batch, tokens, hidden)
        if "input_features" not in batch:
            return embeds, attention_mask, None
        features, mask = batch["input_features"].to(self.audio_dtype), batch["feature_attention_mask"]
        if self.dynamic_audio:
            audio = encode_audio(self.hf, features, mask)  # (audio tokens, hidden)
        else:
            audio = padded_encode_audio(self.hf, *pad_to_30_seconds(features, mask))
        audio_token_id = self.hf.config.audio_token_id
        if self.audio_compression == "none":
            return scatter_audio(embeds, input_ids, audio, audio_token_id), attention_mask, None
        table, blank = self.hf.get_input_embeddings().weight, self.tokenizer.pad_token_id
        clips = split_clips(audio, audio_token_count(mask.sum(-1)))
        posterior = self.audio_compression == "ctc_posterior"
        compressed = ctc_compress(clips, table, blank, posterior)
        return place_compressed(embeds, input_ids, attention_mask, compressed, audio_token_id)

    def example_losses(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed answer-token cross-entropy and answer-token count per example: (batch,), (batch,)."""
        labels = batch["labels"]
        embeds, attention_mask, positions = self.embed(batch["input_ids"], batch["attention_mask"], batch)
        if self.always_run_audio_encoder and self.training and "input_features" not in batch:
            embeds = embeds + 0.0 * self.dummy_audio().sum()  # keeps every rank's collectives in step
        hidden = self.hf.model.language_model(
            inputs_embeds=embeds, attention_mask=attention_mask, position_ids=positions
        ).last_hidden_state  # (batch, tokens, hidden)
        return answer_cross_entropy(hidden, labels, self.hf.lm_head)

    def dummy_audio(self) -> torch.Tensor:
        """Audio embeddings of a 1 s silent clip (100 mel frames at the feature floor value)."""
        n_mels = self.n_mels
        features = torch.full((1, n_mels, 100 + CONV_MARGIN), -1.5, device=self.device)  # (1, mels, frames)
        mask = torch.zeros((1, 100 + CONV_MARGIN), dtype=torch.long, device=self.device)
        mask[:, :100] = 1
        return encode_audio(self.hf, features.to(self.audio_dtype), mask)

    @property
    def audio_dtype(self) -> torch.dtype:
        return self.hf.model.audio_tower.conv1.weight.dtype

    def _loss(self, batch: dict, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's summed answer-token loss and its answer-token count; logs their mean."""
        sums, counts = self.example_losses(batch)
        loss = sums.sum() / counts.sum().clamp(min=1)
        size = len(batch["examples"])
        if stage == "train":
            self.log("train/loss", loss, prog_bar=True, batch_size=size)
        for modality, rows in (("speech", batch["is_speech"]), ("text", ~batch["is_speech"])):
            rows = rows.to(sums.device)
            if stage == "train" and counts[rows].sum() > 0:  # not when every such row was skipped
                self.log(
                    f"train/loss_{modality}",
                    sums[rows].sum() / counts[rows].sum(),
                    batch_size=int(rows.sum()),
                )
            if stage == "val":  # token-weighted means that every rank computes, whatever its batches held
                self.val_losses[modality].update(sums[rows].sum(), counts[rows].sum())
        return sums.sum(), counts.sum()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        """The mean answer-token loss; where a step spans micro-batches, their summed loss, which
        ``on_before_optimizer_step`` divides by the step's token count. Dropout masks depend only on
        (seed, batch number), so a resumed run draws the same ones."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed * 1_000_003 + self.trainer.fit_loop.total_batch_idx)
            total, tokens = self._loss(batch, "train")
        if not self._step_spans_micro_batches():
            return total / tokens.clamp(min=1)
        self._step_tokens = self._step_tokens + tokens.detach()
        return total

    def _step_spans_micro_batches(self) -> bool:
        return self.trainer.accumulate_grad_batches > 1 or self.trainer.world_size > 1

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Every answer token of an optimizer step weighs alike, as in one large batch (and as in
        transformers' Trainer): under gradient accumulation or DDP each micro-batch's mean would weigh
        the tokens of a short batch more. The gradients hold the summed losses divided by the
        accumulation (Lightning) and averaged over the ranks (DDP); this makes them the step's
        token mean. Before clipping, which Lightning applies after this hook.

        First, under DDP, the gradients of the parts this phase freezes are dropped (``set_trainable``):
        neither the optimizer nor the clipping norm sees them."""
        for parameter in self.held_back:
            parameter.grad = None
        if not self._step_spans_micro_batches():
            return
        tokens = torch.as_tensor(self._step_tokens, dtype=torch.float32, device=self.device)
        if self.trainer.world_size > 1:
            tokens = self.trainer.strategy.reduce(tokens, reduce_op="sum")
        scale = self.trainer.accumulate_grad_batches * self.trainer.world_size / tokens.clamp(min=1)
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None:
                    parameter.grad.mul_(scale.to(parameter.grad.dtype))
        self._step_tokens = 0

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        self._batch_started = time.perf_counter()

    def on_train_batch_end(self, outputs, batch: dict, batch_idx: int) -> None:
        """Throughput of this process, data loading excluded: examples and tokens per second."""
        seconds = max(time.perf_counter() - self._batch_started, 1e-9)
        self.log_dict(
            {
                "throughput/examples_per_second": len(batch["examples"]) / seconds,
                "throughput/tokens_per_second": float(batch["attention_mask"].sum()) / seconds,
            },
            on_step=True,
            on_epoch=False,
        )

    # ---- decoding and evaluation --------------------------------------------------------------
    @torch.no_grad()
    def generate_texts(self, batch: dict) -> list[str]:
        """Decode an answer for every row of a left-padded prompt batch, ending in ``END_OF_TURN``
        where the model ended it (``parse_prediction`` tells a cut-off answer from a malformed one)."""
        embeds, attention_mask, _ = self.embed(batch["prompt_ids"], batch["prompt_attention_mask"], batch)
        output = self.hf.generate(  # position ids follow the attention mask: compressed slots skipped
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            generation_config=self.decoding(),
            synced_gpus=self._sharded(),  # ranks whose beams finish early keep joining the all-gathers
        )
        ended = (output == self.tokenizer.convert_tokens_to_ids(END_OF_TURN)).any(dim=-1).tolist()
        texts = self.tokenizer.batch_decode(output, skip_special_tokens=True)
        return [text + END_OF_TURN if end else text for text, end in zip(texts, ended, strict=True)]

    def decoding(self) -> GenerationConfig:
        """All of the decoding of validate, test, predict and an export: ``generation``, greedy or
        beam search, ending at the end of the turn."""
        return GenerationConfig(
            num_beams=self.generation.num_beams,
            max_new_tokens=self.generation.max_new_tokens,
            do_sample=False,
            eos_token_id=self.tokenizer.convert_tokens_to_ids(END_OF_TURN),
            pad_token_id=self.tokenizer.pad_token_id,
        )

    def _replace_generation_config(self, model) -> None:
        """Drop the backbone's ``generation_config.json``: transformers fills every setting a
        ``generate`` call leaves unset from it, so Qwen2-Audio-7B-Instruct's ``repetition_penalty``
        1.1 would change the answers (and make them depend on their batch companions), and an export,
        which carries ``decoding()`` alone, would decode otherwise than ``test``."""
        defaults = model.generation_config._get_default_generation_params()
        ignored = {
            key: value
            for key, value in model.generation_config.to_diff_dict().items()
            if key in defaults and value != defaults[key]
        }
        if ignored:
            log.info(
                "decoding follows model.init_args.generation; the backbone's generation_config.json "
                "settings %s are not used",
                ignored,
            )
        model.generation_config = self.decoding()

    def _sharded(self) -> bool:
        """Whether weights are sharded across ranks (FSDP, DeepSpeed), so every rank must run every step."""
        if self._trainer is None or self.trainer.world_size < 2:
            return False
        name = type(self.trainer.strategy).__name__
        return "FSDP" in name or "DeepSpeed" in name

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule if self.trainer else None
        if datamodule is not None and not self.metrics:
            locales = datamodule.locales or ["und"]
            self.metrics = torch.nn.ModuleDict(
                {  # test metrics carry 95 % utterance-bootstrap CIs
                    f"{split}_{modality}": SLUMetrics(locales, n_resamples=1000 if split == "test" else 0)
                    for split in ("val", "test")
                    for modality in ("speech", "text")
                }
            )

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._loss(batch, "val")
        if self.generate_during_validation:
            self._evaluate(batch, "val", batch_idx)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "test", batch_idx)

    def _log_decoded_examples(self, split: str, rows: list[dict]) -> None:
        """A few decoded examples as text in TensorBoard: reference, raw output, parse status."""
        experiment = getattr(self.logger, "experiment", None)
        if not rows or not hasattr(experiment, "add_text"):
            return
        lines = [
            f"**{row['id']}** ({row['modality']}, {row['locale']}): `{row['reference']['text']}`  \n"
            f"gold: `{json.dumps(row['reference'], ensure_ascii=False)}`  \n"
            f"output ({row['status']}): `{row['raw']}`"
            for row in rows
        ]
        experiment.add_text(f"{split}/decoded_examples", "\n\n".join(lines), self.evaluated_step)

    def _evaluate(self, batch: dict, split: str, batch_idx: int) -> None:
        raw = self.generate_texts(batch)
        predictions = [parse_prediction(text) for text in raw]
        locales = self.trainer.datamodule.locales
        heard = batch["is_speech"].tolist()
        kept = [i for i in range(len(raw)) if i not in batch["skipped"]]
        for modality, speech in (("speech", True), ("text", False)):
            rows = [i for i in kept if heard[i] == speech]
            if not rows:
                continue
            golds = [batch["examples"][i] for i in rows]
            counts = rows_from_predictions(golds, [predictions[i] for i in rows])
            locale_idx = torch.tensor([locales.index(g.locale) for g in golds])
            clusters = torch.tensor([utterance_cluster_id(g.utterance_id, g.locale) for g in golds])
            self.metrics[f"{split}_{modality}"].update(
                counts.to(self.device), locale_idx.to(self.device), clusters.to(self.device)
            )
        rows = [_prediction_row(batch["examples"][i], raw[i], predictions[i], heard[i]) for i in kept]
        self._predictions += rows
        if batch_idx == 0:
            self._log_decoded_examples(split, rows[: self.logged_examples])

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        """One JSON-ready prediction per input file, in the SLURP scorer's format; ``modality`` tells
        ``score`` that a manifest's rows without audio are no gold items of these answers."""
        raw = self.generate_texts(batch)
        rows = []
        for i, (example, text) in enumerate(zip(batch["examples"], raw, strict=True)):
            if i not in batch["skipped"]:
                rows.append(
                    {"file": example.id, "modality": "speech", **_parsed_fields(parse_prediction(text), text)}
                )
        self._predictions += rows
        return rows

    def on_predict_epoch_end(self) -> None:
        """Print one JSON line per file and write them to the run directory."""
        rows = self._write_predictions("predict")
        if self.trainer.is_global_zero:
            for row in rows:
                print(json.dumps(row, ensure_ascii=False))

    @property
    def evaluated_step(self) -> int:
        """The training step of the weights being evaluated. ``test`` and ``validate`` restore a
        checkpoint's weights but not its loops, so Lightning would log at step 0: the tests of one run's
        best and last checkpoints would overlay in TensorBoard, and neither would sit beside its
        training curve."""
        if self.trainer.state.fn == "fit":
            return self.global_step
        return self._checkpoint_step

    def _log_evaluated_step(self) -> None:
        if self.trainer.state.fn != "fit":
            self.log("step", float(self.evaluated_step))  # Lightning's x-axis for this epoch's scalars

    def on_validation_epoch_end(self) -> None:
        self._log_evaluated_step()
        sums = {m: self.val_losses[m].compute() for m in ("speech", "text")}  # (loss sum, tokens), synced
        losses = {f"val/loss_{m}": loss_sum / tokens for m, (loss_sum, tokens) in sums.items() if tokens > 0}
        for name, value in losses.items():
            self.log(name, value)
        total_tokens = sum(tokens for _, tokens in sums.values())
        loss = sum(loss for loss, _ in sums.values()) / max(total_tokens, 1)
        self.log("val/loss", loss, prog_bar=True)
        if self.trainer.state.fn == "validate" and self.trainer.is_global_zero:  # Lightning's table is off
            each = ", ".join(f"{name} {float(value):.4f}" for name, value in losses.items())
            log.info("validate: val/loss %.4f (%s)", float(loss), each)
        for metric in self.val_losses.values():
            metric.reset()
        self._log_metrics("val")
        if self.generate_during_validation:
            self._write_predictions("val")

    def on_test_epoch_end(self) -> None:
        """Predictions last: a sweep counts a cell with ``predictions_test.jsonl`` as tested."""
        self._log_evaluated_step()
        self._log_metrics("test")
        self._write_predictions("test")

    def on_train_end(self) -> None:
        """Record the clips skipped while loading batches too (``bad_input: skip``, every rank's):
        ``training_data.json``, written before training, knew only those found at setup."""
        skips = self.trainer.datamodule.gathered_skips()
        run_dir = self.trainer.log_dir  # a collective under DDP: every rank must ask
        if skips.total and self.trainer.is_global_zero and run_dir:
            log.warning("in all, %s", skips.summary())
            self.trainer.datamodule.write_subset_ids(run_dir)

    def _log_metrics(self, split: str) -> None:
        """Log every metric per modality (and locale); after a test, also write metrics_test.json.

        Which modalities are computed comes from the evaluation set, not from what this rank saw,
        so every rank joins the same metric synchronisations.
        """
        if split == "val" and not self.generate_during_validation:
            return
        summary = {}
        for modality in self.trainer.datamodule.eval_modalities("dev" if split == "val" else split):
            metric = self.metrics[f"{split}_{modality}"]
            with warnings.catch_warnings():  # an unscored modality's compute: said below, in one line
                warnings.filterwarnings("ignore", "The ``compute`` method of metric", UserWarning)
                computed = metric.compute()  # empty when no example of the modality was scored
            summary[modality] = {name: float(value) for name, value in computed.items()} or {
                "num_examples": 0.0
            }
            self.log_dict(
                {f"{split}/{modality}/{name}": value for name, value in summary[modality].items()},
                sync_dist=False,
            )
            metric.reset()
        if self.trainer.state.fn in ("validate", "test") and self.trainer.is_global_zero:
            command = "validate" if split == "val" else "test"
            for modality, metrics in summary.items():
                log.info("%s", headline(f"{command} on {modality}", metrics))
        skips = self.trainer.datamodule.gathered_skips() if split == "test" else None
        run_dir = self.trainer.log_dir  # a collective under DDP: every rank must ask
        if split == "test" and summary and self.trainer.is_global_zero and run_dir:
            summary["checkpoint"] = str(self.trainer.ckpt_path)  # which checkpoint these numbers are for
            if skips.total:  # bad_input: skip, found at setup or while loading batches
                log.warning("in all, %s", skips.summary())
                summary["skipped_records"] = dict(skips.counts.most_common())
            atomic_write_text(Path(run_dir) / "metrics_test.json", json.dumps(summary, indent=1))
            log.info("every metric, per locale too: %s", Path(run_dir) / "metrics_test.json")

    def _write_predictions(self, stage: str) -> list[dict]:
        """Gather every rank's rows and write them (rank 0) as ``predictions_<stage>.jsonl``, sorted by
        id and modality: the same file whatever the batch order and the number of ranks."""
        rows = self._predictions
        if self.trainer.world_size > 1:
            gathered = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, rows)
            rows = [row for part in gathered for row in part]
        rows.sort(key=lambda row: (row.get("id", row["file"]), row.get("modality", "")))
        self._predictions = []
        run_dir = self.trainer.log_dir  # a collective under DDP: every rank must ask
        if self.trainer.is_global_zero and run_dir:
            path = Path(run_dir) / f"predictions_{stage}.jsonl"
            atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
            log.info("wrote %d predictions to %s", len(rows), path)
        return rows

    # ---- optimisation ---------------------------------------------------------------------
    def configure_optimizers(self):
        params = [p for part in self._parts_ever_trained() for p in self.candidates[part]]
        if not params:
            raise ConfigError("nothing to train: every part is frozen in every phase")
        settings = self.optimizer_settings
        optimizer = torch.optim.AdamW(
            params, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay
        )
        self.lr_schedule = self._build_schedule()
        # a function, not the PhaseSchedule: LambdaLR saves a callable object's fields in the
        # checkpoint, and a resume would lay the old epochs' schedule over this run's; it reads
        # the schedule that each epoch's start rebuilds
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: self.lr_schedule(step))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _build_schedule(self) -> PhaseSchedule:
        settings = self.optimizer_settings
        return build_schedule(
            self.trainer.datamodule.phases(),
            self._steps_per_epoch(),
            settings.lr,
            settings.warmup_ratio,
            settings.schedule,
            settings.min_lr_ratio,
        )

    def _steps_per_epoch(self) -> list[int]:
        """Optimizer steps of every epoch of the run: those it took, for the epochs that ended, else
        as many as this run's batch layout gives. A run resumed at an epoch's end may change the
        layout; counting its past epochs in the new one moved the phases' starts off their data."""
        taken = [end - start for start, end in itertools.pairwise(self.epoch_start_steps)]
        accumulate = self.trainer.accumulate_grad_batches
        batches = self.trainer.datamodule.batches_in_epoch
        return taken + [-(-batches(e) // accumulate) for e in range(len(taken), self.trainer.max_epochs)]

    def on_train_start(self) -> None:
        self._follow_schedule()

    def on_train_epoch_start(self) -> None:
        """Record the step the epoch starts at (none after a resume from a checkpoint without this
        record: its epochs keep this run's layout) and follow the schedule from it."""
        epoch = self.current_epoch
        if len(self.epoch_start_steps) >= epoch:
            self.epoch_start_steps[epoch:] = [self.global_step]
        self._follow_schedule()

    def _follow_schedule(self) -> None:
        """Rebuild the schedule from the epochs so far and set every param group to this run's
        optimizer settings at its current step.

        Lightning restores the checkpoint's param groups (learning rate, weight decay, betas, eps)
        and its scheduler's base learning rates over the ones ``configure_optimizers`` set: a new
        ``optimizer.lr`` or ``weight_decay`` was ignored, and a phase's own peak, relative to this
        run's learning rate, landed at a third value. ``on_load_checkpoint`` says this run's value
        wins: here it does. A fresh run keeps the values it had (the expression LambdaLR computes)."""
        self.lr_schedule = self._build_schedule()
        optimizer = self.trainer.optimizers[0]
        scheduler = self.trainer.lr_scheduler_configs[0].scheduler
        base = optimizer.defaults["lr"]  # the defaults are this run's: a restore leaves them
        scheduler.base_lrs = [base] * len(optimizer.param_groups)
        for group, factor in zip(optimizer.param_groups, scheduler.lr_lambdas, strict=True):
            group.update({key: optimizer.defaults[key] for key in ("betas", "eps", "weight_decay")})
            group.update(initial_lr=base, lr=base * factor(scheduler.last_epoch))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep only tensors that can change: the frozen base is reloaded from the backbone."""
        names = self._trained_names()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in names}
        checkpoint["backbone_weights"] = self.backbone_fingerprint  # to tell the backbone again anywhere
        checkpoint["epoch_start_steps"] = list(self.epoch_start_steps)
        if self._trainer is not None:  # how its test decodes (autocast or not): export names it
            checkpoint["precision"] = str(self.trainer.precision)

    def _trained_names(self) -> set[str]:
        """Names of the parameters some phase trains: what the optimizer and the checkpoints hold."""
        keep = {id(p) for part in self._parts_ever_trained() for p in self.candidates[part]}
        return {name for name, p in self.named_parameters() if id(p) in keep}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse a checkpoint of another backbone or fine-tuning mode, or a resume that would train
        other weights; log every other setting where this run's config differs (the config wins, see
        ``SLUCli._parse_ckpt_path``)."""
        saved = checkpoint.get("hyper_parameters", {})
        if "backbone" in saved:
            self._check_backbone(saved["backbone"], checkpoint.get("backbone_weights"))
        for key in ("finetuning", "lora"):
            if key in saved and saved[key] != self.hparams[key]:
                raise CheckpointError(
                    f"checkpoint was trained with {key}={saved[key]!r} but this run has {key}="
                    f"{self.hparams[key]!r}; use the checkpoint's setting or start a new run"
                )
        unknown = set(checkpoint["state_dict"]) - {name for name, _ in self.named_parameters()}
        if unknown:
            raise CheckpointError(
                f"checkpoint holds {len(unknown)} tensors this model lacks, e.g. {sorted(unknown)[:3]}"
            )
        if self._trainer is not None and self.trainer.state.fn == "fit":  # test and export load any
            self._check_trained_weights(set(checkpoint["state_dict"]), saved)
        for key, old in saved.items():
            new = self.hparams.get(key)
            if (
                key != "backbone"
                and key in self.hparams
                and json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True)
            ):
                log.warning(
                    "config differs from the checkpoint: model %s = %r here, %r in the checkpoint; "
                    "this run's value wins",
                    key,
                    new,
                    old,
                )
        self._checkpoint_step = int(checkpoint.get("global_step", 0))
        self.epoch_start_steps = list(checkpoint.get("epoch_start_steps", []))
        log.info(
            "loaded checkpoint of global step %s (epoch %s)",
            checkpoint.get("global_step"),
            checkpoint.get("epoch"),
        )

    def _check_trained_weights(self, trained: set[str], saved: dict) -> None:
        """Refuse to resume a fit whose freeze switches (of the model or of its phases) train other
        weights than the checkpoint's run: its optimizer state is for those (Lightning would fail on
        the sizes of the param groups), naming the settings that differ."""
        if trained == self._trained_names():
            return
        differ = [key for key in TRAINED_PART_SWITCHES if key in saved and saved[key] != self.hparams[key]]
        said = "; ".join(
            f"checkpoint was trained with {key}={saved[key]!r} but this run has {key}={self.hparams[key]!r}"
            for key in differ
        )
        said = said or "the curriculum phases switch on other parts than in the checkpoint's run"
        raise CheckpointError(
            f"{said}, which trains other weights; use the checkpoint's settings or start a new run"
        )

    def _check_backbone(self, saved: str, recorded: str | None) -> None:
        """Refuse a checkpoint of another backbone, but not of this one named another way: a path
        with a trailing slash or relative, a copy, a move or a resharding of the folder (a run
        folder may move to another machine, and its backbone with it). Folders are told apart by
        ``weights_fingerprint``, which the checkpoint records (older checkpoints: its folder's, if it
        is still there); the same config.json would not tell Qwen2-Audio from its Instruct model."""
        here = self.backbone_path
        if saved == self.hparams["backbone"] or Path(saved).expanduser().resolve() == here.resolve():
            return
        if recorded is None:
            try:
                recorded = weights_fingerprint(resolve_backbone(saved))
            except BackboneError:
                pass
        if recorded != self.backbone_fingerprint:
            raise CheckpointError(
                f"checkpoint was trained with backbone={saved!r} but this run has backbone="
                f"{self.hparams['backbone']!r}, which holds other weights; use the checkpoint's "
                "backbone or start a new run"
            )
        log.warning("the checkpoint was trained on backbone %s; %s holds the same weights", saved, here)

    @functools.cached_property
    def backbone_fingerprint(self) -> str:
        return weights_fingerprint(self.backbone_path)


class TokenLossSum(torchmetrics.Metric):
    """Summed token loss and token count, reduced across ranks: a token-weighted mean loss."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("loss", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("tokens", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, loss_sum: torch.Tensor, tokens: torch.Tensor) -> None:
        self.loss += loss_sum.detach().double()
        self.tokens += tokens.double()

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.loss, self.tokens


def answer_cross_entropy(
    hidden: torch.Tensor, labels: torch.Tensor, lm_head: torch.nn.Module
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy of the labelled (answer) tokens and their count, per row: (batch,), (batch,).

    Only the answer positions go through ``lm_head``: no full-vocabulary logits for the prompt.
    """
    targets = labels[:, 1:]  # token t predicts token t + 1
    answer = targets != -100  # (batch, tokens - 1)
    logits = lm_head(hidden[:, :-1][answer]).float()  # (answer tokens, vocab)
    token_loss = F.cross_entropy(logits, targets[answer], reduction="none")
    rows = answer.nonzero()[:, 0]
    sums = torch.zeros(len(labels), device=logits.device).index_add(0, rows, token_loss)
    return sums, answer.sum(dim=1).float()


def pad_to_30_seconds(features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The stock layout: every clip padded to 3000 frames with Whisper's padding value."""
    extra = PADDED_FRAMES - features.shape[-1]
    fills = [
        torch.full(
            (features.shape[1], extra), padding_value(clip), dtype=features.dtype, device=features.device
        )
        for clip in features
    ]
    padded = torch.cat([features, torch.stack(fills)], dim=-1)  # (clips, mels, 3000)
    return padded, F.pad(mask, (0, extra))


def _parsed_fields(prediction, raw: str) -> dict:
    """The SLURP scorer's fields of a parsed output, its parse status and the raw text."""
    return {**prediction.to_json(), "status": prediction.status.value, "raw": raw}


def _prediction_row(example, raw: str, prediction, heard: bool) -> dict:
    """One line of the predictions file: SLURP scorer fields plus reference and raw output.

    The official SLURP scorer keys a prediction by its ``file`` (a recording), or, in its
    ``--load-gold`` mode for gold transcripts, by its ``slurp_id``: a SLURP transcript row carries
    both (as a string, the scorer's gold key), so either mode reads the file.
    """
    slurp = example.source == "slurp"
    return {
        "file": Path(example.id).name if heard and slurp else example.id,
        **({"slurp_id": example.utterance_id} if slurp and not heard else {}),
        "id": example.id,
        "utterance_id": example.utterance_id,
        "locale": example.locale,
        "modality": "speech" if heard else "text",
        **_parsed_fields(prediction, raw),
        "meta": dict(example.meta),  # e.g. SLURP's microphone, for the report's error analysis
        "reference": {
            "text": example.text,
            "scenario": example.scenario,
            "action": example.action,
            "entities": [{"type": e.type, "filler": e.filler} for e in example.entities],
        },
    }
