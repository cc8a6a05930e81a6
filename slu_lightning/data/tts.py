"""Offline text-to-speech with eSpeak NG, for the synthetic demo corpus.

eSpeak NG ships as a shared library inside the ``espeakng-loader`` wheel, so no system package is
needed. We call it through ctypes in synchronous mode: ``espeak_Synth`` returns only once the whole
utterance has been handed to our callback as 22.05 kHz int16 chunks, which we resample to 16 kHz.

The library is not re-entrant (one lock serialises every call in the process) and, used naively,
not deterministic. Two causes, both measured here:

- ``espeak_Initialize`` seeds eSpeak's noise generator from the clock; ``espeak_ng_SetRandSeed``
  after it fixes the seed.
- Part of the synthesis state lives in C function statics that no API call resets (the
  pitch-flutter phase in ``wavegen.c``, among others): the same text spoken twice gives different
  samples. Each utterance therefore loads a fresh instance of the library (``dlopen``, speak,
  ``dlclose``; a few ms). The instance is a private copy of the ``.so`` file, so that another
  user of eSpeak in the process (a phonemizer, say) cannot keep it loaded and its statics alive.

With both, the samples depend only on the arguments.
"""

from __future__ import annotations

import _ctypes
import ctypes
import shutil
import tempfile
import threading
from pathlib import Path

import espeakng_loader
import numpy as np
import torch
import torchaudio

SAMPLE_RATE = 16_000
"""Rate of the returned audio: the rate Qwen2-Audio's feature extractor expects."""

SPEECH_LEVEL = 0.001
"""-60 dBFS (33 steps of 16-bit audio): a sample above it is sound, not silence."""
MIN_SPEECH_SECONDS = 0.01
"""Sound that text must give to count as spoken. Text eSpeak does not read (".", "-", a BOM) gives
only zero samples; one letter at 450 words per minute gives at least 0.035 s in every installed
variant, the quiet ``klatt`` ones included."""

RATE_RANGE = (80, 450)  # words per minute: espeakRATE_MINIMUM..espeakRATE_MAXIMUM in speak_lib.h
PITCH_RANGE = (0, 100)  # espeakPITCH: 50 is the voice's normal pitch

# Constants from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_ESPEAK_RATE = 1
_ESPEAK_PITCH = 3
_EE_OK = 0

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_NOISE_SEED = 1
"""Seed of eSpeak's noise generator (breathiness, fricative noise) for every utterance."""

_LOCK = threading.Lock()
_private_library: Path | None = None
_private_dir: tempfile.TemporaryDirectory | None = None  # removed when the process exits


def voice_variants() -> frozenset[str]:
    """Names of the installed voice variants (``m1``, ``f2``, ``klatt``...) usable after ``+``."""
    variant_dir = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    return frozenset(path.name for path in variant_dir.iterdir())


def _library_path() -> Path:
    """The private copy of libespeak-ng, made on first use."""
    global _private_library, _private_dir
    if _private_library is None:
        _private_dir = tempfile.TemporaryDirectory(prefix="slu-lightning-espeak-")
        _private_library = Path(_private_dir.name) / Path(espeakng_loader.get_library_path()).name
        shutil.copy2(espeakng_loader.get_library_path(), _private_library)
    return _private_library


def _speak(text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int]:
    """Speak with a freshly loaded library; returns int16 samples and their rate. Hold ``_LOCK``."""
    chunks: list[np.ndarray] = []

    def collect(wav: ctypes.POINTER(ctypes.c_short), n_samples: int, _events: int) -> int:
        if wav and n_samples > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        return 0  # 0 = continue synthesis

    callback = _SynthCallback(collect)
    lib = ctypes.CDLL(str(_library_path()))
    try:
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data_path = espeakng_loader.get_data_path()
        native_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if native_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed with the voice data at {data_path}")
        try:
            lib.espeak_ng_SetRandSeed(_NOISE_SEED)
            if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise ValueError(f"unknown eSpeak voice {voice!r} (try 'en', 'fr', 'de+m3', 'es+f2')")
            lib.espeak_SetSynthCallback(callback)
            lib.espeak_SetParameter(_ESPEAK_RATE, rate, 0)
            lib.espeak_SetParameter(_ESPEAK_PITCH, pitch, 0)
            encoded = text.encode("utf-8")
            status = lib.espeak_Synth(
                encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
            )
            if status != _EE_OK:
                raise RuntimeError(f"espeak_Synth failed with status {status} for {text!r}")
        finally:
            lib.espeak_Terminate()
    finally:
        _ctypes.dlclose(lib._handle)
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return samples, native_rate


class EspeakSynthesizer:
    """Speaks text with an eSpeak NG voice and returns 16 kHz float32 mono audio.

    Voices are ``<language>[+<variant>]``: languages such as ``en``, ``en-us``, ``fr``, ``de``,
    ``it``, ``es``, ``pt``; variants such as ``m1``..``m7`` and ``f1``..``f4``. The output depends
    only on the arguments: the same call gives the same samples, whatever was spoken before.
    """

    sample_rate = SAMPLE_RATE

    def __init__(self) -> None:
        self._variants = voice_variants()

    def synthesize(self, text: str, voice: str, rate: int = 175, pitch: int = 50) -> np.ndarray:
        """Speak ``text`` with ``voice``.

        Args:
            text: What to say, as it should be read (numbers already written out as words).
            voice: eSpeak voice name, e.g. ``fr+f2``.
            rate: Speaking rate in words per minute (80-450).
            pitch: Base pitch, 0-100; 50 is the voice's normal pitch.

        Returns:
            A float32 array of samples in [-1, 1] at ``SAMPLE_RATE``.

        Raises:
            ValueError: empty text, text holding a NUL character, text that gives no speech (only
                punctuation or invisible characters), an unknown voice or variant, or rate/pitch out
                of range.
        """
        if not text.strip():
            raise ValueError("cannot synthesise empty text")
        if "\x00" in text:  # eSpeak reads C strings: it would stop there
            raise ValueError(f"cannot synthesise text holding a NUL character: {text!r}")
        language, _, variant = voice.partition("+")
        if not language:
            raise ValueError(f"eSpeak voice {voice!r} has no language (try 'en', 'fr+m3')")
        if variant and variant not in self._variants:
            raise ValueError(f"unknown eSpeak voice variant {variant!r} in {voice!r} (try m1..m7, f1..f4)")
        if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
            raise ValueError(f"rate must be in {RATE_RANGE} words per minute, got {rate}")
        if not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]:
            raise ValueError(f"pitch must be in {PITCH_RANGE}, got {pitch}")
        with _LOCK:
            samples, native_rate = _speak(text, voice, rate, pitch)
        waveform = torch.from_numpy(samples.astype(np.float32) / 32768.0)  # (native_samples,)
        resampled = torchaudio.functional.resample(waveform, native_rate, SAMPLE_RATE)  # (samples,)
        audio = resampled.clamp_(-1.0, 1.0).numpy()
        _check_spoken(audio, text, voice)
        return audio


def _check_spoken(audio: np.ndarray, text: str, voice: str) -> None:
    """Refuse the near-silence eSpeak returns for text it does not read, rather than pass it off as
    an utterance of ``text``."""
    sound = np.count_nonzero(np.abs(audio) > SPEECH_LEVEL) / SAMPLE_RATE
    if sound < MIN_SPEECH_SECONDS:
        raise ValueError(
            f"{text!r} gives no speech with eSpeak voice {voice!r} ({sound * 1000:.0f} ms above "
            f"{SPEECH_LEVEL:.1%} of full scale): it holds nothing the voice reads, such as only "
            "punctuation or invisible characters"
        )
