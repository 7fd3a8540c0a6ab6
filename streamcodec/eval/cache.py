"""Results cached per (clip, codec, rate point): one JSON file each under OUT/cache/cells/.

A cell's key hashes the clip's content, the codec, the point and the codec's settings (model
identifier, encoder options, ROI), so a retrained model or a changed clip never reuses old numbers.
Optional measurements (VMAF, mask-based metrics) are recorded in the cell as `features`; a cached
cell is reused only if it has at least what the current run measures, so a rerun fills in what
became available. Failed cells are stored too (for the record) but always retried.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

#: 2: rows measure outside the kept region too (psnr_outside_db, frames_over_bound, worst_block, worst_frame).
#: 3: rows measure the face region too (psnr_face_db, ms_ssim_face, face_share, face_frames).
CACHE_VERSION = 3
_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """sha256 of a file's content (hex, first 16 digits): a clip's identity in cache keys."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def safe_name(text: str) -> str:
    """`text` as a short file-name part: runs of other characters than letters, digits and ._=+- become one _."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text)[:60]


class CellCache:
    """The cell files of one output folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, clip: str, digest: str, codec: str, point: str, settings: dict[str, Any]) -> Path:
        """File of one cell: readable name plus a hash of everything that determines its result."""
        identity = {"version": CACHE_VERSION, "clip": digest, "codec": codec, "point": point, "settings": settings}
        key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return self.folder / f"{safe_name(clip)}-{digest[:8]}__{safe_name(codec)}__{safe_name(point)}__{key}.json"

    def load(self, path: Path, features: dict[str, Any]) -> dict[str, Any] | None:
        """The cached row if it succeeded and measured at least `features`; else None (compute it)."""
        try:
            cell = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if cell.get("status") != "ok":
            return None
        cached = cell.get("features", {})
        for name, wanted in features.items():
            if wanted and cached.get(name) != wanted:
                return None
        row: dict[str, Any] = cell["row"]
        return row

    def store(self, path: Path, row: dict[str, Any], features: dict[str, Any]) -> None:
        """Write a cell atomically, so a crash never leaves a half-written file to be trusted."""
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps({"status": row["status"], "features": features, "row": row}, indent=1, default=str))
        os.replace(partial, path)
