"""Word and character error rates of transcripts, pooled over a corpus.

One definition for every place that scores transcripts: the stand-in's validation, its export
(model card) and the cascade's ``transcribe``. Both texts are ``normalise``d first (NFC, lower case,
words only: letters and digits with their combining marks), so case and punctuation never count
as errors. Character errors include the spaces:
a word split in the wrong place costs one or two characters but two words, which is what the
character rate shows and the word rate hides.
"""

from __future__ import annotations

from typing import Literal

from slu_lightning.data.asr_corpus import normalise
from slu_lightning.evaluation.distance import edit_distance, jiwer_words

Unit = Literal["wer", "cer"]


def error_counts(references: list[str], hypotheses: list[str], unit: Unit) -> tuple[int, int]:
    """(errors, reference length) summed over all sentences, in words or in characters."""
    errors = total = 0
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        ref = _units(reference, unit)
        errors += edit_distance(ref, _units(hypothesis, unit))
        total += len(ref)
    return errors, total


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    """Word errors summed over all sentences divided by all reference words."""
    errors, words = error_counts(references, hypotheses, "wer")
    return errors / max(words, 1)


def corpus_cer(references: list[str], hypotheses: list[str]) -> float:
    """Character errors (spaces included) summed over all sentences divided by all reference characters."""
    errors, chars = error_counts(references, hypotheses, "cer")
    return errors / max(chars, 1)


def _units(text: str, unit: Unit) -> list[str] | str:
    words = jiwer_words(normalise(text))
    return words if unit == "wer" else " ".join(words)
