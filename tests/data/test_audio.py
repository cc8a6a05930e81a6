"""load_audio, audio_seconds and checked_seconds on real files written with soundfile: good inputs and
every bad case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from slu_lightning.data.audio import audio_seconds, checked_seconds, load_audio
from slu_lightning.data.errors import DataError, SkipLog
from slu_lightning.data.features import LogMelExtractor
from slu_lightning.model.audio_encoder import audio_token_count

PCM16_STEP = 1 / 32768  # quantisation step of 16-bit PCM, the default subtype of WAV and FLAC


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(waveform: torch.Tensor, rate: int) -> float:
    spectrum = torch.fft.rfft(waveform).abs()  # (samples // 2 + 1,)
    return float(spectrum.argmax()) * rate / waveform.numel()


@pytest.mark.parametrize("suffix", ["wav", "flac"])
def test_mono_16k_round_trip(tmp_path: Path, suffix: str):
    signal = sine(440, 1.25, 16000)
    path = tmp_path / f"clip.{suffix}"
    sf.write(path, signal, 16000)

    waveform = load_audio(path)

    assert waveform.dtype == torch.float32
    assert waveform.shape == (20000,)
    assert np.abs(waveform.numpy() - signal).max() <= PCM16_STEP


def test_stereo_is_downmixed_by_channel_mean(tmp_path: Path):
    left, right = sine(300, 0.5, 16000), sine(700, 0.5, 16000, amplitude=0.2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")

    waveform = load_audio(path)

    np.testing.assert_allclose(waveform.numpy(), (left + right) / 2, atol=1e-7)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_rates_are_resampled_to_16k(tmp_path: Path, rate: int):
    path = tmp_path / f"r{rate}.flac"
    sf.write(path, sine(440, 2.0, rate), rate)

    waveform = load_audio(path)

    assert waveform.shape == (32000,)  # 2 s at 16 kHz
    assert dominant_frequency(waveform, 16000) == pytest.approx(440, abs=0.5)  # 0.5 Hz bins over 2 s
    assert waveform.abs().max() == pytest.approx(0.5, abs=0.01)


def test_bytes_decode_like_the_file(tmp_path: Path):
    path = tmp_path / "clip.flac"
    sf.write(path, sine(1000, 0.3, 48000), 48000)

    from_bytes = load_audio(path.read_bytes(), record="utt-1")

    torch.testing.assert_close(from_bytes, load_audio(path), rtol=0, atol=0)


def test_exactly_30_seconds_is_accepted(tmp_path: Path):
    path = tmp_path / "thirty.wav"
    sf.write(path, sine(200, 30.0, 8000), 8000)

    assert load_audio(path).shape == (480000,)  # 30 s at 16 kHz: Qwen2-Audio's full window


def write_bad_file(tmp_path: Path, case: str) -> Path:
    """One file per bad case; each must give a DataError whose reason contains the key word below."""
    good = sine(440, 2.0, 16000)
    names = {
        "truncated flac": "cut.flac",
        "truncated wav": "cut.wav",
        "truncated mp3": "cut.mp3",
        "unknown-length flac": "piped.flac",
    }
    path = tmp_path / names.get(case, f"{case}.wav")
    if case == "missing":
        return path
    if case == "directory":
        path.mkdir()
        return path
    if case == "truncated flac":
        sf.write(tmp_path / "whole.flac", good, 16000)
        path.write_bytes((tmp_path / "whole.flac").read_bytes()[:3000])
    elif case == "truncated wav":
        sf.write(tmp_path / "whole.wav", good, 16000)
        path.write_bytes((tmp_path / "whole.wav").read_bytes()[:20000])
    elif case == "truncated mp3":  # decodes without error, but fewer frames than the header promises
        sf.write(tmp_path / "whole.mp3", good, 16000)
        path.write_bytes((tmp_path / "whole.mp3").read_bytes()[:2000])
    elif case == "text":
        path.write_text("slurp_id,sentence\n1,wake me up at five\n")
    elif case == "empty":
        sf.write(path, np.zeros(0, np.float32), 16000)
    elif case == "zero bytes":
        path.write_bytes(b"")
    elif case == "nan":
        signal = good.copy()
        signal[100] = np.nan
        sf.write(path, signal, 16000, subtype="FLOAT")
    elif case == "too long":
        sf.write(path, sine(200, 30.5, 8000), 8000)
    elif case == "unknown-length flac":
        path.write_bytes(flac_of_unknown_length(tmp_path, good))
    return path


def flac_of_unknown_length(tmp_path: Path, samples: np.ndarray) -> bytes:
    """A FLAC whose STREAMINFO leaves the total sample count at 0, "unknown", as an encoder writing
    to a pipe does (the FLAC format allows it; libsndfile then reports 2**63 - 1 frames)."""
    sf.write(tmp_path / "whole.flac", samples, 16000)
    data = bytearray((tmp_path / "whole.flac").read_bytes())
    start = 4 + 4 + 10  # "fLaC", the block header, then STREAMINFO's block and frame sizes
    packed = int.from_bytes(data[start : start + 8], "big")  # rate, channels, bits, 36-bit count
    data[start : start + 8] = (packed & ~((1 << 36) - 1)).to_bytes(8, "big")
    return bytes(data)


@pytest.mark.parametrize(
    ("case", "reason_word"),
    [
        ("missing", "not found"),
        ("directory", "audio path is a directory, not a file"),
        ("truncated flac", "unreadable"),
        ("truncated wav", "truncated"),
        ("truncated mp3", "truncated"),
        ("text", "unreadable"),
        ("empty", "empty"),
        ("zero bytes", "empty audio: a file of 0 bytes"),
        ("nan", "NaN"),
        ("too long", "30 s"),
        ("unknown-length flac", "does not give the clip's length"),
    ],
)
def test_bad_files_raise_data_error_naming_file_and_record(tmp_path: Path, case: str, reason_word: str):
    path = write_bad_file(tmp_path, case)

    with pytest.raises(DataError) as caught:
        load_audio(path, record="slurp-42")

    message = str(caught.value)
    assert str(path) in message
    assert "slurp-42" in message
    assert reason_word in caught.value.reason
    assert caught.value.file == str(path)
    assert caught.value.record == "slurp-42"


@pytest.mark.parametrize("rate", [16000, 44100])
def test_clips_too_short_for_an_audio_token_are_refused_by_both_checks(tmp_path: Path, rate: int):
    """A clip of 20 ms or less has no <|AUDIO|> token: the model would answer from the prompt alone."""
    short, shortest_kept = tmp_path / "click.wav", tmp_path / "blip.wav"
    sf.write(short, sine(440, 0.020, rate), rate)
    sf.write(shortest_kept, sine(440, 0.021, rate), rate)

    for check in (load_audio, checked_seconds):
        with pytest.raises(DataError, match="20 ms or less") as caught:
            check(short, record="r1")
        assert caught.value.file == str(short)
    features, n_frames = LogMelExtractor()(load_audio(shortest_kept))
    assert int(audio_token_count(torch.tensor([n_frames]))[0]) == 1


def test_too_long_says_why(tmp_path: Path):
    with pytest.raises(DataError, match="Qwen2-Audio's encoder sees at most 30 s"):
        load_audio(write_bad_file(tmp_path, "too long"))


def test_corrupt_bytes_raise_data_error_naming_record():
    garbage = np.random.default_rng(0).bytes(4000)

    with pytest.raises(DataError, match="Format not recognised") as caught:
        load_audio(garbage, record="massive-fr-7")

    assert "massive-fr-7" in str(caught.value)
    assert "4000 bytes" in str(caught.value)


def test_reasons_are_fixed_strings_so_skip_log_groups_them(tmp_path: Path):
    skips = SkipLog("skip")
    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_text("not audio")
        try:
            load_audio(tmp_path / name, record=name)
        except DataError as error:
            skips.handle(error)

    assert skips.counts == {"unreadable, corrupt or unsupported audio (Format not recognised.)": 2}


def test_audio_seconds_reads_the_header(tmp_path: Path):
    path = tmp_path / "clip.flac"
    sf.write(path, sine(440, 2.5, 44100), 44100)

    assert audio_seconds(path) == pytest.approx(2.5)
    assert audio_seconds(path.read_bytes()) == pytest.approx(2.5)
    with pytest.raises(DataError, match="does not give the clip's length"):
        audio_seconds(flac_of_unknown_length(tmp_path, sine(440, 2.0, 16000)))
    with pytest.raises(DataError, match="not found"):
        audio_seconds(tmp_path / "nope.flac", record="r1")


@pytest.mark.parametrize(
    ("case", "found_by_header"),
    [
        ("missing", True),
        ("truncated wav", True),
        ("text", True),
        ("empty", True),
        ("too long", True),
        ("unknown-length flac", True),
        ("truncated flac", False),  # the header is intact; decoding fails
        ("truncated mp3", False),
        ("nan", False),
    ],
)
def test_the_header_check_finds_what_a_header_shows_with_load_audios_reason(
    tmp_path: Path, case: str, found_by_header: bool
):
    path = write_bad_file(tmp_path, case)
    with pytest.raises(DataError) as loading:
        load_audio(path, record="r")
    if not found_by_header:
        assert checked_seconds(path, record="r") == pytest.approx(2.0, abs=0.1)
        return
    with pytest.raises(DataError) as checking:
        checked_seconds(path, record="r")
    assert checking.value.reason == loading.value.reason and checking.value.file == str(path)


def test_the_header_check_passes_a_good_clip_with_its_length(tmp_path: Path):
    path = tmp_path / "clip.wav"
    sf.write(path, sine(440, 2.5, 22050), 22050)
    assert checked_seconds(path) == pytest.approx(2.5) == checked_seconds(path.read_bytes())
