from collections import Counter
from dataclasses import replace

import pytest

from slu_lightning.data.errors import ConfigError
from slu_lightning.data.records import SLUExample
from slu_lightning.data.subsets import PAPER_PROPORTIONS, SpeechSubset, write_ids


def speech_examples(n_utterances: int = 200, recordings: int = 3) -> list[SLUExample]:
    intents = [
        ("alarm", "set"),
        ("alarm", "query"),
        ("weather", "query"),
        ("music", "play"),
        ("news", "query"),
    ]
    return [
        SLUExample(
            f"u{u}-r{r}",
            "en-US",
            f"text {u}",
            *intents[u % len(intents)],
            audio=f"/a/u{u}-r{r}.flac",
            utterance_id=f"u{u}",
        )
        for u in range(n_utterances)
        for r in range(recordings)
    ]


def test_subsets_are_nested_across_the_paper_proportions():
    speech = speech_examples()
    chosen = [{e.id for e in SpeechSubset(p, seed=3).select(speech)} for p in PAPER_PROPORTIONS]
    for smaller, larger in zip(chosen, chosen[1:], strict=False):
        assert smaller <= larger
    assert chosen[0] == set() and chosen[-1] == {e.id for e in speech}


def test_utterance_unit_keeps_all_recordings_and_the_right_count():
    speech = speech_examples(200, 3)
    kept = SpeechSubset(0.10, unit="utterance").select(speech)
    per_utterance = Counter(e.utterance_id for e in kept)
    assert len(per_utterance) == 20 and set(per_utterance.values()) == {3}


def test_recording_unit_counts_recordings():
    kept = SpeechSubset(0.10, unit="recording").select(speech_examples(200, 3))
    assert len(kept) == 60
    assert len({e.utterance_id for e in kept}) > 20  # recordings spread over utterances


def test_subsets_are_stratified_by_intent():
    kept = SpeechSubset(0.05, unit="utterance", seed=1).select(speech_examples(400, 1))
    counts = Counter(e.intent for e in kept)
    assert sum(counts.values()) == 20
    assert set(counts.values()) == {4}  # 5 intents x 4: exactly proportional


def test_seed_changes_the_subset_and_is_reproducible():
    speech = speech_examples()
    first = SpeechSubset(0.1, seed=0).select(speech)
    assert first == SpeechSubset(0.1, seed=0).select(speech)
    assert first != SpeechSubset(0.1, seed=1).select(speech)


def test_ids_file_round_trip(tmp_path):
    speech = speech_examples()
    kept = SpeechSubset(0.25, seed=5).select(speech)
    path = write_ids(tmp_path / "ids.txt", kept)
    assert SpeechSubset(ids_file=str(path)).select(speech) == kept


def test_ids_file_with_unknown_ids_fails_clearly(tmp_path):
    (tmp_path / "ids.txt").write_text("nope\n")
    with pytest.raises(ValueError, match="not among the .* speech training examples"):
        SpeechSubset(ids_file=str(tmp_path / "ids.txt")).select(speech_examples())


def test_a_proportion_that_keeps_no_speech_is_refused_not_trained_as_text_only():
    speech = speech_examples()
    with pytest.raises(ConfigError, match="speech proportion 0.002 of 200 utterances keeps none"):
        SpeechSubset(0.002).select(speech)
    assert SpeechSubset(0.0).select(speech) == [] and len(SpeechSubset(0.003).select(speech)) == 3


def test_proportion_out_of_range_is_refused():
    with pytest.raises(ValueError, match="within"):
        SpeechSubset(1.5)


def test_locales_subsample_the_source_and_keep_the_target_few_shot_speech_whole():
    """The few-shot setting: 5 % of the French speech beside every German few-shot recording."""
    french = [replace(e, locale="fr-FR") for e in speech_examples(200, 1)]
    german = [replace(e, id=f"de-{e.id}", utterance_id=f"de-{e.utterance_id}") for e in speech_examples(6, 1)]
    german = [replace(e, locale="de-DE") for e in german]
    subset = SpeechSubset(0.05, seed=0, locales=["fr-FR"])
    kept = subset.select(french + german)
    assert Counter(e.locale for e in kept) == {"fr-FR": 10, "de-DE": 6}
    assert [e for e in kept if e.locale == "fr-FR"] == SpeechSubset(0.05, seed=0).select(french)
    assert len(SpeechSubset(0.05, seed=0).select(french + german)) == round(0.05 * 206)  # the pooled draw
    with pytest.raises(ValueError, match=r"locales \['it-IT'\] match no speech training example"):
        SpeechSubset(0.05, locales=["it-IT"]).select(french + german)
    with pytest.raises(ValueError, match=r"locales \['de_DE'\] match no speech training example"):
        SpeechSubset(0.05, locales=["fr-FR", "de_DE"]).select(french + german)  # de-DE would stay whole
