"""The one example type that every corpus reader produces and everything downstream consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@runtime_checkable
class StoredClip(Protocol):
    """Encoded audio left where it was found (a dataset table's cell), read only when it is used.

    Defined here, not only for type checkers, so that ``SLUExample``'s annotations resolve
    (``typing.get_type_hints``, as signature-reading tools call it) without importing the decoder.
    """

    def encoded(self) -> bytes: ...


@dataclass(frozen=True)
class Entity:
    """One labelled span: its type (``date``, ``person``...) and its surface filler text."""

    type: str
    filler: str


@dataclass(frozen=True)
class SLUExample:
    """One utterance, as text or as speech, with its gold SLU labels.

    A SLURP utterance with four recordings becomes one text example and four speech examples; they
    share ``utterance_id`` so that bootstrap resampling can cluster recordings of one utterance.
    """

    id: str
    """Unique key of this example; for SLURP speech the recording file name (the scorer's key)."""
    locale: str
    """BCP-47 style locale of the utterance, e.g. ``en-US`` or ``fr-FR``."""
    text: str
    """The transcript. For speech examples it is the reference transcript, not a model input."""
    scenario: str
    action: str
    entities: tuple[Entity, ...] = ()
    audio: str | bytes | StoredClip | None = None
    """Path to an audio file, encoded audio bytes, a clip left in its dataset table (Speech-MASSIVE,
    ``TableAudio``), or ``None`` for text."""
    utterance_id: str = ""
    """Groups the recordings of one utterance; defaults to ``id``."""
    source: str = ""
    """Where the example came from (``slurp``, ``massive``, ``speech-massive``, ``demo``...)."""
    meta: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    """Free-form string attributes (SLURP mic type, demo voice, template id) for error analysis."""

    def __post_init__(self) -> None:
        if not self.utterance_id:
            object.__setattr__(self, "utterance_id", self.id)

    @property
    def intent(self) -> str:
        """The intent label as SLURP's scorer builds it: ``scenario_action``."""
        return f"{self.scenario}_{self.action}"

    @property
    def is_speech(self) -> bool:
        return self.audio is not None

    def as_text(self) -> SLUExample:
        """The same utterance as a text-only example (keeps ``utterance_id``)."""
        return SLUExample(
            id=self.utterance_id,
            locale=self.locale,
            text=self.text,
            scenario=self.scenario,
            action=self.action,
            entities=self.entities,
            audio=None,
            utterance_id=self.utterance_id,
            source=self.source,
            meta=dict(self.meta),
        )


def in_locales(examples: list[SLUExample], locales: list[str] | None) -> list[SLUExample]:
    """The ``examples`` of ``locales`` (all of them for None): a run's ``train_locales`` or
    ``eval_locales``."""
    if locales is None:
        return examples
    wanted = set(locales)
    return [example for example in examples if example.locale in wanted]
