"""A camera's audio on its way into MP4: kept as it is where MP4 and browsers take it, otherwise
transcoded once to AAC, and placed on the wall clock like the video.

AAC and Opus are copied. G.711 (A-law, mu-law: what most cheap cameras send) and other codecs MP4
players do not take are decoded and encoded to AAC once per camera, at the camera's own rate and
channels (8 kHz mono G.711 costs well under 1 % of a core). The muxer takes its codec parameters
from `template`, a stream whose parameters describe the packets `push` returns.

Audio timestamps, like video ones, start anywhere and reset on reconnects; the clock anchors them
to the wall clock at the first packet and keeps packets back to back (sample-exact, no drift of
its own) for as long as they stay near their arrival time; a rewind, a jump or a stall of the
camera's audio clock re-anchors it.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import av.error

log = logging.getLogger("camctl.audio")

COPIED = frozenset({"aac", "opus"})  # MP4 carries them and browsers play them as they are
SAMPLE_PER_BYTE = frozenset({"pcm_alaw", "pcm_mulaw"})  # G.711: stateless, one byte per sample
MAX_SKEW = 0.3  # seconds an audio packet may stray from its arrival before the clock re-anchors
CODEC_NAMES = {"aac": "AAC", "opus": "Opus", "pcm_alaw": "G.711 A-law", "pcm_mulaw": "G.711 mu-law"}
AAC_BITRATE = 32_000  # per channel, for transcoded G.711 speech


@dataclass(frozen=True)
class AudioInfo:
    codec: str  # FFmpeg's name: aac, opus, pcm_alaw, pcm_mulaw
    sample_rate: int
    channels: int

    def describe(self) -> str:
        """For people: `G.711 A-law 8 kHz mono`."""
        layout = {1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels} channels")
        return f"{CODEC_NAMES.get(self.codec, self.codec)} {self.sample_rate / 1000:g} kHz {layout}"

    def to_json(self) -> dict[str, Any]:
        return {"codec": self.codec, "sample_rate": self.sample_rate, "channels": self.channels}

    @property
    def recorded_as(self) -> str:
        return self.codec if self.codec in COPIED else "aac"


def audio_info(stream: Any) -> AudioInfo | None:
    """What a demuxed audio stream carries; None when FFmpeg cannot say (no codec, no rate)."""
    ctx = stream.codec_context
    if ctx is None or not ctx.name or not ctx.sample_rate:
        return None
    return AudioInfo(ctx.name, int(ctx.sample_rate), int(ctx.channels or 1))


@dataclass(slots=True)
class AudioSample:
    """One packet for the MP4's audio track: its first sample at wall-clock t, `samples` long."""

    data: bytes
    t: float
    samples: int
    sample_rate: int

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate

    @property
    def end(self) -> float:
        return self.t + self.duration


class AudioClock:
    """Wall-clock time of each audio packet, from the camera's audio timestamps (in samples)."""

    def __init__(self, sample_rate: int) -> None:
        self.rate = sample_rate
        self._anchor: tuple[float, int] | None = None  # (wall, camera samples)
        self._end: float | None = None  # where the previous packet ended

    def place(self, pts: int, samples: int, arrived: float) -> float | None:
        """The packet's start on the wall clock, or None when it repeats audio already placed."""
        if self._anchor is None:
            self._anchor = (arrived - samples / self.rate, pts)  # it arrived once its last sample was made
        wall, base = self._anchor
        t = wall + (pts - base) / self.rate
        if abs(t + samples / self.rate - arrived) > MAX_SKEW:
            self._anchor = None  # rewound, jumped or stalled: start again from the arrival
            return self.place(pts, samples, arrived)
        if self._end is not None and t < self._end - 0.5 / self.rate:
            if t + samples / self.rate <= self._end:
                return None  # sent twice (the camera looped its audio): already in the file
            t = self._end
        self._end = t + samples / self.rate
        return t


class AudioTrack:
    """Turns the camera's audio packets into MP4-ready samples on the wall clock."""

    def __init__(self, stream: Any, info: AudioInfo) -> None:
        """stream: the camera's demuxed audio stream (its parameters are read here, not kept)."""
        self.info = info
        self.clock = AudioClock(info.sample_rate)
        self._decoder: Any = None
        self._encoder: Any = None
        self._resampler: Any = None
        self._fed = 0  # samples decoded and handed to the resampler (which hands on whole AAC frames)
        self._encoded = 0  # samples handed to the encoder
        self._first: tuple[float, int] | None = None  # (wall, samples fed) where the clock was anchored
        self._batch: list[bytes] = []  # G.711 packets waiting for an AAC frame's worth
        self._batch_pts = self._batch_bytes = 0
        self._batch_arrived = 0.0
        # The muxer's template: the camera's own stream parameters, or those of our AAC encoder.
        self._holder = av.open(io.BytesIO(), "w", format="mp4")
        if info.codec in COPIED:
            self.template: Any = self._holder.add_stream_from_template(stream)
        else:
            self._decoder = av.CodecContext.create(info.codec, "r")
            self._decoder.sample_rate, self._decoder.layout = info.sample_rate, _layout(info.channels)
            self.template = self._holder.add_stream("aac", rate=info.sample_rate, layout=_layout(info.channels))
            self.template.bit_rate = AAC_BITRATE * info.channels
            self.template.time_base = Fraction(1, info.sample_rate)
            self._holder.start_encoding()  # opens the encoder: its parameters (ASC) become the template's
            self._encoder = self.template.codec_context
            self._resampler = av.AudioResampler(
                format=self._encoder.format.name, layout=self._encoder.layout.name,
                rate=info.sample_rate, frame_size=self._encoder.frame_size,
            )  # fmt: skip

    @property
    def transcoded(self) -> bool:
        return self._encoder is not None

    def push(self, packet: Any, arrived: float) -> list[AudioSample]:
        if packet.pts is None or not packet.size:
            return []
        if self._encoder is None:
            return self._copy(packet, arrived)
        return self._transcode(packet, arrived)

    def _copy(self, packet: Any, arrived: float) -> list[AudioSample]:
        rate = self.info.sample_rate
        pts = self._samples_of(packet, packet.pts)
        samples = self._samples_of(packet, packet.duration) if packet.duration else _default_samples(self.info)
        t = self.clock.place(pts, samples, arrived)
        return [] if t is None else [AudioSample(bytes(packet), t, samples, rate)]

    def _transcode(self, packet: Any, arrived: float) -> list[AudioSample]:
        pts = self._samples_of(packet, packet.pts)
        if self.info.codec in SAMPLE_PER_BYTE:
            # G.711 is one byte per sample with no state: 20 ms packets are decoded an AAC frame's
            # worth at a time, which costs a sixth of the calls (their Python overhead is the cost).
            return self._batched(bytes(packet), pts, arrived)
        return self._encode(bytes(packet), pts, arrived)

    def _batched(self, data: bytes, pts: int, arrived: float) -> list[AudioSample]:
        channels = self.info.channels
        out: list[AudioSample] = []
        if self._batch and pts != self._batch_pts + self._batch_bytes // channels:
            out = self._encode_batch()  # not contiguous (lost packets, a jump): what came so far goes alone
        if not self._batch:
            self._batch_pts, self._batch_bytes = pts, 0
            # The batch is placed as if it arrived with its first packet (later packets only waited
            # for the batch to fill): the same anchor as packet by packet.
            self._batch_arrived = arrived - len(data) // channels / self.info.sample_rate
        self._batch.append(data)
        self._batch_bytes += len(data)
        if self._batch_bytes // channels < self._encoder.frame_size:
            return out
        return out + self._encode_batch()

    def _encode_batch(self) -> list[AudioSample]:
        samples = self._batch_bytes // self.info.channels
        joined = b"".join(self._batch)
        self._batch.clear()
        return self._encode(joined, self._batch_pts, self._batch_arrived + samples / self.info.sample_rate)

    def _encode(self, data: bytes, pts: int, arrived: float) -> list[AudioSample]:
        rate = self.info.sample_rate
        try:
            frames = self._decoder.decode(av.Packet(data))
        except av.error.FFmpegError:  # damaged audio: that packet is lost, the video is not
            return []
        count = sum(f.samples for f in frames)
        t = self.clock.place(pts, count, arrived)
        if t is None or not count:
            return []
        if self._first is None or abs(self._wall(self._fed) - t) > 0.05:
            self._first = (t, self._fed)  # the first packet, or the camera's clock moved: follow it
        self._fed += count
        out: list[AudioSample] = []
        try:
            for frame in frames:
                for chunk in self._resampler.resample(frame):
                    chunk.pts, chunk.time_base = self._encoded, Fraction(1, rate)
                    self._encoded += chunk.samples
                    out += self._samples(self._encoder.encode(chunk))
        except av.error.FFmpegError:
            pass  # as above: what was encoded before the error is kept
        return out

    def _samples_of(self, packet: Any, ticks: int) -> int:
        """A packet time (in its time base) in samples; integer arithmetic (Fractions cost more
        than the rest of a G.711 packet's way)."""
        tb = packet.time_base
        if tb is None:
            return int(ticks)
        return int(ticks) * int(tb.numerator) * self.info.sample_rate // int(tb.denominator)

    def flush(self) -> list[AudioSample]:
        """What the encoder still holds (the camera went away); the track takes nothing more."""
        if self._encoder is None or self._first is None:
            return []
        out: list[AudioSample] = []
        if self._batch:  # G.711 short of a whole AAC frame
            out += self._encode_batch()
        try:
            for chunk in self._resampler.resample(None):
                chunk.pts, chunk.time_base = self._encoded, Fraction(1, self.info.sample_rate)
                self._encoded += chunk.samples
                out += self._samples(self._encoder.encode(chunk))
            return out + self._samples(self._encoder.encode(None))
        except (av.error.FFmpegError, ValueError):
            return out
        finally:
            self._first = None

    def _samples(self, packets: list[Any]) -> list[AudioSample]:
        rate = self.info.sample_rate
        return [
            AudioSample(bytes(p), self._wall(p.pts), p.duration or self._encoder.frame_size, rate)
            for p in packets
            if p.pts is not None and p.size
        ]

    def _wall(self, sample: int) -> float:
        """Wall-clock time of the camera's sample number `sample` (counted since connecting)."""
        wall, base = self._first or (0.0, 0)
        return wall + (sample - base) / self.info.sample_rate

    def close(self) -> None:
        try:
            self._holder.close()
        except (av.error.FFmpegError, OSError) as exc:  # an in-memory file that never got a packet
            log.debug("audio template: %s", exc)


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")


def _default_samples(info: AudioInfo) -> int:
    return {"aac": 1024, "opus": info.sample_rate // 50}.get(info.codec, info.sample_rate // 50)
