import pytest
import torch

from slu_lightning.data.collate import IGNORE_INDEX, SLUItem
from slu_lightning.data.records import SLUExample
from slu_lightning.model.audio_encoder import audio_token_count
from slu_lightning.model.backbone import load_processor
from slu_lightning.pretrain.batches import AUDIO_TASKS, PretrainCollator

SENTENCES = ["the price is forty two euros", "anna lives in rome", "sieben acht neun zehn elf"]


@pytest.fixture(scope="module")
def collator(tiny_backbone):
    return PretrainCollator(load_processor(tiny_backbone).tokenizer)


def clip_items() -> list[SLUItem]:
    items = []
    for i, text in enumerate(SENTENCES):
        n_frames = 150 + 40 * i
        example = SLUExample(id=f"asr-{i}", locale="en-US", text=text, scenario="asr", action="transcribe")
        items.append(SLUItem(example, torch.randn(128, n_frames + 2), n_frames))
    return items


def test_each_clip_gets_one_audio_token_per_encoder_output(collator):
    batch = collator(clip_items())
    counts = (batch["student_ids"] == collator.audio_id).sum(-1)
    frames = batch["feature_attention_mask"].sum(-1)
    assert counts.tolist() == audio_token_count(frames).tolist()
    assert batch["input_features"].shape[-1] == 230 + 2  # cut to the longest clip, not 30 s


def test_student_and_teacher_share_every_token_after_the_input(collator):
    batch = collator(clip_items())
    student = batch["student_ids"][batch["student_suffix"][:, 0], batch["student_suffix"][:, 1]]
    teacher = batch["teacher_ids"][batch["teacher_suffix"][:, 0], batch["teacher_suffix"][:, 1]]
    assert torch.equal(student, teacher)
    tokenizer = collator.tokenizer
    first_row = student[batch["student_suffix"][:, 0] == 0]
    assert tokenizer.decode(first_row).endswith("assistant\n" + SENTENCES[0] + "<|im_end|>")
    assert (batch["student_suffix"][:, 0] == 0).sum() == len(collator.prompts["transcribe"].tail) + len(
        collator.encode(SENTENCES[0] + "<|im_end|>")
    )


def test_the_teacher_reads_the_transcript_where_the_student_hears_it(collator):
    batch = collator(clip_items())
    teacher = collator.tokenizer.decode(batch["teacher_ids"][1][batch["teacher_mask"][1].bool()])
    assert f"Utterance: {SENTENCES[1]}\nWrite down this utterance word for word." in teacher


def test_only_answers_are_labelled(collator):
    batch = collator(clip_items())
    for name in ("student", "teacher"):
        labels = batch[f"{name}_labels"][0]
        answer = labels[labels != IGNORE_INDEX]
        assert collator.tokenizer.decode(answer) == SENTENCES[0] + "<|im_end|>"


def test_ctc_targets_are_the_transcript_tokens(collator):
    batch = collator(clip_items())
    assert [collator.tokenizer.decode(list(t)) for t in batch["ctc_targets"]] == SENTENCES


def test_continuation_splits_each_sentence_in_two_seeded_halves(collator):
    first, again = collator(clip_items()), collator(clip_items())
    assert torch.equal(first["continue_ids"], again["continue_ids"])
    for row, sentence in enumerate(SENTENCES):
        ids = first["continue_ids"][row][first["continue_mask"][row].bool()]
        labels = first["continue_labels"][row]
        prompt = collator.tokenizer.decode(ids[labels[: len(ids)] == IGNORE_INDEX])
        answer = collator.tokenizer.decode(labels[labels != IGNORE_INDEX]).removesuffix("<|im_end|>")
        shown = prompt.split("Text: ")[1].split("\n")[0]
        assert shown and answer and f"{shown} {answer}" == sentence


def test_text_rows_are_refused(collator):
    example = SLUExample(id="t", locale="en-US", text="a b c", scenario="asr", action="transcribe")
    with pytest.raises(ValueError, match="clips only"):
        collator([SLUItem(example)])


def test_clips_heard_under_several_tasks_keep_one_each_and_the_teacher_asks_the_same(tiny_backbone):
    collator = PretrainCollator(load_processor(tiny_backbone).tokenizer, tuple(AUDIO_TASKS))
    items = [
        SLUItem(
            SLUExample(id=f"asr-{i}", locale="en-US", text=text, scenario="asr", action="transcribe"), *rest
        )
        for i, (text, rest) in enumerate((SENTENCES[i % 3], (torch.randn(128, 152), 150)) for i in range(12))
    ]
    tasks = [collator.task_of(item.example.id) for item in items]
    assert len(set(tasks)) > 2 and tasks == [collator.task_of(item.example.id) for item in items]
    batch = collator(items)
    decode = collator.tokenizer.decode
    for row, (item, task) in enumerate(zip(items, tasks, strict=True)):
        student = batch["student_ids"][row][
            batch["student_suffix"][batch["student_suffix"][:, 0] == row][:, 1]
        ]
        teacher = batch["teacher_ids"][row][
            batch["teacher_suffix"][batch["teacher_suffix"][:, 0] == row][:, 1]
        ]
        assert torch.equal(student, teacher)
        answer = AUDIO_TASKS[task].answer(item.example.text)
        assert decode(student).endswith(
            f"{AUDIO_TASKS[task].instruction}<|im_end|>\n<|im_start|>assistant\n{answer}<|im_end|>"
        )
        labels = batch["student_labels"][row]
        assert decode(labels[labels != IGNORE_INDEX]) == answer + "<|im_end|>"
    assert batch["ctc_targets"][0] == tuple(
        collator.encode(SENTENCES[0])
    )  # CTC reads the words, whatever the task


def test_an_unknown_audio_task_is_refused_with_the_known_ones(tiny_backbone):
    with pytest.raises(ValueError, match="unknown audio tasks.*transcribe, json"):
        PretrainCollator(load_processor(tiny_backbone).tokenizer, ("transcribe", "translate"))
