"""The SLU task itself: the prompt, the one-line JSON target, and a parser that never raises.

Collate (targets), decoding (parsing) and metrics all use this module, so the three cannot
disagree on the format. No torch here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from slu_lightning.data.records import Entity, SLUExample

AUDIO_PLACEHOLDER = "<|audio_bos|><|AUDIO|><|audio_eos|>"
END_OF_TURN = "<|im_end|>"


@dataclass(frozen=True)
class PromptTemplate:
    """The prompt wording, kept in config and saved with every run.

    The text and audio prompts differ only in ``text_input`` versus ``audio_input``: text-only to
    speech transfer depends on the two looking alike to the model.
    """

    system: str = "You are a helpful assistant."
    """System turn of the Qwen chat template."""
    instruction: str = (
        "{input}\nGive the scenario, action and entities of this utterance as one line of JSON."
    )
    """User turn; ``{input}`` is replaced by ``text_input`` or ``audio_input``. An optional
    ``{labels}`` is replaced by the label inventory (scenarios, actions, entity types) of the training
    data: the zero-shot baseline lists the labels in the prompt."""
    text_input: str = "Utterance: {transcript}"
    """How a transcript is shown; must contain ``{transcript}``."""
    audio_input: str = f"Utterance: {AUDIO_PLACEHOLDER}"
    """How a clip is shown; must contain the audio placeholder exactly once."""

    def __post_init__(self) -> None:
        problems = []
        if "{input}" not in self.instruction:
            problems.append("instruction must contain '{input}'")
        if "{transcript}" not in self.text_input:
            problems.append("text_input must contain '{transcript}'")
        if self.audio_input.count(AUDIO_PLACEHOLDER) != 1:
            problems.append(f"audio_input must contain {AUDIO_PLACEHOLDER!r} exactly once")
        if problems:
            raise ValueError("invalid prompt template: " + "; ".join(problems))

    def user_turn(self, transcript: str | None, labels: str = "") -> str:
        """The user message: the transcript when given, else the audio placeholder."""
        shown = self.audio_input if transcript is None else self.text_input.format(transcript=transcript)
        return self.instruction.replace("{labels}", labels).replace("{input}", shown)

    def render_prompt(self, transcript: str | None, labels: str = "") -> str:
        """The full chat-formatted prompt, ending where the assistant's answer begins.

        Identical to Qwen2-Audio's chat template applied to one system and one user turn with
        ``add_generation_prompt=True`` (tests check this against the tokenizer's template).
        """
        return (
            f"<|im_start|>system\n{self.system}{END_OF_TURN}\n"
            f"<|im_start|>user\n{self.user_turn(transcript, labels)}{END_OF_TURN}\n"
            "<|im_start|>assistant\n"
        )


def label_inventory(examples: list[SLUExample]) -> str:
    """The labels of ``examples`` as one line, for a prompt's ``{labels}`` slot."""
    scenarios = sorted({e.scenario for e in examples})
    actions = sorted({e.action for e in examples})
    types = sorted({entity.type for e in examples for entity in e.entities})
    return (
        f"Scenarios: {', '.join(scenarios)}. Actions: {', '.join(actions)}. Entity types: {', '.join(types)}."
    )


def format_target(scenario: str, action: str, entities: tuple[Entity, ...] | list[Entity]) -> str:
    """The answer as one line of JSON with keys in a fixed order (no end-of-turn token)."""
    return json.dumps(
        {
            "scenario": scenario,
            "action": action,
            "entities": [{"type": e.type, "filler": e.filler} for e in entities],
        },
        ensure_ascii=False,
    )


def target_for(example: SLUExample) -> str:
    """What the model is trained to emit for ``example``, ending with the end-of-turn token."""
    return format_target(example.scenario, example.action, example.entities) + END_OF_TURN


class ParseStatus(StrEnum):
    """What the parser saw in a generated string."""

    VALID = "valid"
    """One JSON object with every key, and nothing before or after it."""
    TRAILING = "trailing"
    """A complete, well-formed object followed by other text (ignored)."""
    LEADING = "leading"
    """A complete, well-formed object after other text, such as a preamble or braces that hold no
    JSON (ignored; text after the object too): ``json.loads`` refuses it as it refuses trailing text."""
    TRUNCATED = "truncated"
    """An object that does not parse, in an answer without its end of turn (cut off by the token
    limit); what could be closed was kept."""
    MALFORMED = "malformed"
    """An object that does not parse, though the model ended its answer (``END_OF_TURN``): written
    wrong, not cut off; repaired and kept like a truncated one."""
    MISSING_KEYS = "missing_keys"
    """JSON, but keys missing or of the wrong type; what was usable was kept."""
    INVALID = "invalid"
    """No JSON object at all."""


@dataclass(frozen=True)
class Prediction:
    """A parsed model output. Fields the output lacked are empty strings or an empty tuple."""

    scenario: str
    action: str
    entities: tuple[Entity, ...]
    status: ParseStatus

    @property
    def intent(self) -> str:
        return f"{self.scenario}_{self.action}"

    @property
    def is_valid(self) -> bool:
        return self.status is ParseStatus.VALID

    def to_json(self) -> dict:
        return {
            "scenario": self.scenario,
            "action": self.action,
            "entities": [{"type": e.type, "filler": e.filler} for e in self.entities],
        }


def parse_prediction(text: str) -> Prediction:
    """Turn any generated string into a ``Prediction``; never raises.

    The answer is the first complete object; braces before it that hold no JSON (``Note {x}:``)
    are text before it (``leading``). With none complete, the object at the first brace is cut back
    to its longest prefix that closes into JSON, and that is scored: ``truncated`` when ``text``
    lacks the end of turn (``SLUModule.generate_texts`` keeps it on answers the model ended), else
    ``malformed``. Both count as invalid outputs."""
    ended = END_OF_TURN in text
    text = text.replace(END_OF_TURN, "").strip()
    start = text.find("{")
    if start < 0:
        return Prediction("", "", (), ParseStatus.INVALID)
    try:
        obj, begin, end = _first_complete_object(text, start)
        status = _around_the_object(text[:begin], text[end:])
    except (json.JSONDecodeError, RecursionError):  # nesting past Python's recursion limit
        obj = _close_truncated(text[start:])
        status = ParseStatus.MALFORMED if ended else ParseStatus.TRUNCATED
    if not isinstance(obj, dict):
        return Prediction("", "", (), ParseStatus.INVALID)
    return _from_object(obj, status)


def _first_complete_object(text: str, start: int) -> tuple[dict, int, int]:
    """The first JSON object in ``text`` from the brace at ``start``, with where it begins and
    ends. A brace group that does not parse is skipped whole, so that an object nested in it (an
    entity of a broken answer) is never taken for the answer. Raises the first group's error where
    no complete object follows it; a group that never closes ends the search (the rest is in it)."""
    decoder = json.JSONDecoder()
    first_error, begin = None, start
    while begin >= 0:
        try:
            obj, end = decoder.raw_decode(text, begin)
            return obj, begin, end
        except (json.JSONDecodeError, RecursionError) as error:
            first_error = first_error or error
        end = _group_end(text, begin)
        begin = -1 if end is None else text.find("{", end)
    raise first_error


def _around_the_object(before: str, after: str) -> ParseStatus:
    """The status of a complete object by the text around it (``text`` is stripped already)."""
    if before:
        return ParseStatus.LEADING
    return ParseStatus.TRAILING if after.strip() else ParseStatus.VALID


def _from_object(obj: dict, status: ParseStatus) -> Prediction:
    complete = True
    scenario, action = obj.get("scenario"), obj.get("action")
    if not isinstance(scenario, str):
        scenario, complete = "", False
    if not isinstance(action, str):
        action, complete = "", False
    scenario, action = _encodable(scenario), _encodable(action)
    raw_entities = obj.get("entities")
    if not isinstance(raw_entities, list):
        raw_entities, complete = [], False
    entities = []
    for item in raw_entities:
        if (
            isinstance(item, dict)
            and isinstance(item.get("type"), str)
            and isinstance(item.get("filler"), str)
        ):
            entities.append(Entity(_encodable(item["type"]), _encodable(item["filler"])))
        else:
            complete = False
    if not complete and status in (ParseStatus.VALID, ParseStatus.LEADING, ParseStatus.TRAILING):
        status = ParseStatus.MISSING_KEYS
    return Prediction(scenario, action, tuple(entities), status)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _encodable(text: str) -> str:
    """``text`` with each lone surrogate (a JSON escape such as ``\\ud83d`` with no partner, which a
    model can write) replaced by U+FFFD, so the answer can be written as UTF-8."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def _close_truncated(fragment: str) -> dict | None:
    """Best-effort repair of a JSON object cut off mid-way: close what is open, longest first."""
    for cut in range(len(fragment), 0, -1):
        closers = _closers(fragment[:cut])
        if closers is None:
            continue
        try:
            obj = json.loads(fragment[:cut] + closers)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _closers(prefix: str) -> str | None:
    """The characters that would close every open string, array and object of ``prefix``."""
    state: _Nesting | None = ([], False, False)
    for state in _nesting(prefix):
        if state is None:
            return None
    stack, in_string, escaped = state
    if escaped:
        return None
    return ('"' if in_string else "") + "".join(reversed(stack))


def _group_end(text: str, start: int) -> int | None:
    """Where the brace group opening at ``text[start]`` ends (just past its closing brace, braces
    in strings skipped); None if it never closes."""
    for offset, state in enumerate(_nesting(text[start:]), start=1):
        if state is not None and not state[0]:
            return start + offset
    return None


_Nesting = tuple[list[str], bool, bool]
"""The closers of the open arrays and objects (innermost last), whether a string is open, and
whether a backslash in it escapes the next character."""


def _nesting(text: str) -> Iterator[_Nesting | None]:
    """The nesting after each character of ``text`` (one list, updated); None, and the end, at a
    closer with nothing open."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]":
            if not stack:
                yield None
                return
            stack.pop()
        yield stack, in_string, escaped
