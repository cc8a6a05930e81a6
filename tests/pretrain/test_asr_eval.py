"""Error rates of the stand-in's read-outs, overall and per locale."""

import pytest

from slu_lightning.data.records import SLUExample
from slu_lightning.pretrain import asr_eval

TEXTS = [("en-US", "turn on the light"), ("fr-FR", "allume la lumière"), ("en-US", "wake me up")]


def test_error_rates_are_given_per_locale_and_pool_back_to_the_overall_rate(monkeypatch):
    examples = [SLUExample(str(i), locale, text, "iot", "on") for i, (locale, text) in enumerate(TEXTS)]
    written = {"ctc": ["turn of the light", "allume lumière", "wake me up"], "decoder": [t for _, t in TEXTS]}
    monkeypatch.setattr(asr_eval, "transcribe", lambda module, examples, readouts, batch_size: written)
    rates = asr_eval.measure_error_rates(module=None, examples=examples)
    assert rates["ctc"]["wer"] == pytest.approx(2 / 10) and rates["decoder"]["wer"] == 0
    assert rates["by_locale"]["en-US"]["clips"] == 2 and rates["by_locale"]["fr-FR"]["clips"] == 1
    assert rates["by_locale"]["en-US"]["ctc"]["wer"] == pytest.approx(1 / 7)  # one substitution in 7 words
    assert rates["by_locale"]["fr-FR"]["ctc"]["wer"] == pytest.approx(1 / 3)  # one deletion in 3
    assert rates["by_locale"]["fr-FR"]["ctc"]["cer"] == pytest.approx(3 / len("allume la lumière"))
    assert list(rates["by_locale"]) == ["en-US", "fr-FR"]
