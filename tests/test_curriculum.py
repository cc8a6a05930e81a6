import math

import pytest

from slu_lightning.curriculum import CurriculumPhase, SourceMix, build_schedule, phase_index_at

PAPER = [
    CurriculumPhase("text", epochs=2, mix={"text": SourceMix()}),
    CurriculumPhase(
        "text+speech", epochs=1, mix={"text": SourceMix(), "speech": SourceMix()}, lr=3e-6, warmup_ratio=0.02
    ),
]


def test_phase_index_follows_epochs_and_the_last_phase_extends():
    assert [phase_index_at(PAPER, e) for e in range(5)] == [0, 0, 1, 1, 1]


def test_schedule_restarts_warmup_and_decay_in_each_phase_at_its_own_lr():
    steps = [10, 10, 50]  # the last epoch is longer: it adds the speech
    schedule = build_schedule(PAPER, steps, base_lr=5e-6, base_warmup=0.04, base_schedule="cosine")
    assert schedule.starts == [0, 20] and schedule.lengths == [20, 50]
    assert schedule(0) == pytest.approx(1.0)  # warm-up of ceil(0.04 * 20) = 1 step
    assert schedule(10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 9 / 19)))
    peak = 3e-6 / 5e-6
    assert schedule(20) == pytest.approx(peak)  # phase 2 warm-up: ceil(0.02 * 50) = 1 step
    assert schedule(22) == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 1 / 49)))
    assert schedule(69) == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 48 / 49)))


def test_linear_warmup_ramps_to_peak():
    phases = [CurriculumPhase("only", epochs=1, warmup_ratio=0.5, schedule="linear")]
    schedule = build_schedule(phases, [10], base_lr=1.0, base_warmup=0.0, base_schedule="linear")
    assert [round(schedule(s), 3) for s in range(5)] == [0.2, 0.4, 0.6, 0.8, 1.0]


def test_single_phase_regimes_use_the_models_schedule():
    phases = [CurriculumPhase("mixed", epochs=3, mix={"text": SourceMix(), "speech": SourceMix()})]
    schedule = build_schedule(phases, [5, 5, 5], base_lr=1.0, base_warmup=0.0, base_schedule="constant")
    assert {schedule(s) for s in range(15)} == {1.0}


def test_phases_without_a_schedule_of_their_own_follow_the_models_and_one_that_has_keeps_it():
    schedule = build_schedule(PAPER, [10, 10, 50], base_lr=5e-6, base_warmup=0.0, base_schedule="constant")
    assert schedule.schedules == ["constant", "constant"]
    assert {schedule(s) for s in range(20)} == {1.0} and {schedule(s) for s in range(20, 70)} == {0.6}
    own = [PAPER[0], CurriculumPhase("text+speech", mix=PAPER[1].mix, schedule="linear")]
    assert build_schedule(own, [10, 10], 1.0, 0.0, "constant").schedules == ["constant", "linear"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mix": {"audio": SourceMix()}},
        {"mix": {}},
        {"epochs": 0},
        {"mix": {"speech": SourceMix(fraction=0.0)}},
        {"mix": {"speech": SourceMix(oversample=0)}},
    ],
)
def test_bad_phases_are_refused_with_the_phase_name(kwargs):
    with pytest.raises(ValueError, match="phase 'p'"):
        CurriculumPhase("p", **kwargs)


def test_phases_may_train_on_synthesised_speech_and_hear_it():
    phase = CurriculumPhase("p", mix={"text": SourceMix(), "tts": SourceMix(fraction=0.5, oversample=2)})
    assert phase.uses_tts and not phase.uses_speech
    with pytest.raises(ValueError, match="'speech', 'tts'"):
        CurriculumPhase("p", mix={"synthetic": SourceMix()})


def test_a_phase_that_continues_the_schedule_decays_as_one_phase_would():
    """Text first, speech later, on one unbroken cosine: the learning rate of the text-only regime,
    only the data changes at the phase boundary."""
    continued = [
        CurriculumPhase("text", epochs=2, mix={"text": SourceMix()}),
        CurriculumPhase(
            "text+speech", epochs=1, mix={"text": SourceMix(), "speech": SourceMix()}, schedule="continue"
        ),
    ]
    single = [CurriculumPhase("text", epochs=3, mix={"text": SourceMix()})]
    steps = [10, 10, 12]
    schedule = build_schedule(continued, steps, base_lr=1.0, base_warmup=0.1, base_schedule="cosine")
    reference = build_schedule(single, steps, base_lr=1.0, base_warmup=0.1, base_schedule="cosine")
    assert schedule.starts == [0] and schedule.lengths == [32]
    assert [schedule(s) for s in range(32)] == [reference(s) for s in range(32)]
    assert schedule(19) > schedule(20) > schedule(31) > 0  # no restart at the boundary (step 20)


def test_a_continuing_phase_takes_no_learning_rate_of_its_own_and_cannot_come_first():
    with pytest.raises(ValueError, match="phase 'p'.*no lr or warmup_ratio"):
        CurriculumPhase("p", lr=1e-4, schedule="continue")
    with pytest.raises(ValueError, match="phase 'p': the first phase"):
        build_schedule([CurriculumPhase("p", schedule="continue")], [4], 1.0, 0.0, "cosine")
