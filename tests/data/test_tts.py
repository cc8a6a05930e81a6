import time

import numpy as np
import pytest

from slu_lightning.data.tts import SAMPLE_RATE, EspeakSynthesizer

SENTENCE = "wake me up at seven thirty tomorrow"  # 7 words


@pytest.fixture(scope="module")
def tts() -> EspeakSynthesizer:
    return EspeakSynthesizer()


def test_speech_is_16khz_float32_in_range_with_a_plausible_duration(tts):
    audio = tts.synthesize(SENTENCE, "en-us")
    assert tts.sample_rate == SAMPLE_RATE == 16_000
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.abs(audio).max() <= 1.0
    assert np.sqrt(np.mean(audio**2)) > 0.01  # not silence
    seconds = len(audio) / SAMPLE_RATE
    assert 1.2 < seconds < 4.0  # 7 words at 175 words per minute: ~2.4 s plus a short tail


def test_rate_changes_the_duration(tts):
    slow = len(tts.synthesize(SENTENCE, "en-us", rate=120))
    fast = len(tts.synthesize(SENTENCE, "en-us", rate=300))
    assert fast < 0.7 * slow


def test_same_call_gives_the_same_samples_whatever_came_before(tts):
    first = tts.synthesize(SENTENCE, "en-us+f2", rate=160, pitch=60)
    tts.synthesize("quelque chose de tout à fait différent", "fr+m3", rate=200, pitch=30)
    time.sleep(1.0)  # eSpeak seeds its noise from the clock in seconds unless we fix the seed
    again = tts.synthesize(SENTENCE, "en-us+f2", rate=160, pitch=60)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, tts.synthesize(SENTENCE, "en-us+f2", rate=160, pitch=40))


@pytest.mark.parametrize(
    ("voice", "text"),
    [("fr+f3", "réveille-moi demain à sept heures"), ("de+m4", "mach das licht in der küche aus")],
)
def test_french_and_german_voices_speak(tts, voice, text):
    audio = tts.synthesize(text, voice)
    assert 1.0 < len(audio) / SAMPLE_RATE < 4.0
    assert np.sqrt(np.mean(audio**2)) > 0.01


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"voice": "xx-klingon"}, "unknown eSpeak voice 'xx-klingon'"),
        ({"voice": "en+m99"}, "unknown eSpeak voice variant 'm99'"),
        ({"voice": "+m1"}, "has no language"),
        ({"voice": "en", "rate": 10}, "rate must be in"),
        ({"voice": "en", "pitch": 101}, "pitch must be in"),
    ],
)
def test_bad_arguments_raise_clear_errors(tts, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tts.synthesize("hello", **kwargs)


def test_empty_text_is_refused(tts):
    with pytest.raises(ValueError, match="empty text"):
        tts.synthesize("  ", "en")


@pytest.mark.parametrize("text", ["hello\x00world", "\x00hello", "hello\x00"])
def test_text_holding_a_nul_is_refused_not_cut_short(tts, text):
    with pytest.raises(ValueError, match="NUL character"):
        tts.synthesize(text, "en")


@pytest.mark.parametrize("text", [".", "-", "...", "\ufeff", "\u200b"])
def test_text_that_gives_no_speech_is_refused_not_returned_as_silence(tts, text):
    with pytest.raises(ValueError, match="gives no speech with eSpeak voice 'es\\+klatt'"):
        tts.synthesize(text, "es+klatt", rate=450, pitch=0)
    # The quietest and shortest speech measured, one letter at the top rate in a klatt variant, is kept.
    assert 0.03 < len(tts.synthesize("y", "es+klatt", rate=450, pitch=0)) / SAMPLE_RATE < 0.5
