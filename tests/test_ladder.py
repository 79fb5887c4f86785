"""The encoder ladder's rungs and their order: cheaper presets before fewer frames, back when calm."""

from __future__ import annotations

from camctl.encoding.ladder import CALM_INTERVALS, MAX_CALM_INTERVALS, EncoderLadder


def test_libx264_steps_preset_by_preset_then_halves_the_rate_and_climbs_back_one_rung_at_a_time() -> None:
    ladder = EncoderLadder("libx264", 30)
    moves = [ladder.update(n, "ticks skipped") for n in range(5)]
    assert [m.describe(30) if m else None for m in moves] == [
        "superfast @ 30 fps", "ultrafast @ 30 fps", "ultrafast @ 15 fps", None, None,
    ]  # fmt: skip
    calm = [ladder.update(10 + n, None) for n in range(3 * CALM_INTERVALS)]
    assert [m.describe(30) for m in calm if m] == ["ultrafast @ 30 fps", "superfast @ 30 fps", "veryfast @ 30 fps"]
    assert [s.reason for s in ladder.steps][:3] == ["ticks skipped"] * 3
    assert ladder.steps[3].to_json()["from"] == "ultrafast @ 15 fps"


def test_a_pinned_preset_or_a_hardware_encoder_only_halves_the_rate() -> None:
    pinned = EncoderLadder("libx264", 25, pinned="ultrafast")
    assert pinned.update(1, "slow") is not None and pinned.rung.describe(25) == "ultrafast @ 12.5 fps"
    nvenc = EncoderLadder("h264_nvenc", 30)
    step = nvenc.update(1, "slow")
    assert step is not None and step.preset is None and step.describe(30) == "15 fps"


def test_a_climb_that_fails_at_once_doubles_the_calm_needed_before_the_next_try() -> None:
    ladder = EncoderLadder("libx264", 30)
    ladder.update(0, "ticks skipped")  # down to superfast
    for n in range(CALM_INTERVALS):
        ladder.update(1 + n, None)
    assert ladder.rung.preset == "veryfast", "back up after the usual calm"
    ladder.update(10, "encoding took 95% of real time")  # veryfast fails at once: superfast again
    waited = 0
    while ladder.rung.preset != "veryfast":
        ladder.update(20 + waited, None)
        waited += 1
    assert waited == 2 * CALM_INTERVALS, "twice the calm before trying veryfast again"
    assert ladder.steps[-1].reason == f"calm for {2 * CALM_INTERVALS} keyframe intervals"


def test_steady_load_that_fails_a_climb_at_its_third_interval_does_not_flap() -> None:
    """Both cores busy for minutes: veryfast holds for two keyframe intervals, then falls behind;
    superfast keeps up. Each failed climb doubles the wait, so the ladder settles instead of
    moving every seven intervals for as long as the load lasts."""
    ladder = EncoderLadder("libx264", 30)
    ladder.update(0, "ticks skipped")  # down to superfast
    held = 0
    for n in range(1, 301):  # 300 keyframe intervals: 10 minutes of 2 s GOPs
        if ladder.rung.preset == "veryfast":
            held += 1
            ladder.update(n, "encoding took 97% of real time" if held == 3 else None)
        else:
            held = 0
            ladder.update(n, None)
    climbs = [s for s in ladder.steps if s.reason.startswith("calm")]
    assert len(climbs) <= 12, f"{len(climbs)} climbs in 300 intervals: {[s.reason for s in climbs]}"
    assert climbs[-1].reason == f"calm for {MAX_CALM_INTERVALS} keyframe intervals", "the wait grew to its cap"
