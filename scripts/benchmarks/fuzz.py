#!/usr/bin/env python3
"""Long fuzzing run of the whole decode path: mutated .mkv files through `decode_file` and `stream_info`.

Two small clips per mode (selective and global) are encoded with `encode_file`; each run takes one,
damages it (byte flips, a cut, a splice with the other clip of the same mode, a huge EBML size) and
runs `decode_file(..., salvage=True)` and `stream_info` on it in-process, with a per-file timeout
and a bound on address space. Only the project's exceptions (StreamcodecError) may come out. It
prints the files tried, every traceback (non-project exception) with its innermost stack line and
a reproducer, hangs, peak RSS, and the share of undamaged keyframe-led GOPs that still decoded
exactly as in the undamaged file (a GOP counts as undamaged when no byte from its Cluster's header to
its last video block was hit). Damage to the file's head (EBML header, Segment header, SeekHead,
Info, Tracks with the stream configuration) may refuse the whole file by design; GOPs of such files
are counted apart.

Every case that lost an undamaged GOP is listed with its number; `--cases N,M` replays just those
(the same seed draws the same damage, so a lost case reproduces in seconds).

Two targeted runs come after the random one (issue 20):

- `--id-sweep`: every Cluster id of every clip replaced by each of 12 other ids (the 7 other
  4-byte Segment children: Info, Cues, Tags, SeekHead, Tracks, Chapters, Attachments; and 5 ids
  no Segment holds), then `decode_file` (no salvage, as a user runs it) and `stream_info`. A case
  is *silent* when decode gives fewer frames than the clean file and says nothing; the run counts
  cases whose every frame came back, those concealed with a warning, and `info` reports.
- `--cross-splices N`: N splices of a clip of one mode with a clip of the other (GC head and
  selective tail, and the reverse), decoded with salvage: refusals, tracebacks, hangs, and the
  head's undamaged GOPs that still decoded exactly.

    python scripts/benchmarks/fuzz.py [--files 300] [--seed 1] [--modes sc,gc] [--timeout 20] [--memory-mb 3000] [--cases N,M]
                                      [--id-sweep] [--cross-splices 200]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from streamcodec.codec import Decoder
from streamcodec.errors import StreamcodecError
from streamcodec.pipeline import decode as decode_module
from streamcodec.pipeline.decode import decode_file
from streamcodec.pipeline.encode import encode_file
from streamcodec.pipeline.info import stream_info

GOP = 10
CLUSTER_ID = bytes.fromhex("1f43b675")
# What a hit Cluster id can read as: the other 4-byte Segment children, then ids no Segment holds
# (the EBML header's, the Segment's, and three a bit away from the Cluster's).
KNOWN_IDS = {"Info": 0x1549A966, "Cues": 0x1C53BB6B, "Tags": 0x1254C367, "SeekHead": 0x114D9B74}
KNOWN_IDS |= {"Tracks": 0x1654AE6B, "Chapters": 0x1043A770, "Attachments": 0x1941A469}
UNKNOWN_IDS = {"EBML": 0x1A45DFA3, "Segment": 0x18538067, "1F43B676": 0x1F43B676, "1F43B635": 0x1F43B635}
UNKNOWN_IDS |= {"1E43B675": 0x1E43B675}
HUGE_SIZES = [b"\x01\xff\xff\xff\xff\xff\xff\xfe", b"\x08\x00\x00\x00", b"\x01\x00\x00\x00\x00\x10\x00\x00"]


class Hang(BaseException):
    """Raised by the timer: a BaseException so no `except Exception` in the code under test eats it."""


class RecordingDecoder(Decoder):
    """The codec's Decoder, logging (packet digest, output digest or None) for every call."""

    log: ClassVar[list[tuple[str, str | None]]] = []

    def decode(self, packet: bytes) -> npt.NDArray[np.uint8]:
        key = hashlib.sha1(packet).hexdigest()
        try:
            rgb = super().decode(packet)
        except StreamcodecError:
            RecordingDecoder.log.append((key, None))
            raise
        RecordingDecoder.log.append((key, hashlib.sha1(rgb.tobytes()).hexdigest()))
        return rgb


@dataclass
class Gop:
    start: int  # byte range in its file
    end: int
    frames: list[tuple[str, str]]  # (packet digest, clean output digest)


@dataclass
class Base:
    data: bytes
    gops: list[Gop]
    head_end: int  # end of the Tracks element: damage before it may refuse the file by design
    mode: str
    frames: int = 0


def _segment_children(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(id, offset, end) of each child of an intact file's Segment."""
    from streamcodec.io import ebml

    path, view = Path("base.mkv"), memoryview(data)
    header = ebml.parse_header(view, 0, 0, path)
    assert header.end is not None
    pos = ebml.parse_header(view, header.end, 0, path).data_offset
    while pos < len(data):
        child = ebml.parse_header(view, pos, 0, path)
        assert child.end is not None
        yield child.id, pos, child.end
        pos = child.end


def _head_end(data: bytes) -> int:
    """Offset just past the Tracks element, found by walking the Segment's children (its id also
    stands inside the SeekHead, so a byte search would land there)."""
    from streamcodec.io import ebml

    return next(end for element_id, _, end in _segment_children(data) if element_id == ebml.ID.TRACKS)


def make_base(work: Path, name: str, source: str, mode: str) -> Base:
    """Encode a 2 s 96x64 clip with audio in `mode`; record each GOP's byte range and clean outputs."""
    clip, mkv = work / f"{name}.mp4", work / f"{name}.{mode}.mkv"
    lavfi = ["-f", "lavfi", "-i", f"{source}=size=96x64:rate=25", "-f", "lavfi", "-i", "sine=frequency=330"]
    if not clip.exists():
        codecs = ["-c:v", "libx264", "-c:a", "aac"]
        subprocess.run(["ffmpeg", "-v", "error", "-y", *lavfi, "-t", "2", *codecs, str(clip)], check=True)
    encode_file(clip, mkv, mode=mode, gop=GOP)
    data = mkv.read_bytes()
    RecordingDecoder.log = []
    decode_file(mkv, None)
    gops: list[Gop] = []
    pos = 0
    packets = _video_packets(mkv)
    for index, (packet, (key, out)) in enumerate(zip(packets, RecordingDecoder.log, strict=True)):
        start = data.index(packet, pos)
        pos = start + len(packet)
        if index % GOP == 0:  # a GOP is undamaged when its bytes from its Cluster's header on are
            gops.append(Gop(data.rindex(CLUSTER_ID, 0, start), pos, []))
        gops[-1].end = pos
        gops[-1].frames.append((key, out or ""))
    return Base(data, gops, _head_end(data), mode, len(packets))


def _video_packets(path: Path) -> list[bytes]:
    from streamcodec.io.mkv_reader import MatroskaReader

    with MatroskaReader(path) as reader:
        track, _ = decode_module.stream_track(reader, path)
        return [p.data for p in reader.packets({track.number})]


def mutate(rng: random.Random, a: Base, b: Base) -> tuple[bytes, str, list[tuple[Gop, int]], bool]:
    """(damaged file, reproducer, undamaged GOPs with their byte shift, whether the file's head was hit)."""
    kind = rng.choice(["flip", "cut", "splice", "huge"])
    data = bytearray(a.data)
    if kind == "splice":
        x, y = rng.randrange(len(a.data)), rng.randrange(len(b.data))
        kept = [(g, 0) for g in a.gops if g.end <= x] + [(g, x - y) for g in b.gops if g.start >= y]
        return a.data[:x] + b.data[y:], f"splice a[:{x}] + b[{y}:]", kept, x < a.head_end
    if kind == "cut":
        x = rng.randrange(len(data))
        return bytes(data[:x]), f"cut at {x}", [(g, 0) for g in a.gops if g.end <= x], x < a.head_end
    if kind == "huge":
        x, size = rng.randrange(len(data)), rng.choice(HUGE_SIZES)
        data[x : x + len(size)] = size
        hit = [(x, x + len(size))]
        what = f"huge size {size.hex()} at {x}"
    else:
        hit = [(x, x + 1) for x in sorted(rng.randrange(len(data)) for _ in range(rng.randint(1, 8)))]
        for x, _ in hit:
            data[x] ^= rng.randrange(1, 256)
        what = "flip at " + ",".join(str(x) for x, _ in hit)
    kept = [(g, 0) for g in a.gops if all(e <= g.start or s >= g.end for s, e in hit)]
    return bytes(data), what, kept, any(s < a.head_end for s, _ in hit)


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang


def run_one(path: Path, timeout: float) -> list[tuple[str, BaseException]]:
    """Decode and inspect one file; returns the (step, exception) pairs that were not ours."""
    failures: list[tuple[str, BaseException]] = []
    steps = (("decode_file", lambda: decode_file(path, None, salvage=True)), ("stream_info", lambda: stream_info(path)))
    for step, call in steps:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            call()
        except StreamcodecError:
            pass
        except BaseException as exc:  # a fuzzer records everything else
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append((step, exc))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return failures


def _where(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{Path(last.filename).name}:{last.lineno} in {last.name}"


def _gops_decoded(kept: list[tuple[Gop, int]]) -> int:
    outputs: dict[str, set[str | None]] = {}
    for key, out in RecordingDecoder.log:
        outputs.setdefault(key, set()).add(out)
    return sum(all(out in outputs.get(key, ()) for key, out in gop.frames) for gop, _ in kept)


def _bound_memory(megabytes: int) -> None:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[0])
    limit = pages * resource.getpagesize() + megabytes * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--modes", default="sc,gc", help="comma-separated stream modes to fuzz (default sc,gc)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per file and step")
    parser.add_argument("--memory-mb", type=int, default=3000, help="address space allowed beyond the start")
    parser.add_argument("--cases", default="", help="comma-separated case numbers to run (the others are drawn, not run)")
    parser.add_argument("--keep", type=Path, help="folder to copy the damaged files of lost cases into")
    parser.add_argument("--id-sweep", action="store_true", help="then replace every Cluster id with 12 other ids")
    parser.add_argument("--cross-splices", type=int, default=0, help="then this many splices of a GC and a selective clip")
    args = parser.parse_args(argv)
    decode_module.Decoder = RecordingDecoder  # type: ignore[misc]
    signal.signal(signal.SIGALRM, _on_alarm)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        modes = args.modes.split(",")
        bases = [(make_base(work, "a", "testsrc2", mode), make_base(work, "b", "mandelbrot", mode)) for mode in modes]
        if args.keep is not None:  # the clean files too, to compare with
            args.keep.mkdir(parents=True, exist_ok=True)
            for mkv in work.glob("*.mkv"):
                shutil.copyfile(mkv, args.keep / mkv.name)
        _bound_memory(args.memory_mb)
        report = fuzz(work, bases, rng, args)
        clips = [base for pair in bases for base in pair]
        if args.id_sweep:
            report += "\n" + id_sweep(work, clips, args.timeout)
        if args.cross_splices:
            report += "\n" + cross_splices(work, clips, rng, args.cross_splices, args.timeout)
    print(report)
    return 0


def fuzz(work: Path, bases: list[tuple[Base, Base]], rng: random.Random, args: Any) -> str:
    tracebacks: Counter[tuple[str, str, str]] = Counter()
    repro: dict[tuple[str, str, str], str] = {}
    hangs: list[str] = []
    kept_total = decoded_total = head_total = head_decoded = 0
    lost: Counter[str] = Counter()
    lost_cases: list[str] = []
    only = {int(n) for n in args.cases.split(",") if n}
    path = work / "fuzzed.mkv"
    for case in range(args.files):
        pair = rng.choice(bases)
        a, b = pair
        first, second = (a, b) if rng.random() < 0.5 else (b, a)
        data, what, kept, head_hit = mutate(rng, first, second)
        if only and case not in only:
            continue
        path.write_bytes(data)
        RecordingDecoder.log = []
        for step, exc in run_one(path, args.timeout):
            if isinstance(exc, Hang):
                hangs.append(f"{step}: {what}")
                continue
            key = (step, type(exc).__name__, _where(exc))
            tracebacks[key] += 1
            repro.setdefault(key, f"case {case}: {what} (of {'a' if first is a else 'b'}): {str(exc)[:100]}")
        decoded = _gops_decoded(kept)
        if head_hit:  # the stream configuration or the index it needs may be gone: counted apart
            head_total, head_decoded = head_total + len(kept), head_decoded + decoded
            continue
        kept_total += len(kept)
        decoded_total += decoded
        if decoded < len(kept):
            lost[what.split()[0]] += len(kept) - decoded
            names = "a=testsrc2, b=mandelbrot" if first is a else "a=mandelbrot, b=testsrc2"
            lost_cases.append(f"case {case} ({first.mode}, {names}): {len(kept) - decoded} lost after {what}")
            if args.keep is not None:
                (args.keep / f"seed{args.seed}-case{case}.mkv").write_bytes(data)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tried = f"{len(only & set(range(args.files)))} of {args.files} drawn" if only else str(args.files)
    lines = [f"files tried       {tried} (seed {args.seed})", f"tracebacks        {sum(tracebacks.values())}"]
    lines += [f"  {n:4d} × {s} {t} at {w}\n         e.g. {repro[(s, t, w)]}" for (s, t, w), n in tracebacks.most_common()]
    lines += [f"hangs             {len(hangs)}", *(f"  {h}" for h in hangs[:20])]
    lines.append(f"peak RSS          {peak_mb:.0f} MB")
    share = decoded_total / kept_total if kept_total else float("nan")
    lines.append(f"undamaged GOPs    {decoded_total} of {kept_total} still decoded exactly ({share:.1%}), head intact")
    lines.append(f"                  {head_decoded} of {head_total} in files whose head (header..Tracks) was hit")
    lines += [f"  {n:4d} lost after a {k}" for k, n in lost.most_common()]
    lines += [f"    {line}" for line in lost_cases]
    return "\n".join(lines)


def _timed(call: Callable[[], Any], timeout: float) -> Any:
    """What `call()` returns under the timer, or the exception it raised (a Hang when it ran out)."""
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return call()
    except BaseException as exc:  # a fuzzer records everything
        if isinstance(exc, KeyboardInterrupt):
            raise
        return exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _failure(outcome: Any) -> str | None:
    """'hang', 'traceback (where)' or 'refused' for an exception outcome, None for a result."""
    if isinstance(outcome, Hang):
        return "hang"
    if isinstance(outcome, StreamcodecError):
        return "refused"
    return f"traceback ({type(outcome).__name__} at {_where(outcome)})" if isinstance(outcome, BaseException) else None


def _renamed_outcome(path: Path, frames: int, timeout: float) -> tuple[str, str]:
    """How `decode` (no salvage) and `info` took a file with one Cluster id replaced."""
    warnings: list[str] = []
    summary = _timed(lambda: decode_file(path, None, on_warning=warnings.append), timeout)
    decoded = _failure(summary)
    if decoded is None:
        if summary.frames < frames:
            decoded = "short, with a warning" if warnings else "SILENT (frames lost, no warning)"
        elif summary.damaged_frames:
            decoded = "concealed, with a warning"
        else:
            decoded = "every frame kept, with a warning" if warnings else "every frame kept, no warning"
    info = _timed(lambda: stream_info(path), timeout)
    described = _failure(info)
    if described is None:
        complete = "every frame counted" if info.frames == frames else f"{frames - info.frames} frames uncounted"
        described = f"{complete}, damage listed" if info.damaged else f"{complete}, SILENT"
    return decoded, described


def id_sweep(work: Path, clips: list[Base], timeout: float) -> str:
    """Every Cluster id of every clip replaced by each of KNOWN_IDS and UNKNOWN_IDS; the report's lines."""
    outcomes: dict[str, Counter[str]] = {"known": Counter(), "unknown": Counter()}
    silent: list[str] = []
    path, cases = work / "renamed.mkv", 0
    for clip in clips:
        clusters = [offset for element_id, offset, _ in _segment_children(clip.data) if element_id == int(CLUSTER_ID.hex(), 16)]
        for index, offset in enumerate(clusters):
            for name, new_id in (KNOWN_IDS | UNKNOWN_IDS).items():
                path.write_bytes(clip.data[:offset] + new_id.to_bytes(4, "big") + clip.data[offset + 4 :])
                decoded, described = _renamed_outcome(path, clip.frames, timeout)
                kind = "known" if name in KNOWN_IDS else "unknown"
                outcomes[kind][f"decode: {decoded}"] += 1
                outcomes[kind][f"info:   {described}"] += 1
                cases += 1
                if "SILENT" in decoded + described:
                    silent.append(f"{clip.mode} clip of {clip.frames} frames, Cluster {index} at byte {offset} → {name}")
    lines = [f"cluster-id sweep  {cases} cases: {len(clips)} clips, each Cluster id → 12 ids (7 known, 5 unknown)"]
    for kind, counts in outcomes.items():
        lines.append(f"  {kind} ids")
        lines += [f"    {n:4d} × {outcome}" for outcome, n in sorted(counts.items())]
    lines += [f"  silent: {case}" for case in silent[:20]]
    lines += [f"  … and {len(silent) - 20} more silent cases"] if len(silent) > 20 else []
    return "\n".join(lines)


def cross_splices(work: Path, clips: list[Base], rng: random.Random, count: int, timeout: float) -> str:
    """`count` splices of a clip of one mode with one of the other, decoded with salvage; the report's lines."""
    by_mode = {mode: [clip for clip in clips if clip.mode == mode] for mode in ("gc", "sc")}
    if not all(by_mode.values()):
        return "cross splices      skipped: they need both modes (--modes sc,gc)"
    outcomes: Counter[str] = Counter()
    kept_total = decoded_total = 0
    unnamed: list[str] = []
    refused: list[str] = []  # with the head intact
    path = work / "cross.mkv"
    for _ in range(count):
        first, second = rng.choice(by_mode["gc"]), rng.choice(by_mode["sc"])
        if rng.random() < 0.5:
            first, second = second, first
        x, y = rng.randrange(len(first.data)), rng.randrange(len(second.data))
        path.write_bytes(first.data[:x] + second.data[y:])
        RecordingDecoder.log = []
        summary = _timed(lambda: decode_file(path, None, salvage=True), timeout)
        direction = f"{first.mode} head + {second.mode} tail"
        result = _failure(summary) or "decoded"
        if result == "refused" and not str(summary).startswith(str(path)):
            unnamed.append(f"{direction} a[:{x}] + b[{y}:]: {summary}")
        elif result == "refused" and x >= first.head_end:
            refused.append(f"{direction} a[:{x}] + b[{y}:]: {str(summary).removeprefix(str(path) + ': ')}")
        if x < first.head_end:  # the stream configuration may be gone: refusing is by design
            result += " (head hit)"
        else:
            kept = [(gop, 0) for gop in first.gops if gop.end <= x]
            kept_total, decoded_total = kept_total + len(kept), decoded_total + _gops_decoded(kept)
        outcomes[f"decode: {direction}: {result}"] += 1
        outcomes[f"info:   {_failure(_timed(lambda: stream_info(path), timeout)) or 'read'}"] += 1
    share = decoded_total / kept_total if kept_total else float("nan")
    lines = [f"cross splices     {count} (GC + selective, both ways), decoded with salvage"]
    lines += [f"    {n:4d} × {outcome}" for outcome, n in sorted(outcomes.items())]
    lines.append(f"  head GOPs        {decoded_total} of {kept_total} undamaged GOPs of the head decoded exactly ({share:.1%})")
    lines.append(f"  refusals that do not name the file: {len(unnamed)}")
    lines += [f"    {line}" for line in unnamed[:10]]
    lines.append(f"  refusals with the head intact: {len(refused)}")
    lines += [f"    {line}" for line in refused[:10]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
