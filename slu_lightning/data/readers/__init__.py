"""Corpus readers: each turns one corpus on disk into a list of ``SLUExample``."""

from slu_lightning.data.readers.italic import read_italic
from slu_lightning.data.readers.manifest import read_manifest, write_manifest
from slu_lightning.data.readers.massive import read_massive
from slu_lightning.data.readers.slurp import read_slurp
from slu_lightning.data.readers.speech_massive import read_speech_massive

__all__ = [
    "read_italic",
    "read_manifest",
    "read_massive",
    "read_slurp",
    "read_speech_massive",
    "write_manifest",
]
