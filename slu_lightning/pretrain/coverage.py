"""``slu-lightning coverage``: which SLU words the pretraining text never says, and how they are heard.

The ASR corpus keeps its sentences apart from the SLU templates, and with them much of the SLU
set's everyday vocabulary ("alarm", "lights", "mets", "tenho"). A recogniser learns to spell the
words it heard. This measures, per locale, the share of an SLU set's word tokens that the ASR
corpus's training text never contains. Given a backbone, it also measures how often the greedy CTC
read-out gets covered and uncovered words right on SLU-phrased clips spoken by held-out voices. The
second figure says how much of the SLU-phrased word error rate a wider pretraining vocabulary could
remove.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable

from slu_lightning.data.asr_corpus import Size, default_asr_dir, normalise, plan_asr_corpus
from slu_lightning.data.records import SLUExample


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


def main(args: list[str]) -> None:
    from slu_lightning.pretrain.asr_eval import slu_phrased_sample, transcribe
    from slu_lightning.pretrain.module import TinyPretrainModule

    parser = argparse.ArgumentParser(prog="slu-lightning coverage", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--asr-size", default="large", help="ASR corpus size whose text to read (only planned)"
    )
    parser.add_argument("--demo-size", default="small", help="demo corpus whose test utterances to check")
    parser.add_argument(
        "--backbone", help="also measure this backbone's CTC read-out on covered/uncovered words"
    )
    parser.add_argument("--clips", type=int, default=240, help="SLU-phrased clips to transcribe")
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
    if parsed.backbone:
        hypotheses = transcribe(TinyPretrainModule(backbone=parsed.backbone), sample, "ctc")["ctc"]
        print(f"\n{parsed.backbone}, greedy CTC read-out, words recognised (in order, in the transcript):\n")
        print(recognition_table(recognised_by_coverage(sample, hypotheses, known)))
