"""Pretraining batches: each transcribed clip gives three sequences.

- student: ``<chat head> Utterance: <audio> <tail>`` + answer (the transcript), trained with
  cross-entropy on the answer (speech recognition through the LLM decoder);
- teacher: the same with the transcript as text in place of the audio, run without gradient;
  its hidden states after the input are what the student's must match (distillation);
- continuation: the first words of the sentence as text, answered with the rest (keeps the LLM a
  language model of the pretraining languages).

Student and teacher share the tokens after the input (tail and answer) by construction: the tail
is tokenized on its own, and it starts with a newline that byte-level BPE never merges across.
The prompts use the SLU prompt's "Utterance: ..." framing with other instructions, so the audio
appears where SLU fine-tuning will show it; no SLU instruction or label is seen here.
"""

from __future__ import annotations

import random

import torch

from slu_lightning.data.collate import IGNORE_INDEX, BatchExamples, SLUItem, pad_rows, stack_features
from slu_lightning.model.audio_encoder import audio_token_count
from slu_lightning.task import AUDIO_PLACEHOLDER, END_OF_TURN, PromptTemplate

TRANSCRIBE = PromptTemplate(instruction="{input}\nWrite down this utterance word for word.")
CONTINUE = PromptTemplate(instruction="{input}\nContinue this text.", text_input="Text: {transcript}")
_SLOT = "\x00"


class PretrainCollator:
    """Builds student, teacher and continuation sequences (right-padded) for a list of clips."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id
        self.audio_id = tokenizer.convert_tokens_to_ids("<|AUDIO|>")
        head, self.tail = TRANSCRIBE.render_prompt(_SLOT).split(_SLOT)
        self.text_head = head
        audio_head, audio_tail = TRANSCRIBE.render_prompt(None).split(AUDIO_PLACEHOLDER)
        if audio_tail != self.tail:
            raise ValueError("the transcription prompt must put text and audio in the same place")
        self.audio_head_ids = self.encode(audio_head)
        self.tail_ids = self.encode(self.tail)
        bos, _, eos = self.encode(AUDIO_PLACEHOLDER)
        self.audio_marks = (bos, eos)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def teacher_prompt(self, text: str) -> list[int]:
        """Prompt ids with ``text`` where the student hears the audio."""
        return self.encode(self.text_head + text) + self.tail_ids

    def answer(self, text: str) -> list[int]:
        return self.encode(text + END_OF_TURN)

    def student_prompt(self, n_frames: int) -> list[int]:
        """Prompt ids with one ``<|AUDIO|>`` per audio token of a clip of ``n_frames`` mel frames."""
        n_audio = int(audio_token_count(torch.tensor([n_frames]))[0])
        bos, eos = self.audio_marks
        return self.audio_head_ids + [bos] + [self.audio_id] * n_audio + [eos] + self.tail_ids

    def __call__(self, items: list[SLUItem]) -> dict:
        if not all(item.is_speech for item in items):
            raise ValueError("pretraining batches hold clips only")
        answers = [self.answer(item.example.text) for item in items]
        students = [self.student_prompt(item.n_frames) for item in items]
        teachers = [self.teacher_prompt(item.example.text) for item in items]
        batch = {
            "examples": BatchExamples([item.example for item in items]),
            "ctc_targets": tuple(tuple(self.encode(item.example.text)) for item in items),
            **training_form("student", students, answers, self.pad_id),
            **training_form("teacher", teachers, answers, self.pad_id),
            **training_form("continue", *_continuations(items, self.encode), self.pad_id),
        }
        batch["student_suffix"] = _suffix_positions(students, answers, len(self.tail_ids))
        batch["teacher_suffix"] = _suffix_positions(teachers, answers, len(self.tail_ids))
        batch["input_features"], batch["feature_attention_mask"] = stack_features(items)
        return batch


def training_form(name: str, prompts: list[list[int]], answers: list[list[int]], pad_id: int) -> dict:
    """``<name>_ids``, ``<name>_mask`` and ``<name>_labels`` (only the answers labelled), right-padded."""
    ids, mask = pad_rows([p + a for p, a in zip(prompts, answers, strict=True)], pad_id, left=False)
    labels, _ = pad_rows(
        [[IGNORE_INDEX] * len(p) + a for p, a in zip(prompts, answers, strict=True)], IGNORE_INDEX, left=False
    )
    return {f"{name}_ids": ids, f"{name}_mask": mask, f"{name}_labels": labels}


def _suffix_positions(prompts: list[list[int]], answers: list[list[int]], tail: int) -> torch.Tensor:
    """(row, position) of every token after the input: the prompt's tail, then the answer."""
    pairs = [
        (row, position)
        for row, (prompt, answer) in enumerate(zip(prompts, answers, strict=True))
        for position in range(len(prompt) - tail, len(prompt) + len(answer))
    ]
    return torch.tensor(pairs, dtype=torch.long)  # (n, 2)


def _continuations(items: list[SLUItem], encode) -> tuple[list[list[int]], list[list[int]]]:
    """Prompt and answer ids of each sentence cut after a seeded number of words."""
    prompts, answers = [], []
    for item in items:
        words = item.example.text.split()
        cut = random.Random(f"continue:{item.example.id}").randint(1, max(1, len(words) - 1))
        prompts.append(encode(CONTINUE.render_prompt(" ".join(words[:cut]))))
        answers.append(encode(" ".join(words[cut:]) + END_OF_TURN))
    return prompts, answers
