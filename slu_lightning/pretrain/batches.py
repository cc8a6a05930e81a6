"""Pretraining batches: each transcribed clip gives three sequences.

- student: ``<chat head> Utterance: <audio> <tail>`` + answer, trained with cross-entropy on the
  answer: the transcript (speech recognition through the LLM decoder), or with ``AUDIO_TASKS``
  another instruction's answer about the utterance;
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

import json
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch

from slu_lightning.data.collate import IGNORE_INDEX, BatchExamples, SLUItem, pad_rows, stack_features
from slu_lightning.model.audio_encoder import audio_token_count
from slu_lightning.task import AUDIO_PLACEHOLDER, END_OF_TURN, PromptTemplate

CONTINUE = PromptTemplate(instruction="{input}\nContinue this text.", text_input="Text: {transcript}")
_SLOT = "\x00"


@dataclass(frozen=True)
class AudioTask:
    """An instruction about an utterance, asked of the clip (student) and of its transcript (teacher),
    and the answer computed from the transcript."""

    instruction: str
    answer: Callable[[str], str]


AUDIO_TASKS: dict[str, AudioTask] = {
    "transcribe": AudioTask("Write down this utterance word for word.", lambda text: text),
    "json": AudioTask(
        "Write this utterance as one line of JSON.",
        lambda text: json.dumps({"text": text}, ensure_ascii=False),
    ),
    "first_words": AudioTask(
        "Write the first three words of this utterance.", lambda text: " ".join(text.split()[:3])
    ),
    "last_word": AudioTask("Write the last word of this utterance.", lambda text: text.split()[-1]),
    "count": AudioTask("How many words does this utterance have?", lambda text: str(len(text.split()))),
    "reverse": AudioTask(
        "Write the words of this utterance in reverse order.", lambda text: " ".join(reversed(text.split()))
    ),
}
"""Why several: an LLM that only ever hears audio before one instruction learns to do that one
thing with audio, and SLU fine-tuning then puts its own instruction after the clip. Each clip
keeps one task (seeded by its id); ``transcribe`` is the one the error rates are measured on."""


@dataclass(frozen=True)
class _Prompt:
    audio_head: list[int]
    text_head: str
    tail: list[int]


class PretrainCollator:
    """Builds student, teacher and continuation sequences (right-padded) for a list of clips, each
    clip under one of ``tasks`` (names in ``AUDIO_TASKS``)."""

    def __init__(self, tokenizer, tasks: tuple[str, ...] = ("transcribe",)):
        unknown = sorted(set(tasks) - set(AUDIO_TASKS))
        if unknown or not tasks:
            raise ValueError(f"unknown audio tasks {unknown or tasks}; choose from {', '.join(AUDIO_TASKS)}")
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id
        self.audio_id = tokenizer.convert_tokens_to_ids("<|AUDIO|>")
        bos, _, eos = self.encode(AUDIO_PLACEHOLDER)
        self.audio_marks = (bos, eos)
        self.tasks = tuple(tasks)
        self.prompts = {name: self._prompt(AUDIO_TASKS[name].instruction) for name in {*tasks, "transcribe"}}

    def _prompt(self, instruction: str) -> _Prompt:
        template = PromptTemplate(instruction="{input}\n" + instruction)
        text_head, tail = template.render_prompt(_SLOT).split(_SLOT)
        audio_head, audio_tail = template.render_prompt(None).split(AUDIO_PLACEHOLDER)
        if audio_tail != tail:
            raise ValueError("a task's prompt must put text and audio in the same place")
        return _Prompt(self.encode(audio_head), text_head, self.encode(tail))

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def task_of(self, example_id: str) -> str:
        return random.Random(f"task:{example_id}").choice(self.tasks)

    def teacher_prompt(self, text: str, task: str = "transcribe") -> list[int]:
        """Prompt ids with ``text`` where the student hears the audio."""
        prompt = self.prompts[task]
        return self.encode(prompt.text_head + text) + prompt.tail

    def answer(self, text: str, task: str = "transcribe") -> list[int]:
        return self.encode(AUDIO_TASKS[task].answer(text) + END_OF_TURN)

    def student_prompt(self, n_frames: int, task: str = "transcribe") -> list[int]:
        """Prompt ids with one ``<|AUDIO|>`` per audio token of a clip of ``n_frames`` mel frames."""
        n_audio = int(audio_token_count(torch.tensor([n_frames]))[0])
        bos, eos = self.audio_marks
        prompt = self.prompts[task]
        return prompt.audio_head + [bos] + [self.audio_id] * n_audio + [eos] + prompt.tail

    def __call__(self, items: list[SLUItem]) -> dict:
        if not all(item.is_speech for item in items):
            raise ValueError("pretraining batches hold clips only")
        tasks = [self.task_of(item.example.id) for item in items]
        pairs = list(zip(items, tasks, strict=True))
        answers = [self.answer(item.example.text, task) for item, task in pairs]
        students = [self.student_prompt(item.n_frames, task) for item, task in pairs]
        teachers = [self.teacher_prompt(item.example.text, task) for item, task in pairs]
        tails = [len(self.prompts[task].tail) for task in tasks]
        batch = {
            "examples": BatchExamples([item.example for item in items]),
            "ctc_targets": tuple(tuple(self.encode(item.example.text)) for item in items),
            **training_form("student", students, answers, self.pad_id),
            **training_form("teacher", teachers, answers, self.pad_id),
            **training_form("continue", *_continuations(items, self.encode), self.pad_id),
        }
        batch["student_suffix"] = _suffix_positions(students, answers, tails)
        batch["teacher_suffix"] = _suffix_positions(teachers, answers, tails)
        batch["input_features"], batch["feature_attention_mask"] = stack_features(items)
        return batch


def training_form(name: str, prompts: list[list[int]], answers: list[list[int]], pad_id: int) -> dict:
    """``<name>_ids``, ``<name>_mask`` and ``<name>_labels`` (only the answers labelled), right-padded."""
    ids, mask = pad_rows([p + a for p, a in zip(prompts, answers, strict=True)], pad_id, left=False)
    labels, _ = pad_rows(
        [[IGNORE_INDEX] * len(p) + a for p, a in zip(prompts, answers, strict=True)], IGNORE_INDEX, left=False
    )
    return {f"{name}_ids": ids, f"{name}_mask": mask, f"{name}_labels": labels}


def _suffix_positions(prompts: list[list[int]], answers: list[list[int]], tails: list[int]) -> torch.Tensor:
    """(row, position) of every token after the input: the prompt's tail (``tails[row]`` tokens),
    then the answer."""
    pairs = [
        (row, position)
        for row, (prompt, answer, tail) in enumerate(zip(prompts, answers, tails, strict=True))
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
