import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import soundfile
import torch

from slu_lightning.curriculum import CurriculumCallback, CurriculumPhase, SourceMix, build_schedule
from slu_lightning.data.collate import SLUItem
from slu_lightning.data.corpora import (
    CombinedCorpus,
    DemoCorpus,
    DemoTtsCorpus,
    ManifestCorpus,
    MassiveTextCorpus,
    SpeechMassiveCorpus,
    TtsCorpus,
)
from slu_lightning.data.datamodules import (
    CurriculumDataModule,
    MixedDataModule,
    TextOnlyDataModule,
    prompt_length,
)
from slu_lightning.data.errors import ConfigError, DataError, SkipLog
from slu_lightning.data.predict_inputs import audio_inputs
from slu_lightning.data.readers.manifest import read_manifest, write_manifest
from slu_lightning.data.recogniser_noise import RecogniserNoise
from slu_lightning.data.subsets import SpeechSubset
from slu_lightning.model.backbone import load_processor
from slu_lightning.model.module import GenerationSettings, SLUModule
from slu_lightning.pretrain.domain_lm import fusion_identity
from slu_lightning.run_checkpoint import RunCheckpoint
from slu_lightning.task import PromptTemplate

TEXT, BOTH = {"text": SourceMix()}, {"text": SourceMix(), "speech": SourceMix()}


def corpus(root):
    return ManifestCorpus(str(root / "train.jsonl"), str(root / "dev.jsonl"), str(root / "test.jsonl"))


def ready(datamodule):
    datamodule.setup("fit")
    return datamodule


def test_text_only_epochs_hold_every_transcript_and_no_speech(toy_corpus):
    dm = ready(TextOnlyDataModule(corpus(toy_corpus)))
    entries = dm.epoch_entries(0)
    assert len(entries) == 24 and not any(heard for _, heard in entries)
    assert dm.subset_used() == "none: no phase trains on speech"
    assert all(heard for _, heard in dm.eval_sets["dev"])  # evaluation on speech by default


def test_mixed_epochs_add_the_speech_subset(toy_corpus):
    dm = ready(MixedDataModule(corpus(toy_corpus), speech_subset=SpeechSubset(0.25)))
    entries = dm.epoch_entries(0)
    assert sum(heard for _, heard in entries) == 6 and len(entries) == 30


def test_curriculum_mix_fraction_and_oversampling(toy_corpus):
    phases = [
        CurriculumPhase("t", 1, TEXT),
        CurriculumPhase("ramp", 1, {"text": SourceMix(0.5), "speech": SourceMix(0.5, oversample=2)}),
    ]
    dm = ready(CurriculumDataModule(corpus(toy_corpus), phases=phases))
    assert len(dm.epoch_entries(0)) == 24
    ramp = dm.epoch_entries(1)
    assert sum(not heard for _, heard in ramp) == 12 and sum(heard for _, heard in ramp) == 24
    smaller = CurriculumDataModule(
        corpus(toy_corpus), phases=[CurriculumPhase("r", 1, {"text": SourceMix(), "speech": SourceMix(0.25)})]
    )
    small_ids = {e.id for e, heard in ready(smaller).epoch_entries(0) if heard}
    assert small_ids <= {e.id for e, heard in ramp if heard}  # fractions are nested


def test_eval_modality_both_and_locale_filters(toy_corpus):
    dm = TextOnlyDataModule(
        corpus(toy_corpus), eval_modality="both", eval_locales=["fr-FR"], train_locales=["en-US"]
    )
    dm.setup("fit")
    assert {e.locale for e, _ in dm.eval_sets["dev"]} == {"fr-FR"}
    assert {heard for _, heard in dm.eval_sets["dev"]} == {True, False}
    assert {e.locale for e in dm.sources["text"]} == {"en-US"}
    mistyped = TextOnlyDataModule(corpus(toy_corpus), eval_modality="both", eval_locales=["xx-XX"])
    with pytest.raises(
        DataError,
        match=r"eval_locales: the dev speech split has no example of \['xx-XX'\] \(its locales: \['en-US'",
    ):
        mistyped.setup("fit")
    partly = TextOnlyDataModule(corpus(toy_corpus), train_locales=["xx-XX", "fr-FR"])  # a misspelt target
    with pytest.raises(
        DataError,
        match=re.escape(
            "train_locales: the train split has no example of ['xx-XX'] (its locales: ['en-US', 'fr-FR'])"
        ),
    ):
        partly.setup("fit")


def test_a_speech_regime_without_speech_fails_clearly(tmp_path, toy_corpus):
    rows = [json.loads(line) for line in (toy_corpus / "train.jsonl").read_text().splitlines()]
    (tmp_path / "train.jsonl").write_text(
        "".join(json.dumps({k: v for k, v in r.items() if k != "audio"}) + "\n" for r in rows)
    )
    dm = MixedDataModule(ManifestCorpus(str(tmp_path / "train.jsonl"), str(toy_corpus / "dev.jsonl")))
    with pytest.raises(DataError, match="no speech training examples"):
        dm.setup("fit")


@pytest.mark.parametrize("regime", [CurriculumDataModule, MixedDataModule])
def test_a_speech_regime_at_0_percent_speech_is_refused_unless_other_locales_keep_theirs(toy_corpus, regime):
    phases = {"phases": [CurriculumPhase("text", 1, TEXT), CurriculumPhase("speech", 1, BOTH)]}
    options = phases if regime is CurriculumDataModule else {}
    none = regime(corpus(toy_corpus), speech_subset=SpeechSubset(0.0), **options)
    with pytest.raises(ConfigError, match=r"speech_subset.proportion 0 keeps no speech.*TextOnlyDataModule"):
        none.setup("fit")
    french_only = ready(
        regime(corpus(toy_corpus), speech_subset=SpeechSubset(0.0, locales=["fr-FR"]), **options)
    )
    assert {example.locale for example in french_only.sources["speech"]} == {"en-US"}


def test_locale_names_a_corpus_cannot_offer_are_found_from_its_settings_alone(toy_corpus):
    """What ``slu-lightning sweep`` checks before any cell starts: nothing here is read."""
    massive = SpeechMassiveCorpus("/nowhere", train_locales=["fr-FR", "fr-FX"], eval_locales=["de-DE"])
    combined = CombinedCorpus([massive, MassiveTextCorpus("/nowhere", ["es-ES"])])
    dm = MixedDataModule(combined, train_locales=["fr-FX", "es-ES"], eval_locales=["de-DE", "it-IT"])
    assert dm.settings_problems(1) == [
        "train_locales: the corpus has no train split of ['fr-FX'] (it has ['es-ES', 'fr-FR'])",
        "eval_locales: the corpus has no dev split of ['it-IT'] (it has ['de-DE', 'es-ES'])",
        "eval_locales: the corpus has no test split of ['it-IT'] (it has ['de-DE', 'es-ES'])",
    ]
    with_manifests = CombinedCorpus([massive, corpus(toy_corpus)])  # a manifest's locales need reading
    assert MixedDataModule(with_manifests, train_locales=["xx-XX"]).settings_problems(1) == []


def test_bad_audio_is_named_or_counted(tmp_path, toy_corpus):
    rows = [json.loads(line) for line in (toy_corpus / "dev.jsonl").read_text().splitlines()]
    for row in rows:
        row["audio"] = str(toy_corpus / row["audio"])
    rows[0]["audio"] = str(tmp_path / "missing.flac")
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, dtype="float32"), 16000)  # a header, no samples
    rows[1]["audio"] = str(tmp_path / "empty.wav")
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    bad = ManifestCorpus(str(toy_corpus / "train.jsonl"), str(tmp_path / "dev.jsonl"))
    with pytest.raises(DataError, match="missing.flac"):
        TextOnlyDataModule(bad).setup("validate")
    lenient = TextOnlyDataModule(bad, bad_input="skip")
    lenient.setup("validate")  # both found before any batch is loaded, not inside a loader worker
    assert len(lenient.eval_sets["dev"]) == 6 and lenient.skips.total == 2
    assert lenient.skips.counts["empty audio: 0 samples"] == 1


def test_a_bad_training_row_is_counted_once_though_text_and_speech_both_read_it(tmp_path, toy_corpus):
    rows = [json.loads(line) for line in (toy_corpus / "train.jsonl").read_text().splitlines()]
    for row in rows:
        row["audio"] = str(toy_corpus / row["audio"])
    lines = [json.dumps(row) for row in rows]
    lines[1] = lines[1][:20]  # cut short: not JSON
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    dm = MixedDataModule(
        ManifestCorpus(str(tmp_path / "train.jsonl"), str(toy_corpus / "dev.jsonl")), bad_input="skip"
    )
    dm.setup("fit")
    assert len(dm.sources["text"]) == len(dm.sources["speech"]) == len(rows) - 1
    assert (
        dm.skips.total == 1
        and dm.skips.summary() == "skipped 1 record: 1 x not valid JSON (Invalid control character at)"
    )
    dm.write_subset_ids(tmp_path)  # the run's record of its training data says what was left out
    summary = json.loads((tmp_path / "training_data.json").read_text())
    assert summary["skipped_records"] == {"not valid JSON (Invalid control character at)": 1}


@pytest.fixture(scope="module")
def toy_tts(toy_corpus, tmp_path_factory) -> TtsCorpus:
    """eSpeak speech for the toy transcripts: 9 clips (the 24 rows hold 9 distinct transcripts)."""
    from slu_lightning.data.tts_augment import synthesise_manifest

    out = tmp_path_factory.mktemp("tts") / "toy"
    return TtsCorpus(str(synthesise_manifest(toy_corpus / "train.jsonl", out, workers=1)))


def heard_sources(entries) -> Counter:
    return Counter(example.source for example, heard in entries if heard)


def test_text_only_with_tts_hears_speech_of_every_transcript_and_no_real_speech(toy_corpus, toy_tts):
    dm = ready(TextOnlyDataModule(corpus(toy_corpus), tts_corpus=toy_tts))
    entries = dm.epoch_entries(0)
    assert sum(not heard for _, heard in entries) == 24 and heard_sources(entries) == {"tts": 9}
    assert {e.text for e, heard in entries if heard} == {e.text for e in dm.sources["text"]}
    assert dm.speech_hours() == 0 and dm.tts_hours() > 0


def test_mixed_with_tts_keeps_the_speech_subset_and_its_records_for_real_speech(
    toy_corpus, toy_tts, tmp_path
):
    dm = ready(MixedDataModule(corpus(toy_corpus), speech_subset=SpeechSubset(0.25), tts_corpus=toy_tts))
    entries = dm.epoch_entries(0)
    assert len(entries) == 24 + 6 + 9 and heard_sources(entries) == {"toy": 6, "tts": 9}
    dm.write_subset_ids(tmp_path)
    assert set((tmp_path / "speech_subset_ids.txt").read_text().split()) == {
        e.id for e in dm.sources["speech"]
    }
    summary = json.loads((tmp_path / "training_data.json").read_text())
    assert summary["speech_examples"] == 6 and summary["speech_hours"] <= 6 * 1.5 / 3600
    assert summary["tts_examples"] == 9 and summary["tts_hours"] > 0


def test_a_curriculum_hears_tts_where_its_phases_name_it(toy_corpus, toy_tts):
    phases = [
        CurriculumPhase("text", 1, TEXT),
        CurriculumPhase("text+tts", 1, {"text": SourceMix(), "tts": SourceMix(oversample=2)}),
    ]
    dm = CurriculumDataModule(
        corpus(toy_corpus), phases=phases, tts_corpus=toy_tts, length_bucketing=True, batch_size=8
    )
    ready(dm)
    assert heard_sources(dm.epoch_entries(0)) == {} and dm.sources["speech"] == []
    assert len(dm.epoch_entries(1)) == 24 + 18 and heard_sources(dm.epoch_entries(1)) == {"tts": 18}
    assert all(e.id in dm.seconds for e in dm.sources["tts"])  # bucketed by clip duration
    assert dm.batches_in_epoch(1) == 6


def test_a_tts_phase_without_a_tts_corpus_says_what_to_set(toy_corpus):
    phases = [CurriculumPhase("p", 1, {"text": SourceMix(), "tts": SourceMix()})]
    with pytest.raises(DataError, match="data.init_args.tts_corpus"):
        CurriculumDataModule(corpus(toy_corpus), phases=phases).setup("fit")


def test_resuming_on_other_synthesised_speech_is_refused(toy_corpus, toy_tts, tmp_path):
    from slu_lightning.data.tts_augment import synthesise_manifest

    revoiced = TtsCorpus(str(synthesise_manifest(toy_corpus / "train.jsonl", tmp_path / "seed1", seed=1)))
    plain, with_tts, with_revoiced = (
        ready(TextOnlyDataModule(corpus(toy_corpus), tts_corpus=tts)) for tts in (None, toy_tts, revoiced)
    )
    assert [e.id for e in with_tts.sources["tts"]] == [e.id for e in with_revoiced.sources["tts"]]
    assert len({dm.fingerprint() for dm in (plain, with_tts, with_revoiced)}) == 3  # same ids, other voices
    with pytest.raises(DataError, match="different data"):
        with_revoiced.load_state_dict(with_tts.state_dict())


@pytest.fixture(scope="module")
def calibration(toy_corpus, tmp_path_factory):
    """tiny-heard's transcripts of a quarter of the toy speech (6 clips), written once."""
    noise = RecogniserNoise(
        speech_subset=SpeechSubset(0.25), transcripts=str(tmp_path_factory.mktemp("noise") / "cal.jsonl")
    )
    TextOnlyDataModule(corpus(toy_corpus), recogniser_noise=noise).prepare_data()
    return noise


def test_recogniser_noise_adds_a_corrupted_copy_of_every_transcript_read_as_text(
    toy_corpus, calibration, tmp_path
):
    dm = ready(TextOnlyDataModule(corpus(toy_corpus), recogniser_noise=calibration))
    entries = dm.epoch_entries(0)
    assert len(entries) == 48 and heard_sources(entries) == {}
    noisy = {e.id: e for e in dm.sources["noisy"]}
    for clean in dm.sources["text"]:
        copy = noisy[f"{clean.id}~noisy0"]
        assert (copy.scenario, copy.action, copy.entities) == (clean.scenario, clean.action, clean.entities)
        assert copy.source == "noisy" and copy.audio is None
    assert sum(noisy[f"{e.id}~noisy0"].text != e.text for e in dm.sources["text"]) >= 12  # noise hears badly
    assert len(Path(calibration.transcripts).read_text().splitlines()) == 6
    dm.write_subset_ids(tmp_path)
    summary = json.loads((tmp_path / "training_data.json").read_text())
    assert summary["noisy_examples"] == 24 and summary["recogniser_noise_clips"] == 6
    assert (
        0 < summary["recogniser_noise_rates"]["deletion"] + summary["recogniser_noise_rates"]["substitution"]
    )


def test_recogniser_noise_reuses_its_transcripts_only_for_the_same_recogniser(
    toy_corpus, calibration, tiny_backbone
):
    written = Path(calibration.transcripts).stat().st_mtime_ns
    TextOnlyDataModule(corpus(toy_corpus), recogniser_noise=calibration).prepare_data()
    assert Path(calibration.transcripts).stat().st_mtime_ns == written
    other = replace(calibration, recogniser=str(tiny_backbone))
    with pytest.raises(DataError, match="holds other transcripts"):
        TextOnlyDataModule(corpus(toy_corpus), recogniser_noise=other).prepare_data()


def test_lm_steered_calibration_leaves_the_calibration_sentences_out_of_the_language_model(
    toy_corpus, tmp_path
):
    noise = RecogniserNoise(
        speech_subset=SpeechSubset(0.25),
        readout="rescored",
        domain_lm=True,
        transcripts=str(tmp_path / "cal.jsonl"),
    )
    TextOnlyDataModule(corpus(toy_corpus), recogniser_noise=noise).prepare_data()
    clips = {row.utterance_id for row in read_manifest(tmp_path / "cal.jsonl")}
    train = corpus(toy_corpus).text("train", SkipLog())
    known = [e.text for e in train if e.utterance_id not in clips]
    assert len(clips) == 6 and len(known) == 18
    summary = json.loads((tmp_path / "cal.summary.json").read_text())
    assert summary["readout"] == "rescored" and summary["domain_lm"] == fusion_identity(known)
    assert summary["domain_lm"] != fusion_identity([e.text for e in train])
    with pytest.raises(ValueError, match="joins only the rescored read-out, not 'ctc'"):
        RecogniserNoise(domain_lm=True)


def test_uniform_noise_draws_replacements_from_the_transcripts_characters(toy_corpus, calibration):
    uniform = ready(
        TextOnlyDataModule(corpus(toy_corpus), recogniser_noise=replace(calibration, confusions="uniform"))
    )
    alphabet = set("".join(e.text for e in uniform.sources["text"]))
    assert (
        uniform.channel.rates
        == ready(TextOnlyDataModule(corpus(toy_corpus), recogniser_noise=calibration)).channel.rates
    )
    assert set(uniform.channel.replacements) == alphabet
    assert set("".join(e.text for e in uniform.sources["noisy"])) <= alphabet


def test_other_noise_is_other_data_and_a_noisy_phase_needs_the_noise(toy_corpus, calibration):
    seeds = [
        ready(TextOnlyDataModule(corpus(toy_corpus), recogniser_noise=replace(calibration, seed=s)))
        for s in (0, 1)
    ]
    assert seeds[0].fingerprint() != seeds[1].fingerprint()
    phases = [CurriculumPhase("p", 1, {"text": SourceMix(), "noisy": SourceMix()})]
    with pytest.raises(DataError, match="data.init_args.recogniser_noise"):
        CurriculumDataModule(corpus(toy_corpus), phases=phases).setup("fit")


def counting_trainer(tmp_path, counter, **limits) -> L.Trainer:
    """A quiet CPU trainer set up as the CLI sets it (loader rebuilt per epoch, own rank split)."""
    return L.Trainer(
        reload_dataloaders_every_n_epochs=1,
        use_distributed_sampler=False,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[CurriculumCallback(), counter],
        default_root_dir=tmp_path,
        **limits,
    )


def resumable_trainer(tmp_path: Path, checkpoints: Path, *callbacks: L.Callback, **limits) -> L.Trainer:
    """A quiet CPU trainer set up as the CLI sets it, whose ``RunCheckpoint`` saves ``last.ckpt`` at
    the stopping batch, as the CLI's does."""
    return L.Trainer(
        limit_val_batches=0,
        reload_dataloaders_every_n_epochs=1,
        use_distributed_sampler=False,
        logger=False,
        enable_progress_bar=False,
        callbacks=[CurriculumCallback(), *callbacks, RunCheckpoint(dirpath=checkpoints, save_last=True)],
        default_root_dir=tmp_path,
        **limits,
    )


class CountExamples(L.Callback):
    def __init__(self):
        self.per_epoch: dict[int, list[int]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        text_speech = self.per_epoch.setdefault(trainer.current_epoch, [0, 0])
        text_speech[0] += int((~batch["is_speech"]).sum())
        text_speech[1] += int(batch["is_speech"].sum())


@pytest.mark.slow
def test_fit_sees_every_example_of_every_phase_epoch(toy_corpus, tmp_path):
    phases = [
        CurriculumPhase("text", 2, TEXT, train_audio_encoder=False),
        CurriculumPhase("text+speech", 1, BOTH, lr=5e-4, train_audio_encoder=True),
    ]
    dm = CurriculumDataModule(
        corpus(toy_corpus), phases=phases, speech_subset=SpeechSubset(0.5), batch_size=5
    )
    module = SLUModule(backbone="tiny-test", generate_during_validation=False)
    dm.connect(module.tokenizer, module.prompt, module.n_mels)
    counter = CountExamples()
    trainer = counting_trainer(tmp_path, counter, max_epochs=3, limit_val_batches=0)
    trainer.fit(module, dm)
    assert counter.per_epoch == {0: [24, 0], 1: [24, 0], 2: [24, 12]}
    # 5 + 5 + 8 batches of 5: the speech epoch was not cut to the text epochs' length
    assert trainer.global_step == 5 + 5 + 8
    assert trainer.callbacks[0].speech_examples_seen == 12


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    from slu_lightning.data.corpora import DemoCorpus

    corpus = DemoCorpus(size="tiny", seed=0, root=str(tmp_path_factory.mktemp("demo") / "tiny"))
    corpus.prepare()
    return corpus


@pytest.mark.slow
@pytest.mark.parametrize("regime", ["text_only", "mixed", "curriculum"])
def test_each_regime_fits_a_few_steps_on_the_demo_corpus(tiny_demo, tmp_path, regime):
    common = {
        "speech_subset": SpeechSubset(0.05),
        "batch_size": 4,
        "train_locales": ["en-US", "fr-FR"],
        "eval_locales": ["de-DE"],
        "max_eval_examples": 4,
        "eval_modality": "both",
    }
    datamodule = {
        "text_only": lambda: TextOnlyDataModule(tiny_demo, **common),
        "mixed": lambda: MixedDataModule(tiny_demo, **common),
        "curriculum": lambda: CurriculumDataModule(
            tiny_demo, phases=[CurriculumPhase("t", 1, TEXT), CurriculumPhase("s", 1, BOTH)], **common
        ),
    }[regime]()
    module = SLUModule(backbone="tiny-test", generation=GenerationSettings(num_beams=1, max_new_tokens=4))
    datamodule.connect(module.tokenizer, module.prompt, module.n_mels)
    counter = CountExamples()
    trainer = counting_trainer(tmp_path, counter, max_epochs=2, limit_train_batches=3, limit_val_batches=1)
    trainer.fit(module, datamodule)
    assert trainer.global_step == 6
    assert datamodule.locales == ["de-DE"] and {e.locale for e in datamodule.sources["text"]} == {
        "en-US",
        "fr-FR",
    }
    n_speech = len(datamodule.sources["speech"])
    assert (n_speech == 0) == (regime == "text_only")
    assert trainer.callback_metrics["val/loss"] > 0


@pytest.mark.parametrize("limit", [2, 0.5])
def test_the_schedule_turns_its_phase_where_limit_train_batches_ends_the_epoch(toy_corpus, tmp_path, limit):
    """The data mix and trainable parts switch at the real epoch end; so must the learning rate."""
    phases = [CurriculumPhase("t", 1, TEXT), CurriculumPhase("s", 1, BOTH, lr=5e-4)]
    datamodule = CurriculumDataModule(corpus(toy_corpus), phases=phases, batch_size=4)
    module = SLUModule(backbone="tiny-test", generation=GenerationSettings(num_beams=1, max_new_tokens=4))
    datamodule.connect(module.tokenizer, module.prompt, module.n_mels)
    recorded = RecordLearningRate()
    trainer = counting_trainer(
        tmp_path, recorded, max_epochs=2, limit_train_batches=limit, limit_val_batches=0
    )
    trainer.fit(module, datamodule)
    full = [len(ready(datamodule).epoch_entries(epoch)) // 4 for epoch in (0, 1)]  # 6 and 12 batches
    ran = [list(recorded.epochs.values()).count(epoch) for epoch in (0, 1)]
    assert ran == ([2, 2] if limit == 2 else [3, 6]) and full == [6, 12]
    settings = module.optimizer_settings
    schedule = build_schedule(phases, ran, settings.lr, settings.warmup_ratio, settings.schedule)
    assert [recorded.by_step[step] for step in range(sum(ran))] == pytest.approx(
        [settings.lr * schedule(step) for step in range(sum(ran))]
    )


def test_tensorboard_ends_each_epoch_on_the_curriculums_totals(toy_corpus, tmp_path):
    """Per batch the totals are logged every ``log_every_n_steps``; the epoch's end logs them too."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    phases = [CurriculumPhase("t", 1, TEXT), CurriculumPhase("s", 1, BOTH)]
    datamodule = CurriculumDataModule(corpus(toy_corpus), phases=phases, batch_size=4)
    module = SLUModule(backbone="tiny-test")
    datamodule.connect(module.tokenizer, module.prompt, module.n_mels)
    curriculum = CurriculumCallback()
    trainer = L.Trainer(
        max_epochs=2,
        reload_dataloaders_every_n_epochs=1,
        use_distributed_sampler=False,
        callbacks=[curriculum],
        logger=L.pytorch.loggers.TensorBoardLogger(str(tmp_path), name="tb", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        log_every_n_steps=5,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    seen = {event.step: event.value for event in events.Scalars("curriculum/speech_examples_seen")}
    assert curriculum.speech_examples_seen > 0 and trainer.global_step % 5 != 0  # the last batch is unlogged
    assert seen[trainer.global_step - 1] == curriculum.speech_examples_seen
    assert seen[datamodule.batches_in_epoch(0) - 1] == 0  # the text epoch's end


class RecordLearningRate(L.Callback):
    def __init__(self):
        self.by_step: dict[int, float] = {}
        self.epochs: dict[int, int] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.by_step[trainer.global_step] = trainer.optimizers[0].param_groups[0]["lr"]
        self.epochs[trainer.global_step] = trainer.current_epoch


def test_a_resume_under_another_limit_follows_this_runs_epochs_not_the_saved_schedule(toy_corpus, tmp_path):
    phases = [CurriculumPhase("t", 1, TEXT), CurriculumPhase("s", 1, BOTH, lr=5e-4)]
    for limit, max_steps, resume in ((2, 1, None), (4, -1, tmp_path / "last.ckpt")):
        datamodule = CurriculumDataModule(corpus(toy_corpus), phases=phases, batch_size=4)
        module = SLUModule(backbone="tiny-test")
        datamodule.connect(module.tokenizer, module.prompt, module.n_mels)
        recorded = RecordLearningRate()
        trainer = resumable_trainer(
            tmp_path, tmp_path, recorded, max_epochs=2, max_steps=max_steps, limit_train_batches=limit
        )
        trainer.fit(module, datamodule, ckpt_path=resume)
    lr = recorded.by_step
    assert trainer.global_step == 8
    assert all(lr[step] > 0 for step in range(1, 8))  # the saved layout (limit 2) ended at step 4
    assert lr[4] > lr[3]  # the speech phase starts its own schedule where its data starts


def test_a_fit_without_max_epochs_is_refused_before_it_trains_at_lr_0(toy_corpus, tmp_path):
    datamodule = TextOnlyDataModule(corpus(toy_corpus), batch_size=4)
    module = SLUModule(backbone="tiny-test")
    datamodule.connect(module.tokenizer, module.prompt, module.n_mels)
    trainer = counting_trainer(tmp_path, CountExamples(), max_epochs=None, max_steps=5, limit_val_batches=0)
    with pytest.raises(ConfigError, match="trainer.max_epochs is unset"):
        trainer.fit(module, datamodule)


def test_zero_shot_prompts_list_the_training_labels(toy_corpus, tiny_backbone):
    dm = TextOnlyDataModule(corpus(toy_corpus))
    dm.connect(load_processor(tiny_backbone).tokenizer, PromptTemplate(instruction="{input}\n{labels}"), 128)
    dm.setup("test")  # no training: the inventory comes from the training split's labels
    collate = dm.collators["test"]
    assert collate.labels == (
        "Scenarios: alarm, music, weather. Actions: play, query, set. "
        "Entity types: artist_name, place_name, time."
    )
    example = dm.eval_sets["test"][0][0].as_text()
    assert collate.labels in collate.tokenizer.decode(collate([SLUItem(example)])["prompt_ids"][0])
    assert dm.state_dict()["prompt_labels"] == collate.labels  # in the checkpoint, for export.json


def test_evaluation_batches_speech_first_then_text_longest_first(toy_corpus, tiny_backbone):
    dm = TextOnlyDataModule(corpus(toy_corpus), eval_modality="both", eval_batch_size=3)
    dm.connect(load_processor(tiny_backbone).tokenizer, PromptTemplate(), 128)
    dm.setup("test")
    loaded = [example.id for batch in dm.test_dataloader() for example in batch["examples"]]
    entries = sorted(dm.eval_sets["test"], key=dm.decoding_key)
    assert loaded == [example.id for example, _ in entries]
    heard = [h for _, h in entries]
    n_speech = sum(heard)
    assert heard == [True] * n_speech + [False] * (len(heard) - n_speech) and 0 < n_speech < len(heard)
    for part in (entries[:n_speech], entries[n_speech:]):
        lengths = [prompt_length(example, heard, dm.seconds) for example, heard in part]
        assert lengths == sorted(lengths, reverse=True) and len(set(lengths)) > 1


def test_a_run_seed_changes_the_batch_order_not_the_data_or_the_scored_items(toy_corpus):
    half = [CurriculumPhase("half", 1, {"text": SourceMix(0.5), "speech": SourceMix(0.5)})]

    def drawn(seed: int) -> tuple[list[str], list[str], list[list[int]]]:
        dm = CurriculumDataModule(
            corpus(toy_corpus), phases=half, seed=seed, max_eval_examples=5, eval_modality="both"
        )
        entries = ready(dm).epoch_entries(0)
        evaluated = [example.id + str(heard) for example, heard in dm.eval_sets["dev"]]
        return [example.id for example, _ in entries], evaluated, list(dm._sampler(entries, 0, 0))

    trained, scored, order = drawn(0)
    assert len(scored) == 5
    for seed in (1, 2):
        assert drawn(seed)[:2] == (trained, scored)
        assert drawn(seed)[2] != order


def test_paired_evaluation_draws_whole_utterances_in_both_modalities(toy_corpus):
    def scored(paired: bool) -> list[tuple[str, bool]]:
        dm = TextOnlyDataModule(
            corpus(toy_corpus), eval_modality="both", max_eval_examples=7, paired_eval=paired
        )
        return [(example.utterance_id, heard) for example, heard in ready(dm).eval_sets["dev"]]

    paired, unpaired = scored(True), scored(False)
    assert len(paired) == 6 and len(unpaired) == 7  # three utterances: a fourth would pass 7
    assert {u for u, heard in paired if heard} == {u for u, heard in paired if not heard}
    assert {u for u, heard in unpaired if heard} != {u for u, heard in unpaired if not heard}
    assert scored(True) == paired


def test_a_predict_folder_gives_its_audio_files_and_says_what_else_it_ignored(tmp_path, caplog):
    (tmp_path / "day1").mkdir()
    for name in ("b.wav", "day1/a.FLAC", "notes.txt", "day1/labels.txt", "README"):
        (tmp_path / name).write_bytes(b"")
    with caplog.at_level("INFO", logger="slu_lightning.data.predict_inputs"):
        inputs = audio_inputs(str(tmp_path))
    assert [Path(e.audio).relative_to(tmp_path).as_posix() for e in inputs] == ["b.wav", "day1/a.FLAC"]
    assert "ignoring the files that are not audio (2 x .txt, 1 x (none))" in caplog.text
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no audio files"):
        audio_inputs(str(tmp_path / "empty"))


def nan_clip(path: Path) -> str:
    """A WAV whose header is sound and whose samples are not: only decoding finds it."""
    signal = np.full(16000, 0.1, dtype="float32")
    signal[100] = np.nan
    soundfile.write(path, signal, 16000, subtype="FLOAT")
    return str(path)


def test_with_verify_audio_what_only_decoding_shows_is_skipped_before_the_first_batch(
    tmp_path, toy_corpus, tiny_backbone
):
    rows = [json.loads(line) for line in (toy_corpus / "dev.jsonl").read_text().splitlines()]
    for row in rows:
        row["audio"] = str(toy_corpus / row["audio"])
    rows[0]["audio"] = nan_clip(tmp_path / "nan.wav")
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    bad = ManifestCorpus(str(toy_corpus / "train.jsonl"), str(tmp_path / "dev.jsonl"))
    headers_only = TextOnlyDataModule(bad, bad_input="skip")
    headers_only.setup("validate")
    assert headers_only.skips.total == 0 and len(headers_only.eval_sets["dev"]) == len(rows)
    stopping = TextOnlyDataModule(bad)
    stopping.setup("validate")
    stopping.connect(load_processor(tiny_backbone).tokenizer, PromptTemplate(), 128)
    with pytest.raises(DataError, match=r"nan.wav.*NaN.*found while loading a batch: .*verify_audio: true"):
        list(stopping.val_dataloader())
    decoded = TextOnlyDataModule(bad, bad_input="skip", verify_audio=True)
    decoded.setup("validate")
    assert decoded.skips.counts == {"audio contains NaN or infinite samples": 1}
    assert len(decoded.eval_sets["dev"]) == len(rows) - 1
    with pytest.raises(DataError, match="nan.wav.*NaN"):
        TextOnlyDataModule(bad, verify_audio=True).setup("validate")


def test_predict_list_files_are_read_relative_to_their_folder_and_manifests_keep_their_ids(
    toy_corpus, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # not the list's folder
    listed = toy_corpus / "lists.txt"
    listed.write_text(
        "audio/test/test-0.flac\n\n" + str(toy_corpus / "audio" / "test" / "test-1.flac") + "\n"
    )
    assert [e.audio for e in audio_inputs(str(listed))] == [
        str(toy_corpus / "audio" / "test" / f"test-{i}.flac") for i in (0, 1)
    ]
    from_manifest = audio_inputs(str(toy_corpus / "test.jsonl"))
    assert [e.id for e in from_manifest] == [e.id for e in read_manifest(toy_corpus / "test.jsonl")]
    assert all(Path(e.audio).is_file() and e.source == "predict" for e in from_manifest)
    write_manifest(tmp_path / "text.jsonl", [e.as_text() for e in read_manifest(toy_corpus / "test.jsonl")])
    with pytest.raises(DataError, match="text.jsonl: a manifest without rows that have audio"):
        audio_inputs(str(tmp_path / "text.jsonl"))


def test_under_skip_a_clip_that_fails_in_its_batch_is_counted_and_left_out_of_loss_and_predictions(
    toy_corpus, tmp_path, caplog
):
    for split, bad_row in (("train", 1), ("test", 2)):
        rows = [read_manifest(toy_corpus / f"{split}.jsonl")[i] for i in range(8)]
        rows[bad_row] = replace(rows[bad_row], audio=nan_clip(tmp_path / f"{split}-nan.wav"))
        write_manifest(tmp_path / f"{split}.jsonl", rows)
    manifests = [str(tmp_path / f"{split}.jsonl") for split in ("train", "train", "test")]
    dm = MixedDataModule(
        ManifestCorpus(*manifests), SpeechSubset(1.0), batch_size=4, num_workers=1, bad_input="skip"
    )  # the stand-in rows cross from a worker
    module = SLUModule(backbone="tiny-test", generation=GenerationSettings(num_beams=1, max_new_tokens=4))
    dm.connect(module.tokenizer, module.prompt, module.n_mels)
    losses = RecordLosses()
    trainer = counting_trainer(tmp_path, losses, max_epochs=1, limit_val_batches=0)
    trainer.fit(module, dm)
    assert trainer.global_step == 4 and all(np.isfinite(losses.values))  # 8 transcripts + 8 clips
    assert trainer.callbacks[0].speech_examples_seen == 7  # the silent stand-in was not heard
    trainer.test(module, dm)
    predicted = [
        json.loads(line)["id"] for line in (tmp_path / "predictions_test.jsonl").read_text().splitlines()
    ]
    assert predicted == [f"test-{i}" for i in range(8) if i != 2]
    assert dm.skips.counts == {"audio contains NaN or infinite samples": 2}
    assert f"skipped: file {tmp_path / 'train-nan.wav'}, record train-1: audio contains NaN" in caplog.text


class RecordLosses(L.Callback):
    def __init__(self):
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.values.append(float(outputs["loss"]))


def test_a_transcript_spelling_out_a_control_token_is_named_or_skipped_not_read_as_one(
    toy_corpus, tmp_path, tiny_backbone
):
    rows = read_manifest(toy_corpus / "train.jsonl")
    rows[0] = replace(rows[0], text="play <|AUDIO|> now")  # a text row, and the speech rows below
    rows[5] = replace(rows[5], text=rows[5].text + " <|im_end|>")
    write_manifest(tmp_path / "train.jsonl", rows)
    manifests = ManifestCorpus(str(tmp_path / "train.jsonl"), str(toy_corpus / "dev.jsonl"))
    tokenizer = load_processor(tiny_backbone).tokenizer
    stopping = MixedDataModule(manifests, SpeechSubset(1.0))
    stopping.connect(tokenizer, PromptTemplate(), 128)
    with pytest.raises(DataError, match=rf"record {rows[0].id}: the transcript spells out .*<\|AUDIO\|>"):
        stopping.setup("fit")
    skipping = MixedDataModule(manifests, SpeechSubset(1.0), bad_input="skip")
    skipping.connect(tokenizer, PromptTemplate(), 128)
    skipping.setup("fit")
    kept = {example.id for source in ("text", "speech") for example in skipping.sources[source]}
    bad = {row.id for row in rows if "<|" in row.text}
    assert bad and not kept & bad and skipping.skips.total == len(bad)


def test_a_manifest_given_to_predict_counts_its_text_rows_and_an_unlabelled_one_gets_a_hint(
    toy_corpus, tmp_path, caplog
):
    rows = read_manifest(toy_corpus / "test.jsonl")
    mixed = write_manifest(tmp_path / "mixed.jsonl", [rows[0], rows[1].as_text(), rows[2]])
    with caplog.at_level("INFO", logger="slu_lightning.data.predict_inputs"):
        assert [e.id for e in audio_inputs(str(mixed))] == [rows[0].id, rows[2].id]
    assert "rows without audio, not predicted (predict decodes speech): 1" in caplog.text
    (tmp_path / "bare.jsonl").write_text(json.dumps({"id": "a", "audio": str(rows[0].audio)}) + "\n")
    with pytest.raises(DataError, match="missing keys .*for unlabelled audio pass a list file or a folder"):
        audio_inputs(str(tmp_path / "bare.jsonl"))


def test_a_mid_epoch_resume_under_another_batch_layout_is_refused(toy_corpus, tmp_path, caplog):
    """The sampler restarts at a batch count: under another batch size it would replay some of the
    epoch's examples and skip others. At an epoch's end the layout may change."""

    def fit(batch_size: int, max_epochs: int, max_steps: int, resume: Path | None, folder: str) -> L.Trainer:
        datamodule = TextOnlyDataModule(corpus(toy_corpus), batch_size=batch_size)
        module = SLUModule(backbone="tiny-test")
        datamodule.connect(module.tokenizer, module.prompt, module.n_mels)
        trainer = resumable_trainer(tmp_path, tmp_path / folder, max_epochs=max_epochs, max_steps=max_steps)
        trainer.fit(module, datamodule, ckpt_path=resume)
        return trainer

    fit(4, 1, 2, None, "mid")  # stops after 2 of the epoch's 6 batches
    with pytest.raises(DataError, match=r"stopped mid-epoch under another batch layout \(batch_size 4 -> 2"):
        fit(2, 1, -1, tmp_path / "mid" / "last.ckpt", "mid-resumed")
    fit(4, 1, -1, None, "end")
    assert fit(2, 2, -1, tmp_path / "end" / "last.ckpt", "end-resumed").global_step == 6 + 12
    old = torch.load(tmp_path / "mid" / "last.ckpt", weights_only=True)
    del old["TextOnlyDataModule"]["batch_layout"]  # as saved before the layout was
    torch.save(old, tmp_path / "old.ckpt")
    with caplog.at_level("WARNING", logger="slu_lightning.data.datamodules"):
        fit(2, 1, -1, tmp_path / "old.ckpt", "old-resumed")
    assert "the checkpoint predates the batch-layout check" in caplog.text


def test_the_records_skipped_before_a_resume_are_in_its_totals(toy_corpus):
    before = TextOnlyDataModule(corpus(toy_corpus), bad_input="skip")
    before.skips.handle(DataError("cannot decode", file="a.flac", record="a"))
    after = TextOnlyDataModule(corpus(toy_corpus), bad_input="skip")
    after.load_state_dict(before.state_dict())
    after.skips.handle(DataError("cannot decode", file="b.flac", record="b"))
    assert after.skips.summary() == "skipped 2 records: 2 x cannot decode"


def test_a_checkpoint_of_another_regime_is_refused_before_setup_writes(toy_corpus, tmp_path):
    """Lightning restores a data module's state under its class name only: a text-only checkpoint
    resumed as mixed would otherwise pass every data check and train on speech."""
    text_only = ready(TextOnlyDataModule(corpus(toy_corpus)))
    torch.save({"TextOnlyDataModule": text_only.state_dict()}, tmp_path / "text.ckpt")
    mixed, same = MixedDataModule(corpus(toy_corpus)), TextOnlyDataModule(corpus(toy_corpus))
    mixed.resumed_checkpoint = same.resumed_checkpoint = str(tmp_path / "text.ckpt")
    with pytest.raises(DataError, match="trained by TextOnlyDataModule, not MixedDataModule"):
        mixed.setup("fit")
    same.setup("fit")


def test_partial_mixes_resume_only_under_the_selection_seed_that_drew_them(toy_corpus):
    def saved(phases: list[CurriculumPhase], selection_seed: int) -> CurriculumDataModule:
        return ready(CurriculumDataModule(corpus(toy_corpus), phases=phases, selection_seed=selection_seed))

    half = [CurriculumPhase("half", 1, {"text": SourceMix(0.5)})]
    assert saved(half, 0).epoch_entries(0) != saved(half, 1).epoch_entries(0)
    with pytest.raises(DataError, match="selection_seed 0, this run with 1"):
        saved(half, 1).load_state_dict(saved(half, 0).state_dict())
    whole = [CurriculumPhase("whole", 1, TEXT)]
    saved(whole, 1).load_state_dict(saved(whole, 0).state_dict())  # nothing drawn: the seed is free


def test_a_phase_fraction_that_keeps_no_example_is_refused(toy_corpus):
    phases = [
        CurriculumPhase("ramp", 1, {"text": SourceMix(), "speech": SourceMix(0.34)}),
        CurriculumPhase("all", 1, BOTH),
    ]
    one_clip = CurriculumDataModule(corpus(toy_corpus), phases=phases, speech_subset=SpeechSubset(0.05))
    with pytest.raises(
        ConfigError, match="'ramp' trains on fraction 0.34 of the 1 speech example.*at least 1"
    ):
        one_clip.setup("fit")
    ready(CurriculumDataModule(corpus(toy_corpus), phases=phases, speech_subset=SpeechSubset(0.25)))


def test_a_test_prompts_with_the_labels_of_the_locales_the_fit_trained_on(
    toy_corpus, tiny_backbone, tmp_path
):
    rows = [
        e if e.locale == "fr-FR" else replace(e, scenario="travel")
        for e in read_manifest(toy_corpus / "train.jsonl")
    ]
    train = write_manifest(tmp_path / "train.jsonl", rows)
    tokenizer, prompt = (
        load_processor(tiny_backbone).tokenizer,
        PromptTemplate(instruction="{input}\n{labels}"),
    )

    def labels(stage: str) -> str:
        dm = TextOnlyDataModule(
            ManifestCorpus(str(train), str(toy_corpus / "dev.jsonl")), train_locales=["fr-FR"]
        )
        dm.connect(tokenizer, prompt, 128)
        dm.setup(stage)
        return dm.collators["test"].labels

    assert labels("test") == labels("fit") and "travel" not in labels("test")


def test_eval_locales_are_checked_against_the_modality_evaluated(toy_corpus, tmp_path):
    dev = read_manifest(toy_corpus / "dev.jsonl")
    german_text = replace(dev[0], id="dev-de", utterance_id="dev-de", locale="de-DE", audio=None)
    path = write_manifest(tmp_path / "dev.jsonl", [*dev, german_text])
    dm = TextOnlyDataModule(
        ManifestCorpus(str(toy_corpus / "train.jsonl"), str(path)), eval_locales=["en-US", "de-DE"]
    )
    with pytest.raises(DataError, match=re.escape("the dev speech split has no example of ['de-DE']")):
        dm.setup("validate")  # German text only, and only speech is evaluated
    both = TextOnlyDataModule(
        ManifestCorpus(str(toy_corpus / "train.jsonl"), str(path)),
        eval_locales=["de-DE"],
        eval_modality="text",
    )
    both.setup("validate")
    assert {example.locale for example, _ in both.eval_sets["dev"]} == {"de-DE"}


def test_a_paired_draw_smaller_than_an_utterance_is_refused(toy_corpus):
    dm = TextOnlyDataModule(corpus(toy_corpus), eval_modality="both", max_eval_examples=1, paired_eval=True)
    with pytest.raises(ConfigError, match="max_eval_examples 1 is smaller than the first utterance"):
        dm.setup("validate")


def test_recogniser_noise_calibrates_on_the_training_locales_speech(toy_corpus, tmp_path):
    noise = RecogniserNoise(speech_subset=SpeechSubset(0.25), transcripts=str(tmp_path / "cal.jsonl"))
    assert {clip.locale for clip in noise.clips(corpus(toy_corpus), SkipLog())} == {"en-US", "fr-FR"}
    TextOnlyDataModule(corpus(toy_corpus), recogniser_noise=noise, train_locales=["en-US"]).prepare_data()
    calibrated = read_manifest(tmp_path / "cal.jsonl")
    assert calibrated and {row.locale for row in calibrated} == {"en-US"}


def test_demo_tts_speech_of_another_demo_corpus_is_refused(tmp_path):
    """Its voices are the pretrain voices of its own seed, which another seed may give to the run's
    dev or test speakers; and it would speak another corpus's transcripts (nothing is built here)."""
    with pytest.raises(ConfigError, match=r"tts_corpus speaks demo corpus \(tiny, seed 1\)"):
        TextOnlyDataModule(DemoCorpus("tiny", 0), tts_corpus=DemoTtsCorpus("tiny", 1))
    mine = str(tmp_path / "mine")
    with pytest.raises(ConfigError, match="give the tts_corpus the corpus's size, seed and root"):
        TextOnlyDataModule(DemoCorpus("tiny", 0, root=mine), tts_corpus=DemoTtsCorpus("tiny", 0))
    paired = DemoTtsCorpus("tiny", 0, demo_root=mine)
    TextOnlyDataModule(DemoCorpus("tiny", 0, root=mine), tts_corpus=paired)
    assert paired.demo.root == tmp_path / "mine"  # what its prepare speaks
