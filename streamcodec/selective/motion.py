"""Motion: OpenCV's MOG2 background subtraction, for what moves in front of a still camera, held while it stays.

Runs at most `work_width` pixels wide (the cost stays flat for any input size), with a fixed low
learning rate (0.005: something still for ~20 frames becomes background; where a moving object
started is marked as long, a "ghost"), so that a moving object is found whole rather than absorbed
by MOG2's fast start-up learning; a morphological opening drops the speckle of sensor and
compression noise. A camera that pans marks most of the frame: conservative (all kept).

MOG2 forgets a person who stops walking in about 20 frames. So, with `hold` > 0, a pixel that moved
stays marked for as long as it still differs from the *reference*, the picture that pixel showed
before anything moved there (a mean of the frames where nothing moved, never learned under a held
pixel), for at most `hold` frames:

    frame ─▶ MOG2 ─open─▶ moving ─┐
          └─ |frame − reference| > `match_level` (5x5 mean) ─▶ differs ─┤
                                  held = (held ∪ moving) ∩ differs, younger than `hold` ─▶ moving ∪ held

A walker's trail matches the reference again at once and is let go; a person who stops stays. A
ghost (someone who stood there from the first frame and left) differs too, so it is held until the
`hold` limit, when the reference takes the frame as it is. A change over most of the frame (a light
switched on, a cut) takes the frame as the new reference and drops every hold.

A scene cut (`cuts.py`, at its default threshold) starts the model afresh from the cut's frame, as at
a clip's first: otherwise MOG2, learning at 0.005, marks the whole new shot as moving for the next
~200 frames. On a two-shot still-camera clip (`make_still_camera_clip.py --scene cut`, 60 frames,
the cut at 30, AV1 offline, q2) the kept share fell from 47.9 % to 29.9 % and the PSNR outside the kept
region rose from 26.56 to 30.47 dB, for 180.4 instead of 174.7 kbps (2026-12-07, `bound_cost.py`).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from .base import Frame, Mask, resize
from .cuts import DEFAULT_SCENE_CUT, SceneCuts

#: Share of the work frame that differs from the reference above which the reference is taken anew.
SCENE_CHANGE = 0.5
#: Per frame, how far the reference moves towards a frame where nothing moved (slow light drift, flicker).
REFERENCE_RATE = 0.05


class MotionMasker:
    """Foreground of a MOG2 background model, held while it differs from before, per frame in clip order."""

    def __init__(
        self,
        learning_rate: float = 0.005,
        var_threshold: float = 25.0,
        work_width: int = 320,
        hold: int = 0,
        match_level: float = 12.0,
        drop_shadows: bool = False,
    ) -> None:
        """`hold`: frames a moved pixel stays marked while it differs by > `match_level` levels (0: plain MOG2).

        `drop_shadows`: leave out what MOG2 calls a shadow (darker, same colour). Off: on our clips it left out
        the darker parts of people (docs/selective.md, masks on still-camera footage); a real shadow differs
        from the background picture as much, and the background bound would code it anyway.
        """
        self._learning_rate = learning_rate
        self._var_threshold = var_threshold
        self._work_width = work_width
        self._hold, self._match_level, self._drop_shadows = hold, match_level, drop_shadows
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self.name = (
            f"mog2-lr{learning_rate}-v{var_threshold}-w{work_width}"
            + (f"-h{hold}-m{match_level}" if hold else "")
            + ("-s" if drop_shadows else "")
        )
        self.reset()

    def reset(self) -> None:
        """Start a new background model: the next frame is a clip's first."""
        self._model = cv2.createBackgroundSubtractorMOG2(
            history=500, varThreshold=self._var_threshold, detectShadows=self._drop_shadows
        )
        self._frames = 0
        self._cuts = SceneCuts(DEFAULT_SCENE_CUT)
        self._reference: npt.NDArray[np.float32] | None = None
        self._held_for: npt.NDArray[np.int32] | None = None

    def mask(self, frame: Frame) -> Mask:
        """Moving pixels of the next frame of the clip (held ones too): (H, W) bool."""
        height, width = frame.shape[:2]
        scale = min(1.0, self._work_width / width)
        small = resize(frame, max(1, round(width * scale)), max(1, round(height * scale))) if scale < 1.0 else frame
        if self._cuts.cut(small) and self._frames:
            self.reset()  # a new shot: the cut's frame starts the model, as a clip's first frame does
        # The first frame only initialises the model (rate 1): with nothing to compare, nothing moves.
        foreground = self._model.apply(small, learningRate=1.0 if self._frames == 0 else self._learning_rate)
        self._frames += 1
        if self._frames == 1:
            if self._hold:
                self._reference, self._held_for = small.astype(np.float32), np.zeros(small.shape[:2], np.int32)
            return np.zeros((height, width), dtype=bool)
        foreground[foreground != 255] = 0  # with drop_shadows, MOG2 marks shadows 127
        moving = cv2.morphologyEx(foreground, cv2.MORPH_OPEN, self._kernel) > 0
        if self._hold:
            moving |= self._held(small, moving)
        if scale < 1.0:
            return np.asarray(cv2.resize(moving.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0)
        return np.asarray(moving)

    def _held(self, small: Frame, moving: Mask) -> Mask:
        """Pixels that moved before and still differ from the reference (younger than `hold` frames, not ghosts)."""
        assert self._reference is not None and self._held_for is not None
        current = small.astype(np.float32)
        difference = cv2.blur(cv2.transform(cv2.absdiff(current, self._reference), _MEAN), (5, 5))
        differs = difference > self._match_level
        if differs.mean() > SCENE_CHANGE:
            self._reference, self._held_for = current, np.zeros_like(self._held_for)
            return np.zeros_like(moving)
        held = ((self._held_for > 0) | moving) & differs
        self._held_for = np.where(held, self._held_for + 1, 0).astype(np.int32)
        released = (self._held_for > self._hold) | self._ghosts(current, self._reference, held & ~moving)
        self._held_for[released] = 0
        held &= ~released
        still = (~(held | moving)).astype(np.uint8)
        cv2.accumulateWeighted(current, self._reference, REFERENCE_RATE, mask=still)
        np.copyto(self._reference, current, where=released[..., None])
        return held

    def _ghosts(self, current: npt.NDArray[np.float32], reference: npt.NDArray[np.float32], held: Mask) -> Mask:
        """Held regions whose outline is an edge of the reference rather than of the frame: an object that left.

        A person who stopped has their outline in the frame; where someone stood in the reference and left,
        the outline is in the reference, and the frame shows the background they hid. Each region's outline
        (its pixels next to one not held) sums both pictures' gradients, all regions at once.
        """
        count, labels = cv2.connectedComponents(held.astype(np.uint8), connectivity=8)
        if count <= 1:
            return np.zeros_like(held)
        outline = held & ~(cv2.erode(held.astype(np.uint8), self._kernel, borderType=cv2.BORDER_REPLICATE) > 0)
        owners = labels[outline]
        now = np.bincount(owners, weights=_edges(current)[outline], minlength=count)
        before = np.bincount(owners, weights=_edges(reference)[outline], minlength=count)
        ghost = before > now
        ghost[0] = False
        return np.asarray(ghost[labels])


_MEAN = np.full((1, 3), 1 / 3, np.float32)


def _edges(image: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Gradient magnitude of an RGB image's mean (L1 of the Sobel derivatives)."""
    grey = cv2.transform(image, _MEAN)
    return np.asarray(np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1)))
