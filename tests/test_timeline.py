"""The wall-clock timeline survives camera clock resets and jumps without breaking monotonicity."""

from __future__ import annotations

import itertools

from camctl.recording.timeline import Timeline

FPS = 25


def test_follows_the_camera_spacing_not_the_arrival_jitter() -> None:
    timeline = Timeline()
    arrivals = [1000.0, 1000.09, 1000.07, 1000.2, 1000.16]  # bursty network, steady camera
    placed = [timeline.place(n / FPS, now) for n, now in enumerate(arrivals)]
    assert placed == [1000.0 + n / FPS for n in range(5)]


def test_a_camera_clock_reset_or_jump_keeps_time_increasing_and_near_the_wall_clock() -> None:
    timeline = Timeline(max_skew=5.0)
    now, placed = 1000.0, []
    camera_times = [n / FPS for n in range(50)]  # 2 s of video
    camera_times += [0.0 + n / FPS for n in range(50)]  # the camera rebooted: its clock starts over
    camera_times += [3600.0 + n / FPS for n in range(50)]  # its clock was set an hour ahead
    for cam in camera_times:
        placed.append(timeline.place(cam, now))
        now += 1 / FPS
    assert all(b > a for a, b in itertools.pairwise(placed))
    assert abs(placed[-1] - now) < 0.5, "a jump re-anchors on the wall clock instead of writing the jump"
    assert timeline.reanchors == 2


def test_a_reconnect_restarts_the_camera_clock_but_not_ours() -> None:
    timeline = Timeline()
    first = timeline.place(50.0, 1000.0)
    timeline.restart()
    second = timeline.place(50.0, 1000.0)  # same instant on the camera clock, same arrival
    assert second > first
