from pathlib import Path

from slu_lightning.data.corpora import CombinedCorpus, ManifestCorpus, MassiveTextCorpus, SlurpCorpus
from slu_lightning.data.errors import SkipLog

FIXTURES = Path(__file__).parents[1] / "fixtures"


def test_manifest_text_view_is_one_example_per_utterance(toy_corpus):
    corpus = ManifestCorpus(str(toy_corpus / "train.jsonl"), str(toy_corpus / "dev.jsonl"))
    speech, text = corpus.speech("train", SkipLog()), corpus.text("train", SkipLog())
    assert len(speech) == len(text) == 24
    assert all(e.is_speech for e in speech) and not any(e.is_speech for e in text)
    assert corpus.speech("test", SkipLog()) == corpus.speech("dev", SkipLog())  # test defaults to dev


def test_slurp_corpus_reads_text_per_sentence_and_speech_per_recording(tmp_path):
    corpus = SlurpCorpus(str(FIXTURES / "slurp"), str(tmp_path))
    text, speech = corpus.text("test", SkipLog()), corpus.speech("test", SkipLog())
    assert len(text) == 4 and len(speech) == 16
    assert {e.utterance_id for e in speech} == {e.id for e in text}


def test_combined_corpus_adds_target_language_text_to_source_speech(toy_corpus):
    source = ManifestCorpus(str(toy_corpus / "train.jsonl"), str(toy_corpus / "dev.jsonl"))
    target_text = MassiveTextCorpus(str(FIXTURES / "massive" / "data"), ["fr-FR"])
    combined = CombinedCorpus([source, target_text])
    massive = target_text.text("train", SkipLog())
    assert massive and {e.locale for e in massive} == {"fr-FR"}
    assert combined.text("train", SkipLog()) == source.text("train", SkipLog()) + massive
    assert combined.speech("train", SkipLog()) == source.speech("train", SkipLog())
    assert " + " in combined.describe()
