import soundfile

from slu_lightning.cli import main as cli_main
from slu_lightning.data.asr_corpus import default_asr_dir, make_asr_corpus
from slu_lightning.data.partition import partition
from slu_lightning.pretrain.data import heldout_sample
from slu_lightning.pretrain.speaker_gap import respoken


def test_respoken_clips_say_the_same_sentences_in_pretraining_voices(tmp_path):
    corpus = make_asr_corpus(default_asr_dir("tiny", 0), size="tiny", seed=0)
    heldout = heldout_sample(corpus, 8, 0)
    again = respoken(heldout, tmp_path)
    shares = partition(0)
    for before, after in zip(heldout, again, strict=True):
        assert (after.id, after.text, after.locale) == (before.id, before.text, before.locale)
        assert (after.meta["rate"], after.meta["pitch"]) == (before.meta["rate"], before.meta["pitch"])
        assert after.meta["voice"] in shares[after.locale]["pretrain"].voices
        assert before.meta["voice"] in shares[before.locale]["heldout"].voices
        assert soundfile.info(after.audio).duration > 0.5 and after.audio != before.audio
    voices = [example.meta["voice"] for example in again]
    assert [example.meta["voice"] for example in respoken(heldout, tmp_path / "second")] == voices  # seeded


def test_the_command_prints_both_error_rates_and_their_difference(capsys):
    cli_main(["speaker-gap", "--backbone", "tiny-heard", "--asr-size", "tiny", "--clips", "12"])
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("| tiny-heard |"))
    heldout_wer, own_wer, gap, interval, p = (cell.strip() for cell in line.strip("|").split("|")[1:])
    assert abs(float(gap) - (float(heldout_wer) - float(own_wer))) <= 0.0011  # all rounded to 3 places
    low, high = (float(x) for x in interval.strip("[]").split(","))
    assert low <= float(gap) <= high and 0 < float(p) <= 1
    assert "12 held-out sentences of asr-tiny-seed0" in out
