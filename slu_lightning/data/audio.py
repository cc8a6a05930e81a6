"""Decode one audio clip into the 16 kHz mono float waveform Qwen2-Audio expects, or say why not.

Decoding goes through ``soundfile`` (libsndfile ships inside its wheel); ``torchaudio.load`` needs
system FFmpeg libraries that a pip-only install lacks. Resampling uses
``torchaudio.functional.resample``, which needs no FFmpeg. Every problem becomes a ``DataError``
naming the file and the record, so a ``SkipLog`` can raise it or count it; the reasons are fixed
strings so that ``SkipLog`` groups them.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from slu_lightning.data.errors import DataError
from slu_lightning.data.records import StoredClip

MAX_ENCODER_SECONDS = 30.0
"""Qwen2-Audio's encoder takes 3000 mel frames at a 10 ms hop: at most 30 s of audio per clip."""

MIN_ENCODER_SECONDS = 0.02
"""Accepted clips are longer than this. Qwen2-Audio's encoder turns a clip of 20 ms or less (320
samples at 16 kHz, at most 2 mel frames) into no audio token, so the model would answer from the
prompt alone."""

# libsndfile's open log prints "data : <size in header> (should be <size present>)" for a WAV whose
# data chunk claims more bytes than the file holds; it then silently decodes the shorter part.
_SHORT_DATA_CHUNK = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.MULTILINE)
# Streaming writers that do not know the length leave 0 or 0xFFFFFFFF in the header: not truncation.
_UNKNOWN_LENGTH_SIZES = {0, 0xFFFFFFFF}
_UNKNOWN_FRAMES = 2**63 - 1
"""libsndfile's frame count for a FLAC whose header leaves the total sample count unknown (0, as
encoders writing to a pipe do): not a length, and libsndfile cannot decode such a file to its end."""


AudioSource = str | Path | bytes | StoredClip
"""A clip as examples hold it: a file path, its encoded bytes, or a ``StoredClip``."""


def load_audio(
    source: AudioSource,
    *,
    record: str | None = None,
    sample_rate: int = 16000,
    max_seconds: float = MAX_ENCODER_SECONDS,
) -> torch.Tensor:
    """Decode an audio file (or its encoded bytes) into a mono float32 waveform at ``sample_rate``.

    Multi-channel audio is downmixed by the mean of its channels; other sample rates are resampled.

    Args:
        source: Path to an audio file (WAV, FLAC, OGG, MP3...), or the encoded file's bytes, held
            or stored (Speech-MASSIVE stores audio that way).
        record: Id of the record the audio belongs to; only used to name it in errors.
        sample_rate: Rate of the returned waveform in Hz; Qwen2-Audio's feature extractor wants 16 kHz.
        max_seconds: Longest accepted clip. Qwen2-Audio's encoder sees at most 30 s; a longer clip
            would be cut silently by the feature extractor, so it is rejected here instead.

    Returns:
        The waveform, shape ``(samples,)``, float32, nominally in [-1, 1].

    Raises:
        DataError: The file is missing, unreadable, corrupt, truncated or in an unsupported format,
            holds no samples or non-finite samples, lasts ``MIN_ENCODER_SECONDS`` or less,
            or is longer than ``max_seconds``.
    """
    source = _encoded(source)
    file = _describe(source)
    try:
        with sf.SoundFile(_open_target(source, file, record)) as audio:
            declared_frames, source_rate = audio.frames, audio.samplerate
            _check_header(audio, max_seconds, file, record)
            samples = audio.read(dtype="float32", always_2d=True)  # (frames, channels)
    except sf.SoundFileError as error:
        raise _unreadable(error, file, record) from error

    if len(samples) < declared_frames:
        raise DataError(
            "truncated audio: decoding stopped before the frame count in the header", file=file, record=record
        )
    if len(samples) == 0:
        raise DataError("empty audio: 0 samples", file=file, record=record)
    _check_duration(len(samples), source_rate, max_seconds, file, record)
    if not np.isfinite(samples).all():
        raise DataError("audio contains NaN or infinite samples", file=file, record=record)

    waveform = torch.from_numpy(samples).mean(dim=1)  # (samples,)
    if source_rate != sample_rate:
        waveform = AF.resample(waveform, orig_freq=source_rate, new_freq=sample_rate)  # (samples',)
    return waveform


def audio_seconds(source: AudioSource, *, record: str | None = None) -> float:
    """Duration of a clip in seconds, read from its header without decoding the samples.

    Cheap enough for corpus statistics and length bucketing; ``load_audio`` still checks the decoded
    length, since a few formats (MP3) only estimate it in the header.

    Raises:
        DataError: The file is missing or its header cannot be read.
    """
    source = _encoded(source)
    file = _describe(source)
    try:
        info = sf.info(_open_target(source, file, record))
    except sf.SoundFileError as error:
        raise _unreadable(error, file, record) from error
    _check_known_length(info.frames, file, record)
    return info.frames / info.samplerate


def checked_seconds(
    source: AudioSource, *, record: str | None = None, max_seconds: float = MAX_ENCODER_SECONDS
) -> float:
    """Duration of a clip in seconds after every check its header allows, without decoding it.

    The data modules run it on every clip before the first batch, so a missing, unreadable, empty,
    too short, too long or (WAV) truncated file is named, or skipped and counted, before training starts
    rather than inside a loader worker. What only decoding shows (non-finite samples, a compressed
    stream that ends early) is left to ``load_audio``.

    Raises:
        DataError: as ``load_audio`` for those cases.
    """
    source = _encoded(source)
    file = _describe(source)
    try:
        with sf.SoundFile(_open_target(source, file, record)) as audio:
            _check_header(audio, max_seconds, file, record)
            return audio.frames / audio.samplerate
    except sf.SoundFileError as error:
        raise _unreadable(error, file, record) from error


def _encoded(source: AudioSource) -> str | Path | bytes:
    """A stored clip's bytes, read now; a path or held bytes as they are."""
    return source.encoded() if isinstance(source, StoredClip) else source


def _describe(source: str | Path | bytes) -> str:
    """How errors name the audio: its path, or where its bytes were read from and their size."""
    if isinstance(source, bytes):
        origin = getattr(source, "origin", "in-memory audio")
        return f"{origin} ({len(source)} bytes in memory)"
    return str(source)


def _open_target(source: str | Path | bytes, file: str, record: str | None) -> str | io.BytesIO:
    """What ``soundfile`` opens; a missing path gets its own error (libsndfile only says 'System error')."""
    if isinstance(source, bytes):
        if not source:
            raise DataError("empty audio: 0 bytes", file=file, record=record)
        return io.BytesIO(source)
    if Path(source).is_dir():  # a manifest's audio path that names its folder, not a clip
        raise DataError("audio path is a directory, not a file", file=file, record=record)
    if not Path(source).is_file():
        raise DataError("audio file not found", file=file, record=record)
    if Path(source).stat().st_size == 0:  # libsndfile would only say "Format not recognised"
        raise DataError("empty audio: a file of 0 bytes", file=file, record=record)
    return str(source)


def _check_header(audio: sf.SoundFile, max_seconds: float, file: str, record: str | None) -> None:
    """What an open file's header tells: no frames, too long, or a data chunk shorter than declared."""
    if audio.frames == 0:
        raise DataError("empty audio: 0 samples", file=file, record=record)
    _check_known_length(audio.frames, file, record)
    _check_duration(audio.frames, audio.samplerate, max_seconds, file, record)
    if _header_claims_missing_data(audio.extra_info):
        raise DataError(
            "truncated audio: the header promises more data than the file holds", file=file, record=record
        )


def _check_known_length(frames: int, file: str, record: str | None) -> None:
    if frames == _UNKNOWN_FRAMES:
        raise DataError(
            "the header does not give the clip's length (a FLAC written to a pipe, its total sample "
            "count left at 0), and it cannot be decoded to its end; re-encode it to a file "
            "(ffmpeg -i IN OUT.flac)",
            file=file,
            record=record,
        )


def _check_duration(frames: int, rate: int, max_seconds: float, file: str, record: str | None) -> None:
    if frames / rate <= MIN_ENCODER_SECONDS:
        raise DataError(
            f"audio of {MIN_ENCODER_SECONDS * 1000:g} ms or less (Qwen2-Audio's encoder gives it no "
            "audio token)",
            file=file,
            record=record,
        )
    if frames / rate > max_seconds:
        raise DataError(
            f"audio longer than {max_seconds:g} s (Qwen2-Audio's encoder sees at most 30 s per clip)",
            file=file,
            record=record,
        )


def _header_claims_missing_data(open_log: str) -> bool:
    """True when libsndfile's open log says the data chunk is shorter than the header claims."""
    return any(
        int(claimed) not in _UNKNOWN_LENGTH_SIZES and int(present) < int(claimed)
        for claimed, present in _SHORT_DATA_CHUNK.findall(open_log)
    )


def _unreadable(error: sf.SoundFileError, file: str, record: str | None) -> DataError:
    """The error for audio libsndfile cannot decode, with its message minus the varying prefixes."""
    message = (getattr(error, "error_string", "") or str(error)).removeprefix("Error : ").strip()
    return DataError(f"unreadable, corrupt or unsupported audio ({message})", file=file, record=record)
