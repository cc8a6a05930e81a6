"""Turning examples into model batches: chat prompt, JSON target, loss mask, cut audio features.

The batch is the seam between the data side and the model side; the model reads nothing else:

- ``input_ids``, ``attention_mask`` (batch, tokens): right-padded prompt + answer (training form),
- ``labels`` (batch, tokens): -100 everywhere but the answer and its end-of-turn token,
- ``prompt_ids``, ``prompt_attention_mask`` (batch, prompt tokens): left-padded prompts only
  (generation form; only when the collator was built with ``with_prompts=True``),
- ``input_features`` (audio clips, mels, frames) and ``feature_attention_mask`` (audio clips, frames)
  for the speech examples only, cut to the longest clip in the batch (not padded to 30 s),
- ``is_speech`` (batch,) and ``examples`` (the ``SLUExample`` of each row, for metrics and logs),
- ``skipped``: the rows whose clip failed to decode under ``bad_input: skip`` (``SkippedRows``):
  silent stand-ins with no loss, left out of metrics and predictions.

Audio clips appear in ``input_features`` in row order, matching the order of their
``<|AUDIO|>`` runs in ``input_ids``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from slu_lightning.data.audio import MIN_ENCODER_SECONDS
from slu_lightning.data.errors import DataError
from slu_lightning.data.features import padding_value
from slu_lightning.data.records import SLUExample
from slu_lightning.model.audio_encoder import audio_token_count
from slu_lightning.task import PromptTemplate, target_for

IGNORE_INDEX = -100  # positions the loss skips (PyTorch's cross-entropy default)


class BatchExamples:
    """The examples of a batch, kept opaque so Lightning's device transfer does not walk into them."""

    def __init__(self, examples: list[SLUExample]):
        self._examples = tuple(examples)

    def __len__(self) -> int:
        return len(self._examples)

    def __getitem__(self, index: int) -> SLUExample:
        return self._examples[index]

    def __iter__(self):
        return iter(self._examples)


class SkippedRows:
    """Row index -> the ``DataError`` of a clip that failed to decode; opaque to device transfer."""

    def __init__(self, errors: dict[int, DataError]):
        self._errors = dict(errors)

    def __contains__(self, row: int) -> bool:
        return row in self._errors

    def __len__(self) -> int:
        return len(self._errors)

    def errors(self) -> list[DataError]:
        return list(self._errors.values())


@dataclass
class SLUItem:
    """One dataset item: an example, whether the model hears it, and its features if so."""

    example: SLUExample
    features: torch.Tensor | None = None
    """Log-mel features (mels, frames) of the clip: real frames plus a small margin."""
    n_frames: int = 0
    """How many of the frames are real (the rest is the margin the encoder's convolutions see)."""
    error: DataError | None = None
    """Why the clip could not be decoded, when ``features`` are a silent stand-in (``bad_input: skip``)."""

    @property
    def is_speech(self) -> bool:
        return self.features is not None


class SLUCollator:
    """Builds batches from ``SLUItem`` lists with a tokenizer and a prompt template."""

    def __init__(
        self, tokenizer, prompt: PromptTemplate, *, with_labels: bool = True, with_prompts: bool = False
    ):
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.with_labels = with_labels
        self.with_prompts = with_prompts
        self.pad_id = tokenizer.pad_token_id
        self.audio_id = tokenizer.convert_tokens_to_ids("<|AUDIO|>")
        self._control_tokens = sorted(
            {token.content for token in tokenizer.added_tokens_decoder.values() if token.special}
        )
        self.set_labels("")

    def control_tokens_in(self, example: SLUExample) -> list[str]:
        """The tokenizer's special tokens spelled out in an example's transcript: the prompt's text
        is tokenized with them, so a transcript saying ``<|AUDIO|>`` or ``<|im_end|>`` would be read
        as an audio slot or an end of turn, not as words."""
        return [token for token in self._control_tokens if token in example.text]

    def set_labels(self, labels: str) -> None:
        """Fill the prompt's ``{labels}`` slot (if it has one) with a label inventory."""
        self.labels = labels
        self._audio_prompt = self._encode(self.prompt.render_prompt(None, labels))
        if self._audio_prompt.count(self.audio_id) != 1:
            raise ValueError("the audio prompt must tokenize to exactly one <|AUDIO|> token")

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt_ids(self, item: SLUItem) -> list[int]:
        """Token ids of the prompt, with the clip's ``<|AUDIO|>`` token repeated once per audio frame."""
        if not item.is_speech:
            return self._encode(self.prompt.render_prompt(item.example.text, self.labels))
        n_audio = int(audio_token_count(torch.tensor([item.n_frames]))[0])
        if n_audio == 0:  # load_audio refuses such clips; a waveform from elsewhere may not be checked
            raise DataError(
                f"{item.n_frames} mel frames give Qwen2-Audio no audio token (clips of "
                f"{MIN_ENCODER_SECONDS * 1000:g} ms or less)",
                record=item.example.id,
            )
        at = self._audio_prompt.index(self.audio_id)
        return self._audio_prompt[:at] + [self.audio_id] * n_audio + self._audio_prompt[at + 1 :]

    def __call__(self, items: list[SLUItem]) -> dict:
        prompts = [self.prompt_ids(item) for item in items]
        batch: dict = {
            "is_speech": torch.tensor([item.is_speech for item in items]),
            "examples": BatchExamples([item.example for item in items]),
            "skipped": SkippedRows({row: item.error for row, item in enumerate(items) if item.error}),
        }
        if self.with_labels:  # a skipped row gets no target, so no loss
            targets = [[] if item.error else self._encode(target_for(item.example)) for item in items]
            batch.update(self._training_form(prompts, targets))
        if self.with_prompts:
            batch["prompt_ids"], batch["prompt_attention_mask"] = pad_rows(prompts, self.pad_id, left=True)
        speech = [item for item in items if item.is_speech]
        if speech:
            batch["input_features"], batch["feature_attention_mask"] = stack_features(speech)
        return batch

    def _training_form(self, prompts: list[list[int]], targets: list[list[int]]) -> dict:
        sequences = [p + t for p, t in zip(prompts, targets, strict=True)]
        label_rows = [[IGNORE_INDEX] * len(p) + t for p, t in zip(prompts, targets, strict=True)]
        input_ids, attention_mask = pad_rows(sequences, self.pad_id, left=False)
        labels, _ = pad_rows(label_rows, IGNORE_INDEX, left=False)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def pad_rows(rows: list[list[int]], value: int, *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)  # (batch, tokens)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def stack_features(items: list[SLUItem]) -> tuple[torch.Tensor, torch.Tensor]:
    """Features cut to the batch's longest clip; shorter clips padded with Whisper's padding value."""
    width = max(item.features.shape[-1] for item in items)
    padded = []
    for item in items:
        features = item.features  # (mels, frames)
        extra = width - features.shape[-1]
        fill = torch.full((features.shape[0], extra), padding_value(features), dtype=features.dtype)
        padded.append(torch.cat([features, fill], dim=-1))
    mask = torch.zeros((len(items), width), dtype=torch.long)  # (clips, frames)
    for i, item in enumerate(items):
        mask[i, : item.n_frames] = 1
    return torch.stack(padded), mask  # (clips, mels, frames), (clips, frames)
