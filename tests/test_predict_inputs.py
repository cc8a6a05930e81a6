"""What ``predict`` reads: its inputs (``predict_audio``), each bad one named or counted, and nothing
of the corpus that it does not use."""

import codecs
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import soundfile

from slu_lightning.data.corpora import ManifestCorpus
from slu_lightning.data.datamodules import TextOnlyDataModule
from slu_lightning.data.errors import DataError
from slu_lightning.data.predict_inputs import audio_inputs
from slu_lightning.data.readers.manifest import read_manifest, write_manifest
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


def ready_to_predict(toy_corpus: Path, source: Path, **settings) -> TextOnlyDataModule:
    """A data module set up to predict ``source``: its inputs named, their headers checked."""
    data = TextOnlyDataModule(CountedCorpus(toy_corpus), predict_audio=str(source), **settings)
    data.setup("predict")
    return data


def predicted(toy_corpus: Path, source: Path, **settings) -> list[str]:
    """The clips ``predict`` would decode from ``source``, by name."""
    data = ready_to_predict(toy_corpus, source, **settings)
    return [Path(example.audio).name for example, _ in data.eval_sets["predict"]]


def test_an_aiff_clip_is_audio_and_a_file_not_utf8_text_is_named_not_read_as_a_list(toy_corpus, tmp_path):
    """Not a list of audio paths: an AIFF clip is audio; an M4A clip (which libsndfile does not
    decode) or a list saved as Latin-1 is an error naming the file and what predict takes."""
    soundfile.write(tmp_path / "clip.aiff", np.full(16000, 0.1, dtype="float32"), 16000, format="AIFF")
    assert predicted(toy_corpus, tmp_path / "clip.aiff") == ["clip.aiff"]
    (tmp_path / "clip.m4a").write_bytes(b"\x00\x00\x00\x1cftypM4A \x00\x00\x02\x00M4A isom")
    with pytest.raises(DataError, match=r"clip.m4a: not UTF-8 text \(byte 0x00 on line 1\), .*\.wav, \.flac"):
        audio_inputs(str(tmp_path / "clip.m4a"))
    (tmp_path / "latin1.txt").write_bytes("clip.aiff\ncaf\u00e9.wav\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt: not UTF-8 text \(byte 0xe9 on line 2\).*re-save"):
        audio_inputs(str(tmp_path / "latin1.txt"))
    (tmp_path / "bom.txt").write_bytes(codecs.BOM_UTF8 + b"clip.aiff\n")  # as Notepad saves it
    assert predicted(toy_corpus, tmp_path / "bom.txt") == ["clip.aiff"]


def test_a_malformed_manifest_row_stops_predict_or_under_skip_is_counted_like_a_missing_clip(
    toy_corpus, tmp_path, caplog
):
    rows = read_manifest(toy_corpus / "test.jsonl")[:3]
    rows[1] = replace(rows[1], audio=str(tmp_path / "missing.wav"))
    manifest = write_manifest(tmp_path / "rows.jsonl", rows)
    with manifest.open("a") as rows_file:
        rows_file.write('{"id": "broken", "locale": "en-US"\n')
    with pytest.raises(DataError, match=r"rows.jsonl, record line 4: not valid JSON"):
        ready_to_predict(toy_corpus, manifest)
    with caplog.at_level("WARNING"):
        skipping = ready_to_predict(toy_corpus, manifest, bad_input="skip")
    assert [example.id for example, _ in skipping.eval_sets["predict"]] == [rows[0].id, rows[2].id]
    assert skipping.skips.counts == {"audio file not found": 1, "not valid JSON (Expecting ',' delimiter)": 1}
    assert f"skipped: file {manifest}, record line 4: not valid JSON" in caplog.text
    manifest.write_text('{"id": "broken", "locale": "en-US"\n')  # every row skipped: said so, and why
    with pytest.raises(DataError, match=r"nothing to predict: every input was skipped \(skipped 1 record"):
        ready_to_predict(toy_corpus, manifest, bad_input="skip")


def test_a_folder_names_or_counts_its_dangling_clip_links_and_searches_linked_folders(toy_corpus, tmp_path):
    """A folder of links into storage: a link whose target is gone is not dropped in silence, and a
    linked folder is searched once, even one linking back to an ancestor."""
    folder, elsewhere = tmp_path / "clips", tmp_path / "storage"
    (folder / "day1").mkdir(parents=True)
    elsewhere.mkdir()
    for clip in (folder / "a.wav", elsewhere / "c.wav"):
        soundfile.write(clip, np.full(16000, 0.1, dtype="float32"), 16000)
    (folder / "b.wav").symlink_to(tmp_path / "unmounted" / "b.wav")
    (folder / "day1" / "linked").symlink_to(elsewhere)
    (elsewhere / "back").symlink_to(folder)
    with pytest.raises(DataError, match=r"clips/b.wav, record b.wav: audio file not found"):
        ready_to_predict(toy_corpus, folder)
    skipping = ready_to_predict(toy_corpus, folder, bad_input="skip")
    assert [Path(example.audio).name for example, _ in skipping.eval_sets["predict"]] == ["a.wav", "c.wav"]
    assert skipping.skips.counts == {"audio file not found": 1}
