import soundfile

from slu_lightning.cli import main as cli_main
from slu_lightning.data.asr_corpus import default_asr_dir, make_asr_corpus, plan_asr_corpus
from slu_lightning.data.demo_lexicon import LOCALES
from slu_lightning.data.partition import extra_pretrain_voices, partition, unheard_voices, unused_variants
from slu_lightning.data.readers.manifest import read_manifest
from slu_lightning.data.respeak import in_unheard_voices
from slu_lightning.pretrain.data import heldout_sample
from slu_lightning.pretrain.speaker_gap import gap_sets


def samples(path: str):
    return soundfile.read(path, dtype="int16")[0]


def test_gap_sets_hear_training_clips_and_heldout_sentences_as_the_corpus_has_them(tmp_path):
    corpus = make_asr_corpus(default_asr_dir("tiny", 0), size="tiny", seed=0)
    sets = gap_sets(tmp_path / "first", size="tiny", n=6)
    shares = partition(0)

    card = heldout_sample(corpus, 6, 0)
    assert [(e.id, e.text, e.meta["voice"]) for e in sets["held-out voices"]] == [
        (e.id, e.text, e.meta["voice"]) for e in card
    ]
    for ours, theirs in zip(sets["held-out voices"], card, strict=True):
        assert (samples(ours.audio) == samples(theirs.audio)).all()  # the very clips the card measures

    train = {example.id: example for example in read_manifest(corpus / "train.jsonl")}
    for example in sets["trained"]:
        assert example.meta["voice"] in shares[example.locale]["pretrain"].voices
        assert (samples(example.audio) == samples(train[example.id].audio)).all()  # as pretraining heard it

    for before, after in zip(sets["held-out voices"], sets["own voices"], strict=True):
        assert (after.id, after.text, after.meta["rate"], after.meta["pitch"]) == (
            before.id,
            before.text,
            before.meta["rate"],
            before.meta["pitch"],
        )
        assert after.meta["voice"] in shares[after.locale]["pretrain"].voices
        assert before.meta["voice"] in shares[before.locale]["heldout"].voices
        assert soundfile.info(after.audio).duration > 0.5

    again = gap_sets(tmp_path / "second", size="tiny", n=6)
    for name, examples in sets.items():  # seeded
        assert [(e.id, e.meta["voice"]) for e in again[name]] == [(e.id, e.meta["voice"]) for e in examples]


def test_the_command_prints_three_error_rates_and_both_gaps(capsys, caplog):
    with caplog.at_level("WARNING", logger="slu_lightning.pretrain.speaker_gap"):
        cli_main(["speaker-gap", "--backbone", "tiny-heard", "--asr-size", "tiny", "--clips", "12"])
    # tiny-heard's last stage trained on the large corpus: the test scale's clips are new to it
    assert (
        "tiny-heard was pretrained on another ASR corpus than these flags name (pass --asr-size large)"
        in (caplog.text)
    )
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("| tiny-heard |"))
    trained, own, heldout, sentence, speaker = (cell.strip() for cell in line.strip("|").split("|")[1:])
    for gap, expected in ((sentence, float(own) - float(trained)), (speaker, float(heldout) - float(own))):
        difference, interval, p = gap.replace("] (", "]|").replace("[", "|").rstrip(")").split("|")
        assert abs(float(difference) - expected) <= 0.0011  # all rounded to 3 places
        low, high = (float(x) for x in interval.strip("]").split(","))
        assert low <= float(difference) <= high and 0 < float(p) <= 1
    assert "12 clips per set of the ASR corpus `tiny`" in out


def test_the_kind_table_splits_each_sets_errors_by_sentence_kind(capsys):
    cli_main(["speaker-gap", "--backbone", "tiny-heard", "--asr-size", "tiny", "--clips", "12"])
    out = capsys.readouterr().out
    overall = next(line for line in out.splitlines() if line.startswith("| tiny-heard |")).split("|")[2:5]
    kinds = [
        line.split("|")[3:6]
        for line in out.split("By sentence kind:")[1].splitlines()
        if "tiny-heard" in line
    ]
    assert len(kinds) == 3  # words, chunks, template
    for column, total in enumerate(overall):  # the kinds' clips add up to the set's 12
        cells = [row[column].strip() for row in kinds if row[column].strip() != "-"]
        assert sum(int(cell.split("(")[1].rstrip(")")) for cell in cells) == 12
        rates = [float(cell.split()[0]) for cell in cells]
        assert min(rates) - 0.0005 <= float(total) <= max(rates) + 0.0005  # a words-weighted mean


def test_with_extra_voices_the_trained_set_is_spoken_as_the_voiced_corpus_has_it(tmp_path):
    voiced = {e.id: e for e in plan_asr_corpus(tmp_path / "plan", size="tiny", extra_voices=6)["train"]}
    plain = gap_sets(tmp_path / "plain", size="tiny", n=20)
    sets = gap_sets(tmp_path / "voiced", size="tiny", n=20, extra_voices=6)
    assert [e.meta["voice"] for e in sets["trained"]] == [voiced[e.id].meta["voice"] for e in sets["trained"]]
    extra = {voice for locale in LOCALES for voice in extra_pretrain_voices(locale, 6)}
    assert {e.meta["voice"] for e in sets["trained"]} & extra
    assert not {e.meta["voice"] for e in plain["trained"]} & extra
    for name in ("own voices", "held-out voices"):  # held-out sentences do not depend on the voices
        assert [(e.id, e.meta["voice"]) for e in sets[name]] == [(e.id, e.meta["voice"]) for e in plain[name]]


def test_unheard_voices_are_the_unused_variants_less_those_extra_voices_drew():
    for locale in LOCALES:
        everyone, drawn = unheard_voices(locale), set(extra_pretrain_voices(locale, 12))
        assert len(everyone) == len(unused_variants()) and not set(everyone) & set(
            partition(0)[locale]["pretrain"].voices
        )
        assert set(unheard_voices(locale, 12)) == set(everyone) - drawn and len(drawn) == 12


def test_in_unheard_voices_respeaks_each_sentence_by_a_voice_pretraining_never_heard(tmp_path):
    heldout = heldout_sample(make_asr_corpus(default_asr_dir("tiny", 0), size="tiny", seed=0), 24, 0)
    unheard = in_unheard_voices(heldout, tmp_path, extra_voices=12)
    for before, after in zip(heldout, unheard, strict=True):
        assert (after.id, after.text, after.meta["rate"]) == (before.id, before.text, before.meta["rate"])
        assert after.meta["voice"] in unheard_voices(after.locale, 12)
        assert after.audio == str(tmp_path / "audio" / "unheard" / f"{after.id}.flac")
    assert len({example.meta["voice"] for example in unheard}) > 12  # drawn per clip, not per locale
    again = in_unheard_voices(heldout, tmp_path, extra_voices=12)
    assert [e.meta["voice"] for e in again] == [e.meta["voice"] for e in unheard]  # seeded
