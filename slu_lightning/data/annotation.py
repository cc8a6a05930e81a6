"""Inline slot annotations: ``wake me up at [time : 5:30] [date : tomorrow]``.

MASSIVE's ``annot_utt`` and SLURP's ``sentence_annotation`` mark each entity in place as
``[type : filler]``. Fillers may themselves contain colons (times such as ``5:30``), so the type is
split from the filler at the first ``" : "`` only.
"""

from __future__ import annotations

from slu_lightning.data.records import Entity

SEPARATOR = " : "


def parse_annotation(annot: str) -> tuple[str, tuple[Entity, ...]]:
    """Split an annotated utterance into its plain text and its entities, in order.

    The text is the annotation with every ``[type : filler]`` replaced by its filler and runs of
    whitespace collapsed to one space, so it matches the corpus's plain ``utt``/``sentence``.

    Raises:
        ValueError: unbalanced or nested brackets, a bracket without ``" : "``, or an empty type
            or filler. The message quotes the annotation; readers add the file and line.
    """
    pieces: list[str] = []
    entities: list[Entity] = []
    position = 0
    while position < len(annot):
        start = annot.find("[", position)
        stray_close = annot.find("]", position, len(annot) if start < 0 else start)
        if stray_close >= 0:
            raise ValueError(f"unbalanced ']' at character {stray_close} in annotation {annot!r}")
        if start < 0:
            pieces.append(annot[position:])
            break
        end = annot.find("]", start + 1)
        nested = annot.find("[", start + 1, len(annot) if end < 0 else end)
        if end < 0 or nested >= 0:
            raise ValueError(f"unbalanced '[' at character {start} in annotation {annot!r}")
        entity = _parse_entity(annot[start + 1 : end], annot)
        pieces.extend((annot[position:start], entity.filler))
        entities.append(entity)
        position = end + 1
    return " ".join("".join(pieces).split()), tuple(entities)


def _parse_entity(inside: str, annot: str) -> Entity:
    type_, separator, filler = inside.partition(SEPARATOR)
    if not separator:
        raise ValueError(f"entity [{inside}] has no {SEPARATOR!r} between type and filler in {annot!r}")
    type_, filler = type_.strip(), " ".join(filler.split())
    if not type_ or not filler:
        raise ValueError(f"entity [{inside}] has an empty type or filler in {annot!r}")
    return Entity(type_, filler)
