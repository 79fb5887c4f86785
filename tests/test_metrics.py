"""The Prometheus text camctl serves, line by line (format 0.0.4)."""

from __future__ import annotations

from camctl.metrics import (
    LatencyHistogram,
    bus_families,
    camera_families,
    counter_family,
    exposition,
    latency_family,
    merge_metrics,
)

STATUS = {"camera_id": "cam_1", "online": True, "fps": 14.96, "bitrate_kbps": 512, "dropped_frames": 0,
          "reconnects": 2, "frames": 300}  # fmt: skip


def worker_text(status: dict[str, object], latencies: list[float]) -> str:
    histogram = LatencyHistogram()
    for ms in latencies:
        histogram.observe(ms)
    return exposition([*camera_families([status], "box"), latency_family(histogram), *bus_families(True, 7, 1)])


def test_a_worker_exposes_its_camera_the_latency_histogram_and_the_bus() -> None:
    text = worker_text(STATUS, [3.0, 12.0, 2000.0])
    lines = text.splitlines()
    assert lines[:3] == [
        "# HELP camctl_camera_online 1 when the camera delivers frames.",
        "# TYPE camctl_camera_online gauge",
        'camctl_camera_online{camera="cam_1",node="box"} 1',
    ]
    assert 'camctl_camera_fps{camera="cam_1",node="box"} 14.96' in lines
    assert 'camctl_camera_reconnects_total{camera="cam_1",node="box"} 2' in lines
    assert "# TYPE camctl_transcode_bitrate_kbps gauge" in lines, "declared even with no transcoded camera"
    assert not any(line.startswith("camctl_transcode_bitrate_kbps") for line in lines)
    buckets = [line for line in lines if line.startswith("camctl_event_latency_ms_bucket")]
    assert buckets[0] == 'camctl_event_latency_ms_bucket{le="5"} 1'
    assert buckets[2] == 'camctl_event_latency_ms_bucket{le="25"} 2', "cumulative"
    assert buckets[-1] == 'camctl_event_latency_ms_bucket{le="+Inf"} 3'
    assert "camctl_event_latency_ms_sum 2015.000" in lines and "camctl_event_latency_ms_count 3" in lines
    assert lines[-7:] == [
        "# HELP camctl_nats_connected 1 when events reach NATS.",
        "# TYPE camctl_nats_connected gauge",
        "camctl_nats_connected 1",
        "# TYPE camctl_events_published_total counter",
        "camctl_events_published_total 7",
        "# TYPE camctl_events_dropped_total counter",
        "camctl_events_dropped_total 1",
    ]
    assert text.endswith("camctl_events_dropped_total 1\n")


def test_run_all_merges_workers_each_family_once_every_sample_with_its_camera() -> None:
    texts = [("cam_1", worker_text(STATUS, [3.0])), ("cam_2", worker_text(STATUS | {"camera_id": "cam_2"}, [40.0]))]
    merged = merge_metrics(texts) + exposition(
        [counter_family("camctl_worker_restarts_total", {"cam_1": 0, "cam_2": 3})]
    )
    lines = merged.splitlines()
    for family in ("camctl_camera_online", "camctl_event_latency_ms", "camctl_events_dropped_total"):
        assert lines.count(next(line for line in lines if line.startswith(f"# TYPE {family} "))) == 1
    assert 'camctl_event_latency_ms_bucket{camera="cam_1",le="5"} 1' in lines
    assert 'camctl_event_latency_ms_bucket{camera="cam_2",le="5"} 0' in lines
    assert 'camctl_events_published_total{camera="cam_2"} 7' in lines
    assert 'camctl_camera_online{camera="cam_1",node="box"} 1' in lines, "already labelled: left alone"
    type_at = lines.index("# TYPE camctl_event_latency_ms histogram")
    assert all(line.startswith("camctl_event_latency_ms") for line in lines[type_at + 1 : type_at + 1 + 2 * 11])
    assert lines[-3:] == [
        "# TYPE camctl_worker_restarts_total counter",
        'camctl_worker_restarts_total{camera="cam_1"} 0',
        'camctl_worker_restarts_total{camera="cam_2"} 3',
    ]
