"""``slu-lightning coverage``: which SLU words the pretraining text never says, and how they are heard.

The ASR corpus keeps its sentences apart from the SLU templates, and with them much of the SLU
set's everyday vocabulary ("alarm", "lights", "mets", "tenho"). A recogniser learns to spell the
words it heard. This measures, per locale, the share of an SLU set's word tokens that the ASR
corpus's training text never contains. Given a backbone, it also measures how often the greedy CTC
read-out gets covered and uncovered words right on SLU-phrased clips spoken by held-out voices. The
second figure says how much of the SLU-phrased word error rate a wider pretraining vocabulary could
remove. Given several backbones, it compares each with the first on the same clips: the difference
in word error rate with a bootstrap interval and p-value over utterances.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from slu_lightning.arguments import positive_int
from slu_lightning.data.asr_corpus import SIZES as ASR_SIZES
from slu_lightning.data.asr_corpus import Size, default_asr_dir, normalise, plan_asr_corpus
from slu_lightning.data.demo_corpus import SIZES as DEMO_SIZES
from slu_lightning.data.records import SLUExample
from slu_lightning.evaluation.bootstrap import Difference, paired_bootstrap, unpaired_bootstrap
from slu_lightning.evaluation.error_rates import error_counts

RESAMPLES = 2000


def vocabulary(examples: Iterable[SLUExample]) -> dict[str, Counter]:
    """Word counts of ``examples``' texts per locale (``normalise``d as the error rates are)."""
    counts: dict[str, Counter] = {}
    for example in examples:
        counts.setdefault(example.locale, Counter()).update(normalise(example.text).split())
    return counts


def uncovered_words(examples: list[SLUExample], known: dict[str, Counter], top: int = 8) -> dict[str, dict]:
    """Per locale and ``all``: word tokens, the share of them absent from that locale's ``known``
    words, and the most frequent absent words."""
    said = vocabulary(examples)
    missing = {
        locale: Counter({w: n for w, n in words.items() if w not in known.get(locale, ())})
        for locale, words in said.items()
    }
    locales = sorted(said)
    said["all"] = sum((said[locale] for locale in locales), Counter())
    missing["all"] = sum((missing[locale] for locale in locales), Counter())
    return {
        locale: {
            "words": said[locale].total(),
            "uncovered": missing[locale].total() / max(said[locale].total(), 1),
            "most_common": missing[locale].most_common(top),
        }
        for locale in [*locales, "all"]
    }


def matched_positions(reference: list[str], hypothesis: list[str]) -> set[int]:
    """Positions of the reference words in a longest common subsequence with the hypothesis: the
    words a transcript got right, in order."""
    n, m = len(reference), len(hypothesis)
    longest = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            same = reference[i] == hypothesis[j]
            longest[i][j] = longest[i + 1][j + 1] + 1 if same else max(longest[i + 1][j], longest[i][j + 1])
    matched, i, j = set(), 0, 0
    while i < n and j < m:
        if reference[i] == hypothesis[j]:
            matched.add(i)
            i, j = i + 1, j + 1
        elif longest[i + 1][j] >= longest[i][j + 1]:
            i += 1
        else:
            j += 1
    return matched


def recognised_by_coverage(
    examples: list[SLUExample], hypotheses: list[str], known: dict[str, Counter]
) -> dict[str, dict[str, float]]:
    """``{"covered" | "uncovered": {"words": n, "recognised": share}}``: how often a reference word
    appears, in order, in its transcript, split by whether the pretraining text holds it."""
    tally = {"covered": [0, 0], "uncovered": [0, 0]}
    for example, hypothesis in zip(examples, hypotheses, strict=True):
        reference = normalise(example.text).split()
        matched = matched_positions(reference, normalise(hypothesis).split())
        for position, word in enumerate(reference):
            counts = tally["covered" if word in known.get(example.locale, ()) else "uncovered"]
            counts[0] += position in matched
            counts[1] += 1
    return {kind: {"words": n, "recognised": hit / max(n, 1)} for kind, (hit, n) in tally.items()}


def word_error_rows(examples: list[SLUExample], hypotheses: list[str]) -> np.ndarray:
    """``(N, 2)``: each utterance's word errors and reference words, the rows a bootstrap resamples."""
    pairs = zip(examples, hypotheses, strict=True)
    return np.array(
        [error_counts([example.text], [hypothesis], "wer") for example, hypothesis in pairs], float
    )


def pooled_wer(rows: np.ndarray) -> float:
    """The WER of ``word_error_rows``: all their errors over all their reference words."""
    return float(_wer(rows.sum(axis=0))["wer"])


def _wer(totals: np.ndarray) -> dict[str, np.ndarray]:
    return {"wer": totals[..., 0] / np.maximum(totals[..., 1], 1)}


def paired_wer(
    rows_a: np.ndarray, rows_b: np.ndarray, seed: int = 0, utterances: Sequence[str] | None = None
) -> Difference:
    """WER of B minus WER of A on the same recordings: the difference, its 95 % bootstrap interval
    and the two-sided p-value (utterances resampled with replacement, both systems alike).

    ``utterances`` names each row's utterance, so that the recordings of one utterance are drawn
    together (resampled as independent, they give intervals that are too narrow); ``None``: one
    recording per utterance."""
    clusters = np.arange(len(rows_a)) if utterances is None else _first_seen_numbers(utterances)
    return paired_bootstrap(rows_b, rows_a, clusters, "wer", metric_fn=_wer, n_resamples=RESAMPLES, seed=seed)


def _first_seen_numbers(utterances: Sequence[str]) -> np.ndarray:
    """``(N,)`` cluster ids ``0 .. C - 1``, numbered in the order the utterances first appear: with one
    row per utterance they are the row numbers, so the bootstrap draws what it drew before utterances
    were named (``bootstrap.cluster_ids``'s CRC order would redraw every committed interval)."""
    numbers: dict[str, int] = {}
    return np.array([numbers.setdefault(utterance, len(numbers)) for utterance in utterances])


def unpaired_wer(rows_a: np.ndarray, rows_b: np.ndarray, seed: int = 0) -> Difference:
    """WER of B minus WER of A on different utterances: each sample resampled on its own."""
    return unpaired_bootstrap(rows_b, rows_a, "wer", metric_fn=_wer, n_resamples=RESAMPLES, seed=seed)


def coverage_table(shares: dict[str, dict]) -> str:
    lines = [
        "| locale | SLU word tokens | not in the pretraining text | most frequent of those |",
        "|---|---|---|---|",
    ]
    for locale, share in shares.items():
        common = ", ".join(f"{word} ({count})" for word, count in share["most_common"])
        lines.append(f"| {locale} | {share['words']} | {share['uncovered']:.3f} | {common} |")
    return "\n".join(lines)


def recognition_table(recognised: dict[str, dict[str, float]]) -> str:
    lines = ["| SLU words | count | recognised |", "|---|---|---|"]
    lines += [f"| {kind} | {row['words']} | {row['recognised']:.3f} |" for kind, row in recognised.items()]
    return "\n".join(lines)


def comparison_table(
    rows: list[tuple[str, np.ndarray]],
    seed: int,
    what: str = "CTC read-out WER",
    label: str = "backbone",
    utterances: Sequence[str] | None = None,
) -> str:
    """Each row's WER minus the first one's, paired on the same recordings and resampled by
    utterance (``utterances``: each recording's, as in ``paired_wer``)."""
    (first, baseline), *others = rows
    count = len(baseline) if utterances is None else len(set(utterances))
    recordings = "" if count == len(baseline) else f" ({len(baseline)} recordings)"
    lines = [
        f"\n{what} against {first}, paired over {count} utterances{recordings} "
        f"({RESAMPLES} bootstrap resamples):\n",
        f"| {label} | WER | difference | 95 % CI | p |",
        "|---|---|---|---|---|",
    ]
    for name, other in others:
        d = paired_wer(baseline, other, seed, utterances)
        wer = pooled_wer(other)
        interval = f"[{d.low:+.3f}, {d.high:+.3f}]"
        lines.append(f"| {name} | {wer:.3f} | {d.difference:+.3f} | {interval} | {d.p_value:.3f} |")
    return "\n".join(lines)


def main(args: list[str]) -> None:
    from slu_lightning.pretrain.asr_eval import slu_phrased_sample, transcribe
    from slu_lightning.pretrain.module import TinyPretrainModule

    parser = argparse.ArgumentParser(prog="slu-lightning coverage", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--asr-size",
        default="large",
        choices=ASR_SIZES,
        help="ASR corpus size whose text to read (only planned)",
    )
    parser.add_argument(
        "--demo-size", default="small", choices=DEMO_SIZES, help="demo corpus whose test utterances to check"
    )
    parser.add_argument(
        "--backbone",
        action="append",
        default=[],
        help="also measure this backbone's CTC read-out on covered/uncovered words; repeat it to "
        "compare each backbone's WER with the first one's on the same clips",
    )
    parser.add_argument("--clips", type=positive_int, default=240, help="SLU-phrased clips to transcribe")
    parser.add_argument(
        "--everyday-words", type=int, default=0, help="the ASR corpus's everyday words (pretrain-tiny's)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parsed = parser.parse_args(args)
    asr_size: Size = parsed.asr_size
    seed, everyday = parsed.seed, parsed.everyday_words
    plan = plan_asr_corpus(
        default_asr_dir(asr_size, seed, everyday), size=asr_size, seed=seed, everyday_words=everyday
    )
    known = vocabulary(plan["train"])
    sample = slu_phrased_sample(parsed.clips, seed, parsed.demo_size)
    corpus = f"ASR corpus `{asr_size}`" + (f" with {everyday} everyday words" if everyday else "")
    print(f"{corpus} (train text) against {len(sample)} demo test utterances:\n")
    print(coverage_table(uncovered_words(sample, known)))
    rows = []
    for backbone in parsed.backbone:
        hypotheses = transcribe(TinyPretrainModule(backbone=backbone), sample, "ctc")["ctc"]
        errors = word_error_rows(sample, hypotheses)
        rows.append((backbone, errors))
        wer = pooled_wer(errors)
        print(f"\n{backbone}, greedy CTC read-out (WER {wer:.3f}), words recognised (in order):\n")
        print(recognition_table(recognised_by_coverage(sample, hypotheses, known)))
    if len(rows) > 1:
        print(comparison_table(rows, seed))
