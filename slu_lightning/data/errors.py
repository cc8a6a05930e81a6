"""Bad-input policy: a clear error naming the file and record, or a counted, logged skip."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Literal

log = logging.getLogger(__name__)

BadInputPolicy = Literal["error", "skip"]


class DataError(ValueError):
    """A problem with one input file or record, with enough context to find and fix it."""

    def __init__(self, message: str, *, file: str | None = None, record: str | int | None = None):
        where = ", ".join(
            part
            for part in (f"file {file}" if file else "", f"record {record}" if record is not None else "")
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.file = file
        self.record = record
        self.reason = message


class ConfigError(ValueError):
    """A setting that cannot work, alone or with the others (a speech proportion outside [0, 1], a
    curriculum whose epochs are not ``trainer.max_epochs``): the CLI says it in one line."""


class SkipLog:
    """Applies a ``BadInputPolicy``: raises under ``error``, counts and logs under ``skip``.

    Counts are kept per reason so a run can report how many records it dropped and why. A record
    is counted once however often it is read: a manifest's text and speech views, the label
    inventory and the noise calibration all read the training file.
    """

    def __init__(self, policy: BadInputPolicy = "error", max_logged: int = 20):
        if policy not in ("error", "skip"):
            raise ValueError(f"bad-input policy must be 'error' or 'skip', got {policy!r}")
        self.policy = policy
        self.max_logged = max_logged
        self.counts: Counter[str] = Counter()
        self._seen: dict[str, str] = {}  # each counted error's text: its reason

    def handle(self, error: DataError) -> None:
        """Raise ``error`` under the ``error`` policy; otherwise count and log it, unless the same
        error (its file, record and reason) was counted already."""
        if self.policy == "error":
            raise error
        self.note(error)

    def note(self, error: DataError) -> None:
        """Count and log, under either policy, a record left out for a property of the data itself
        that the user cannot fix (a recording real SLURP lists under two utterances)."""
        if self._count(str(error), error.reason) and self.total <= self.max_logged:
            log.warning("skipped: %s", error)

    def _count(self, text: str, reason: str) -> bool:
        """Count a record not counted yet; whether it was new."""
        if text in self._seen:
            return False
        self._seen[text] = reason
        self.counts[reason] += 1
        return True

    def records(self) -> dict[str, str]:
        """Each counted error's text and reason: what another rank's ``absorb`` merges."""
        return dict(self._seen)

    def absorb(self, records: dict[str, str]) -> None:
        """Count the records another ``SkipLog`` (another rank's) counted and this one has not."""
        for text, reason in records.items():
            self._count(text, reason)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        if not self.counts:
            return "no records skipped"
        parts = ", ".join(f"{n} x {reason}" for reason, n in self.counts.most_common())
        return f"skipped {self.total} record{'' if self.total == 1 else 's'}: {parts}"
