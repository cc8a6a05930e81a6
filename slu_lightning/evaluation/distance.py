"""Word and character distances between a gold entity filler and a predicted one.

The official SLURP scorer (pswietojanski/slurp, ``scripts/evaluation/metrics/distance.py``) takes
the word distance from ``jiwer.wer`` pinned at jiwer 2.0.0 and the char distance from
``textdistance``'s normalised Levenshtein. Newer jiwer releases changed their defaults and their
handling of empty strings, so this module reimplements both, reproducing the pinned behaviour:

- words are found as jiwer 2.0.0's default transform finds them: runs of two or more whitespace
  characters become one space, the ends are stripped, the text is split on single spaces and
  empty pieces are dropped; no lower-casing, no punctuation removal;
- WER is the word edit distance divided by the number of reference words, so it is not capped at 1
  (``"a"`` against ``"b c d"`` is 3.0);
- a reference without words raises ``ValueError`` (jiwer 2.0.0 refuses an empty ground truth); an
  empty hypothesis is allowed and gives 1.0;
- the char distance is Levenshtein / max(len(reference), len(hypothesis)) over raw characters, 0.0
  when both strings are empty (textdistance's ``normalized_distance``).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence

_WHITESPACE_RUN = re.compile(r"\s\s+")


def jiwer_words(text: str) -> list[str]:
    """Split ``text`` into words exactly as jiwer 2.0.0's default transform does."""
    pieces = _WHITESPACE_RUN.sub(" ", text).strip().split(" ")
    return [piece for piece in pieces if piece.strip()]


def edit_distance(reference: Sequence[Hashable], hypothesis: Sequence[Hashable]) -> int:
    """Levenshtein distance (unit-cost substitutions, insertions, deletions) between two sequences.

    Works on strings (characters) and on lists of words alike.
    """
    previous = list(range(len(hypothesis) + 1))
    for i, ref_item in enumerate(reference, start=1):
        current = [i]
        for j, hyp_item in enumerate(hypothesis, start=1):
            current.append(
                min(
                    previous[j] + 1,  # delete ref_item
                    current[j - 1] + 1,  # insert hyp_item
                    previous[j - 1] + (ref_item != hyp_item),  # match or substitute
                )
            )
        previous = current
    return previous[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word edit distance over the number of reference words, as jiwer 2.0.0's ``wer``.

    Raises:
        ValueError: if ``reference`` has no words; jiwer 2.0.0, and with it the official scorer,
            refuses an empty ground truth too.
    """
    ref_words = jiwer_words(reference)
    if not ref_words:
        raise ValueError(f"the reference must contain at least one word, got {reference!r}")
    return edit_distance(ref_words, jiwer_words(hypothesis)) / len(ref_words)


def char_distance(reference: str, hypothesis: str) -> float:
    """Character Levenshtein distance over the longer string's length, in [0, 1]; 0.0 for two empties."""
    longest = max(len(reference), len(hypothesis))
    if longest == 0:
        return 0.0
    return edit_distance(reference, hypothesis) / longest
