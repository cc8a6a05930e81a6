import pytest
import torch

from slu_lightning.pretrain.objectives import (
    CTC_SCALE,
    ctc_log_probs,
    ctc_logits,
    ctc_loss,
    greedy_ctc_ids,
    hidden_distillation_loss,
    span_means,
    split_clips,
    token_alignment_loss,
    token_segments,
)

BLANK = 0


@pytest.fixture
def embeddings() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)  # (vocab, hidden)


def test_ctc_logits_stay_float32_under_bf16_autocast():
    torch.manual_seed(0)
    audio, vocab = torch.randn(3, 40, 64), torch.randn(500, 64)
    reference = CTC_SCALE * torch.nn.functional.cosine_similarity(
        audio.double()[:, :, None], vocab.double()[None, None], dim=-1
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = ctc_logits(audio.bfloat16(), vocab)
    assert logits.dtype == torch.float32
    # from bf16 audio vectors; a bf16 product would add errors of up to 0.06 on top
    assert (logits.double() - reference).abs().max() < 0.05
    assert (ctc_logits(audio, vocab).double() - reference).abs().max() < 1e-4


def test_split_clips_follows_counts():
    audio = torch.arange(10.0)[:, None]
    parts = split_clips(audio, torch.tensor([3, 7]))
    assert [p.shape[0] for p in parts] == [3, 7] and parts[1][0, 0] == 3


def test_greedy_read_out_merges_repeats_and_drops_blanks(embeddings):
    clip = 10 * embeddings[torch.tensor([1, 1, 0, 2, 2, 0, 2, 3])]
    assert greedy_ctc_ids([clip, clip[3:]], embeddings, BLANK) == [[1, 2, 2, 3], [2, 2, 3]]


def test_ctc_prefers_the_spoken_tokens(embeddings):
    target = [[1, 2, 3]]
    spoken = [5 * embeddings[torch.tensor([0, 1, 1, 0, 2, 0, 3, 0])]]
    other = [5 * embeddings[torch.tensor([0, 4, 4, 0, 5, 0, 5, 0])]]
    assert ctc_loss(spoken, target, embeddings, BLANK) < 0.5 < ctc_loss(other, target, embeddings, BLANK)


def test_ctc_of_a_batch_is_the_token_weighted_mean_of_its_clips(embeddings):
    torch.manual_seed(1)
    clips, targets = [torch.randn(9, 8), torch.randn(5, 8)], [[1, 2, 3], [4]]
    pair = ctc_loss(clips, targets, embeddings, BLANK)
    alone = [ctc_loss([c], [t], embeddings, BLANK) * len(t) for c, t in zip(clips, targets, strict=True)]
    assert torch.allclose(pair, sum(alone) / 4, atol=1e-5)


def test_forced_alignment_finds_each_tokens_frames(embeddings):
    clip = 10 * embeddings[torch.tensor([1, 1, 0, 2, 2, 2, 0])]
    assert token_segments(ctc_log_probs(clip, embeddings), [1, 2], BLANK) == [(0, 2), (3, 6)]
    assert token_segments(ctc_log_probs(clip[:1], embeddings), [1, 2], BLANK) is None  # too short


def test_alignment_loss_is_zero_at_the_token_embeddings_and_teaches_towards_them(embeddings):
    exact = embeddings[torch.tensor([1, 1, 0, 2, 0])] * 1.0
    loss, aligned = token_alignment_loss([exact], [[1, 2]], embeddings, BLANK)
    assert aligned == 2 and loss < 1e-6

    torch.manual_seed(2)
    embeddings = embeddings.clone().requires_grad_()
    clip = torch.randn(12, 8, requires_grad=True)
    optimizer = torch.optim.Adam([clip], lr=0.05)
    first = None
    for _ in range(60):
        loss, _ = token_alignment_loss([clip], [[3, 4, 5]], embeddings, BLANK)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.2 * first
    assert embeddings.grad is None  # the token embeddings are the target, never moved by this loss


def test_span_means_average_each_span_and_pass_gradients_back():
    torch.manual_seed(4)
    frames = torch.randn(9, 3, requires_grad=True)
    spans = [(0, 2), (2, 3), (5, 9)]
    means = span_means(frames, spans)
    assert torch.allclose(means, torch.stack([frames[a:b].mean(dim=0) for a, b in spans]), atol=1e-6)
    means.sum().backward()
    assert torch.allclose(
        frames.grad[:, 0], torch.tensor([1 / 2, 1 / 2, 1, 0, 0, 1 / 4, 1 / 4, 1 / 4, 1 / 4])
    )


def test_alignment_of_a_batch_is_the_token_weighted_mean_of_its_clips(embeddings):
    first = embeddings[torch.tensor([1, 1, 0, 2, 0])] + 0.3
    second = embeddings[torch.tensor([0, 3, 3, 0, 4, 5, 5])] * 2.0
    targets = [[1, 2], [3, 4, 5]]
    pair, aligned = token_alignment_loss(
        [first, torch.randn(1, 8), second], [[1, 2], [1, 2, 3], [3, 4, 5]], embeddings, BLANK
    )
    alone = [
        token_alignment_loss([c], [t], embeddings, BLANK)[0] * len(t)
        for c, t in zip([first, second], targets, strict=True)
    ]
    assert aligned == 5 and torch.allclose(pair, sum(alone) / 5, atol=1e-6)


def test_alignment_skips_clips_too_short_for_their_transcript(embeddings):
    loss, aligned = token_alignment_loss([torch.randn(2, 8)], [[1, 2, 3]], embeddings, BLANK)
    assert aligned == 0 and loss.item() == 0.0


def test_distillation_is_zero_when_student_matches_and_only_moves_the_student():
    torch.manual_seed(3)
    teacher = tuple(torch.randn(2, 5, 4) for _ in range(3))
    rows = torch.tensor([[0, 1], [0, 2], [1, 3], [1, 4]])
    assert hidden_distillation_loss(teacher, teacher, rows, rows) < 1e-9

    student = tuple(t.clone().requires_grad_() for t in teacher)
    shifted = torch.tensor([[0, 0], [0, 1], [1, 2], [1, 3]])  # the same states read one position early
    loss = hidden_distillation_loss(student, teacher, shifted, rows)
    assert loss > 0.1
    loss.backward()
    assert student[0].grad is None and student[1].grad is not None  # [0] (the embeddings) is not matched
