"""Frame slots that container damage emptied: where the codec track's timeline has holes.

The reader reports damage (a lost Cluster, a broken block) but cannot count frames it never saw.
`FrameSlots` follows the track's timestamps: when damage was reported since the previous frame,
a gap wider than one DefaultDuration holds that many lost frames, so `decode` can show the last
good frame in each slot and the output keeps the stream's frame count and timestamps. A gap over
a keyframe the Cues list is damage too, reported or not (a Cluster whose id was hit into another
element's is skipped without a word by any reader that trusts ids). Any other gap is left alone
(variable frame rate is legitimate); a gap in a track without DefaultDuration can only be
reported, not counted.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from fractions import Fraction

from ..io.mkv_reader import MatroskaReader, TrackInfo

MAX_GAP_SLOTS = 100_000  # without a known end, more lost frames than this in one gap is a damaged timestamp


@dataclass
class FrameSlots:
    """The expected timeline of one track, learnt as its packets arrive."""

    step: Fraction | None  # DefaultDuration in seconds
    tick: Fraction  # the file's TimestampScale in seconds: slot times are rounded to it
    first: Fraction | None = None  # the first CuePoint: the track starts there at the latest
    last_keyframe: Fraction | None = None  # the last CuePoint: the track reaches at least this
    end: Fraction | None = None  # no frame starts at or after this (Info Duration), when known
    last: Fraction | None = None
    damaged: bool = False
    truncated: bool = False
    retimed: int = 0  # frames whose stored time was impossible, moved to the next slot
    uncounted_gaps: list[tuple[Fraction, Fraction]] = field(default_factory=list)
    cues: tuple[Fraction, ...] = ()  # the keyframe times the Cues list, sorted: each must come

    @classmethod
    def of(cls, reader: MatroskaReader, track: TrackInfo) -> FrameSlots:
        """The slots of `track` in an open file, bounded by its Cues and Info Duration.

        Args:
            reader: the open file (its Cues and Duration are hints, already validated).
            track: the track to follow.

        Returns:
            A FrameSlots with no packet seen yet.
        """
        step = Fraction(track.default_duration_ns, 10**9) if track.default_duration_ns else None
        cues = sorted(time for time, number, _ in reader.cues if number == track.number)
        first, last = (cues[0], cues[-1]) if cues else (None, None)
        return cls(step, Fraction(reader.timestamp_scale_ns, 10**9), first, last, reader.duration, cues=tuple(cues))

    def damage(self, truncated: bool = False) -> None:
        """Note that the reader reported damage: the next gap may hold lost frames.

        Args:
            truncated: the damage is the end of the file (nothing after it is counted as lost).
        """
        self.damaged = True
        self.truncated = self.truncated or truncated

    def admit(self, time: Fraction, suspect: bool = False) -> tuple[Fraction, list[Fraction]]:
        """Take the next packet of the track.

        Args:
            time: the packet's stored time, in seconds.
            suspect: the packet comes from a Cluster that failed its CRC-32 but was read whole:
                no frame is missing there, but its timestamp may be damaged.

        Returns:
            (the time to show it at, the times of the frames lost before it). The time is the
            stored one unless damage made it implausible: off the frame grid in a damaged
            Cluster, backwards, or past the end of the stream; then it is the next slot.
        """
        expected = self._round(self.last + self.step) if self.last is not None and self.step else self.first
        if suspect and self.step is not None and expected is not None:
            if abs(time - expected) > self.step / 2:
                self.retimed, time = self.retimed + 1, expected
            self.last = time if self.last is None else max(self.last, time)
            return time, []
        if self.step is not None and self.last is not None and not self._plausible(time, self.damaged):
            self.retimed += 1
            time = self._round(self.last + self.step)
        missing = self._between(self.last, time) if self.damaged or self._skips_a_cue(time) else []
        self.last, self.damaged = time if self.last is None else max(self.last, time), False
        return time, missing

    def at_end(self) -> list[Fraction]:
        """The frames lost after the last packet, when damage came after it or the last keyframe the
        Cues list never came: up to the last CuePoint and to the end of the stream (Info Duration),
        unless the file was cut there."""
        if self.last is None or self.truncated:
            return []
        cue_missed = self.last_keyframe is not None and self.last_keyframe > self.last  # the last GOP never came
        if self.step is None and self.last_keyframe is not None and cue_missed:
            self.uncounted_gaps.append((self.last, self.last_keyframe))
        if self.step is None or not (self.damaged or cue_missed):
            return []
        stop = max(self.last, self.last_keyframe or self.last)
        if self.end is not None:
            stop = max(stop, self._round(self.end - self.step))  # the last frame starts one step before the end
        return self._between(self.last, stop + self.step)

    def _skips_a_cue(self, time: Fraction) -> bool:
        """Whether a keyframe the Cues list falls after the last frame and before `time`: it never came."""
        after = 0 if self.last is None else bisect.bisect_right(self.cues, self.last)
        return after < len(self.cues) and self.cues[after] < time

    def _plausible(self, time: Fraction, damaged: bool) -> bool:
        """Our track's times only increase; after damage they also stay before the stream's end."""
        assert self.last is not None
        return self.last < time and (not damaged or self.end is None or time < self.end)

    def _between(self, previous: Fraction | None, time: Fraction) -> list[Fraction]:
        """Slot times strictly between `previous` and `time` (from the first CuePoint when nothing came yet)."""
        if previous is None:
            if self.first is None or self.first >= time or self.step is None:
                return []
            return [self.first, *self._between(self.first, time)]
        if self.step is None:
            if time > previous:
                self.uncounted_gaps.append((previous, time))
            return []
        count = round((time - previous) / self.step) - 1
        if self.end is not None:
            count = min(count, max(0, int((self.end - previous) / self.step) - 1))
        count = min(count, MAX_GAP_SLOTS)
        return [self._round(previous + k * self.step) for k in range(1, count + 1)]

    def _round(self, time: Fraction) -> Fraction:
        return round(time / self.tick) * self.tick
