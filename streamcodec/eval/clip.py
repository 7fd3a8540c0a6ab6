"""One evaluation clip, prepared once: a video-only copy, its frames as raw RGB, its masks and its face region.

Every codec encodes the video-only copy (so our .mkv holds no audio and the classical encoders see
the same stream) and every decoded frame is compared with the frames of that same copy, decoded
once by PyAV and kept on disk as raw rgb24 (also the reference VMAF reads).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..errors import FfmpegError, UnreadableInputError
from ..io.demux import Source, VideoFrame
from .faces import NAME as FACE_DETECTOR
from .faces import clip_face_masks, load_face_masks, save_face_masks
from .ffmpeg_tools import run_ffmpeg
from .masks import ClipMasks, Frame, MaskSource, compute_clip_masks


@dataclass
class PreparedClip:
    """A clip ready to be encoded and measured."""

    path: Path
    name: str
    digest: str
    video: Path
    raw: Path
    width: int
    height: int
    frame_rate: Fraction
    frames: int
    duration_s: float
    masks: ClipMasks | None = None
    faces: npt.NDArray[np.bool_] | None = None  # (frames, H, W): the eval's own face region (faces.py)

    def source_frames(self) -> npt.NDArray[np.uint8]:
        """All source frames as a read-only (frames, H, W, 3) uint8 memory map."""
        return np.memmap(self.raw, dtype=np.uint8, mode="r", shape=(self.frames, self.height, self.width, 3))

    @property
    def kept_union(self) -> npt.NDArray[np.bool_] | None:
        """Pixels kept in any frame (None without masks): the static ROI of x265-roi."""
        return None if self.masks is None else np.asarray(self.masks.kept.any(axis=0), dtype=bool)


def _ffmpeg_video_only(clip: Path, out: Path, ffmpeg: str, codec: list[str]) -> None:
    command = [ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-y", "-i", str(clip), "-map", "0:v:0", *codec]
    run_ffmpeg([*command, "-an", "-sn", "-dn", "-map_metadata", "-1", str(out)], path=out)


def _video_only(clip: Path, work: Path, stem: str, ffmpeg: str) -> Path:
    """A video-only version of `clip` in `work`: a stream copy where the container allows one.

    Some coded streams cannot be copied into their own kind of container (raw video into .y4m,
    which wants decoded frames; codecs an AVI holds but Matroska does not): those are decoded to
    lossless FFV1 in Matroska instead, the same pixels and timestamps every codec then reads.
    """
    suffix = clip.suffix.lower() if clip.suffix.lower() in (".mp4", ".mkv", ".mov", ".webm") else ".mkv"
    copy = work / f"{stem}.video{suffix}"
    try:
        _ffmpeg_video_only(clip, copy, ffmpeg, ["-c", "copy"])
        return copy
    except FfmpegError:
        copy.unlink(missing_ok=True)
    lossless = work / f"{stem}.lossless.mkv"
    _ffmpeg_video_only(clip, lossless, ffmpeg, ["-c:v", "ffv1", "-level", "3", "-fps_mode", "passthrough"])
    return lossless


def _write_raw(video: Path, raw: Path) -> tuple[int, int, Fraction, int, float]:
    """Decode every frame to rgb24 into `raw`; returns width, height, frame rate, frames, duration (s)."""
    first: Fraction | None = None
    last = Fraction(0)
    count = 0
    with Source(video) as source, raw.open("wb") as stream:
        info = source.info
        for item in source.items(with_audio=False):
            assert isinstance(item, VideoFrame)
            stream.write(np.ascontiguousarray(item.rgb).tobytes())
            first = item.time if first is None else first
            last, count = item.time, count + 1
    if first is None:
        raise UnreadableInputError("holds no decodable video frames", video)
    # As encode_file: from the first frame's start to the last frame's end.
    duration = float(last - first) + 1.0 / float(info.frame_rate)
    return info.width, info.height, info.frame_rate, count, duration


def _masks(clip: PreparedClip, source: MaskSource, cache: Path) -> ClipMasks:
    tag = hashlib.sha256(source.name.encode()).hexdigest()[:8]
    path = cache / f"{clip.name}-{clip.digest[:8]}-{tag}.npz"
    if path.exists():
        return ClipMasks.load(path)
    frames = clip.source_frames()
    masks = compute_clip_masks(source, [frames[i] for i in range(clip.frames)])
    cache.mkdir(parents=True, exist_ok=True)
    masks.save(path)
    return masks


def _faces(clip: PreparedClip, cache: Path) -> npt.NDArray[np.bool_]:
    tag = hashlib.sha256(FACE_DETECTOR.encode()).hexdigest()[:8]
    path = cache / f"{clip.name}-{clip.digest[:8]}-faces-{tag}.npz"
    if path.exists():
        return load_face_masks(path)
    frames = clip.source_frames()
    faces = clip_face_masks([frames[i] for i in range(clip.frames)])
    cache.mkdir(parents=True, exist_ok=True)
    save_face_masks(faces, path)
    return faces


def prepare_clip(
    path: Path, digest: str, work: Path, mask_cache: Path, ffmpeg: str, mask_source: MaskSource | None
) -> PreparedClip:
    """Make the video-only copy and raw frames in `work`, and the clip's masks and face region (cached in `mask_cache`).

    Args:
        path: the clip as given on the command line.
        digest: its content hash (cache.file_digest).
        work: scratch folder of this run.
        mask_cache: where masks are kept between runs.
        ffmpeg: the ffmpeg program for the video-only copy.
        mask_source: selective mode's mask source, or None.
    """
    name = path.stem
    raw = work / f"{name}-{digest[:8]}.rgb"
    video = _video_only(path, work, f"{name}-{digest[:8]}", ffmpeg)
    width, height, rate, frames, duration = _write_raw(video, raw)
    clip = PreparedClip(path, name, digest, video, raw, width, height, rate, frames, duration)
    clip.faces = _faces(clip, mask_cache)
    if mask_source is not None:
        clip.masks = _masks(clip, mask_source, mask_cache)
    return clip


def frame_at(frames: npt.NDArray[np.uint8], index: int) -> Frame:
    """One source frame as an ordinary array (copies out of the memory map)."""
    return np.array(frames[index])
