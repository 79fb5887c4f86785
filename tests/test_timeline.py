"""The wall-clock timeline: camera spacing frame to frame, arrival time over seconds, through resets,
jumps, rewinds, bursts, freezes, late packets and B-frames."""

from __future__ import annotations

import itertools

from camctl.recording.timeline import MAX_LEAD, Placement, Timeline

FPS = 25


def feed(timeline: Timeline, frames: list[tuple[float, float]]) -> list[Placement]:
    """frames: (camera seconds, arrival)."""
    return [timeline.place(cam, now) for cam, now in frames]


def assert_valid(placed: list[Placement]) -> None:
    assert all(b.dts > a.dts for a, b in itertools.pairwise(placed)), "decode times strictly increase"
    assert all(0 <= p.pts - p.dts < 0.6 for p in placed), "shown when decoded, or a few B-frames later"


def test_follows_the_camera_spacing_not_the_arrival_jitter() -> None:
    arrivals = [1000.0, 1000.09, 1000.07, 1000.2, 1000.16]  # bursty network, steady camera
    placed = feed(Timeline(), [(n / FPS, now) for n, now in enumerate(arrivals)])
    assert [round(p.pts, 6) for p in placed] == [round(1000.0 + n / FPS, 6) for n in range(5)]
    assert_valid(placed)


def test_a_camera_clock_reset_or_jump_keeps_time_increasing_and_on_the_wall_clock() -> None:
    now, frames = 1000.0, []
    camera_times = [n / FPS for n in range(50)]  # 2 s of video
    camera_times += [0.0 + n / FPS for n in range(50)]  # the camera rebooted: its clock starts over
    camera_times += [3600.0 + n / FPS for n in range(50)]  # its clock was set an hour ahead
    for cam in camera_times:
        frames.append((cam, now))
        now += 1 / FPS
    timeline = Timeline()
    placed = feed(timeline, frames)
    assert_valid(placed)
    assert all(p.hole == 0 for p in placed), "it streamed on: no footage is missing"
    assert all(abs(p.pts - arrival) < 0.1 for p, (_c, arrival) in zip(placed, frames, strict=True))
    assert timeline.reanchors == 2


def test_a_server_that_loops_with_a_rewind_and_a_burst_stays_on_the_wall_clock() -> None:
    """VLC serving a looping file: at each loop its clock rewinds ~1 s and ~25 frames come at once.
    Before the fix every rewind pushed the timeline a second ahead, for good."""
    frames, now, cam, before_bursts = [], 1000.0, 0.0, []
    for _loop in range(4):
        for _n in range(15 * FPS):  # 15 s in real time
            frames.append((cam, now))
            cam += 1 / FPS
            now += 1 / FPS
        before_bursts.append(len(frames) - 1)
        cam -= 1.0  # rewind
        for _n in range(FPS):  # a second of frames at once
            frames.append((cam, now))
            cam += 1 / FPS
    timeline = Timeline()
    placed = feed(timeline, frames)
    assert_valid(placed)
    leads = [p.pts - arrival for p, (_c, arrival) in zip(placed, frames, strict=True)]
    assert max(leads) <= MAX_LEAD + 1e-6 and min(leads) > -0.3, "never far from the arrival"
    assert timeline.reanchors == 4, "one per rewind, no hard re-anchor"
    assert all(leads[n] < 0.1 for n in before_bursts), "it does not run away: back on time before each loop"
    spacing = [b.pts - a.pts for a, b in itertools.pairwise(placed)]
    assert min(spacing) >= 0.5 / FPS - 1e-9, "intervals shrink to half at most: playback looks normal"
    assert abs(sorted(spacing)[len(spacing) // 2] - 1 / FPS) < 0.001, "most keep the camera's own spacing"


def test_a_frame_that_arrives_long_after_the_previous_one_stays_beside_it() -> None:
    """The camera froze; its last frame came 10 s late: it belongs before the pause, and the pause
    shows up as one hole once frames flow again."""
    frames = [(n / FPS, 1000.0 + n / FPS) for n in range(50)]
    frames.append((50 / FPS, 1012.0))  # late
    frames += [(50 / FPS + 30 + n / FPS, 1012.1 + n / FPS) for n in range(1, 60)]  # the camera's clock moved on too
    placed = feed(Timeline(), frames)
    assert_valid(placed)
    assert placed[50].pts - placed[49].pts < 0.1, "the late frame is placed by its camera time"
    holes = [(n, p.hole) for n, p in enumerate(placed) if p.hole]
    assert len(holes) == 1 and holes[0][0] == 51 and 9.5 < holes[0][1] < 10.5, holes
    assert abs(placed[-1].pts - frames[-1][1]) < 0.1


def test_a_pause_without_a_jump_in_the_camera_clock_becomes_a_hole_within_a_second() -> None:
    frames = [(n / FPS, 1000.0 + n / FPS) for n in range(50)]
    frames += [((50 + n) / FPS, 1010.0 + n / FPS) for n in range(60)]  # 8 s silence, clock did not move
    placed = feed(Timeline(), frames)
    assert_valid(placed)
    holes = [(n, p.hole) for n, p in enumerate(placed) if p.hole]
    assert len(holes) == 1 and 50 < holes[0][0] <= 50 + FPS + 1 and holes[0][1] > 7, holes
    assert abs(placed[-1].pts - frames[-1][1]) < 0.3


def test_b_frames_get_increasing_decode_times_and_their_own_presentation_times() -> None:
    order = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8, 12, 10, 11]  # I P B B, in decode order
    frames = [(n / FPS, 1000.0 + i / FPS) for i, n in enumerate(order)]
    placed = feed(Timeline(), frames)
    assert_valid(placed)
    shown = sorted(p.pts for p in placed[4:])
    assert all(abs((b - a) - 1 / FPS) < 0.005 for a, b in itertools.pairwise(shown)), "evenly shown"


def test_a_reconnect_restarts_the_camera_clock_but_not_ours() -> None:
    timeline = Timeline()
    first = timeline.place(50.0, 1000.0)
    timeline.restart()
    second = timeline.place(50.0, 1000.0)  # same instant on the camera clock, same arrival
    assert second.dts > first.dts


def test_no_two_frames_are_shown_at_one_instant_around_a_seam_sent_twice() -> None:
    """VLC looping an x264 file with B-frames: at the seam it sends a few frames again, then its
    clock rewinds. Every frame must keep an instant of its own (found by a VLC recording in CI)."""
    step = 0.04
    order = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8, 12, 10, 11, 15, 13, 14]  # decode order, B-frames
    frames = [n * step for n in order]
    seam = frames[-6:]  # sent twice
    rewound = [t + 100.0 - 0.9 for t in frames]  # the clock jumps back and starts over
    timeline = Timeline()
    now, shown = 1000.0, []
    for camera_time in frames + seam + rewound + seam:
        now += step
        shown.append(timeline.place(camera_time, now).pts)
    ordered = sorted(shown)
    closest = min(b - a for a, b in itertools.pairwise(ordered))
    assert closest >= 0.0009, f"two frames {closest * 1000:.2f} ms apart"
