"""What ``predict`` reads: its inputs (``predict_audio``), each bad one named or counted, and nothing
of the corpus that it does not use."""

from pathlib import Path

import lightning as L

from slu_lightning.data.corpora import ManifestCorpus
from slu_lightning.data.datamodules import TextOnlyDataModule
from slu_lightning.model.module import GenerationSettings, SLUModule
from slu_lightning.task import PromptTemplate


class CountedCorpus(ManifestCorpus):
    """The toy corpus, counting the ``prepare`` calls that would build or check a real one's files."""

    def __init__(self, root: Path):
        super().__init__(*(str(root / f"{split}.jsonl") for split in ("train", "dev", "test")))
        self.prepared = 0

    def prepare(self) -> None:
        self.prepared += 1


def test_predict_prepares_the_corpus_only_for_a_labels_prompt_and_test_still_prepares_it(
    toy_corpus, tmp_path
):
    """A cascade whose test transcripts are elsewhere, or a demo corpus never built here, must not stop
    a predict that reads only its clips; a ``{labels}`` prompt reads the training transcripts."""
    module = SLUModule(backbone="tiny-test", generation=GenerationSettings(num_beams=1, max_new_tokens=2))
    trainer = L.Trainer(logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    clip = str(toy_corpus / "audio" / "test" / "test-0.flac")

    def prepared(stage: str, prompt: PromptTemplate) -> int:
        corpus = CountedCorpus(toy_corpus)
        data = TextOnlyDataModule(corpus, predict_audio=clip, max_eval_examples=1)
        data.connect(module.tokenizer, prompt, module.n_mels)
        getattr(trainer, stage)(module, data)
        return corpus.prepared

    labels = PromptTemplate(instruction="{input}\nLabels: {labels}\nAnswer in JSON.")
    assert prepared("predict", PromptTemplate()) == 0
    assert prepared("predict", labels) == 1
    assert prepared("test", PromptTemplate()) == 1
