"""Writing a run's results: results.csv, results.json, BD-rates, RD plots, report.html, summary.md.

Values that could not be measured are written as "n/a" in the CSV and null in the JSON, and
`not_available` (JSON, report, summary) says why; failed cells keep their rows with status
"failed" and the error in `detail`.

The outputs follow `encode`'s rules (io/safe_output): all of them are checked before any work
(`check_outputs`), an existing one is replaced only with `force`, a symlink is never written
through nor replaced, and each file is written under a locked partial name and published by a rename.
The pictures of the worst blocks (OUT/worst/, written as cells are measured) belong to the run, like its
cache: replaced without `force`, but never through a symlink, and a symlinked folder is refused.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import platform
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..io.safe_output import check_file_target, write_file
from ..metrics import BLOCK_ERROR_BOUND
from ..version import __version__
from .bdrate import bd_rate
from .ffmpeg_tools import ffmpeg_version
from .html_report import write_html
from .masks import MaskSource
from .plots import plot_path, write_plots
from .results import COLUMNS, LABELS, EvalConfig, EvalRun, fmt, worst_cells

SUMMARY_COLUMNS = (
    "clip",
    "codec",
    "point",
    "kbps",
    "bpp",
    "psnr_db",
    "ms_ssim",
    "vmaf",
    "psnr_kept_db",
    "psnr_face_db",
    "psnr_outside_db",
    "frames_over_bound",
    "worst_block",
    "flicker",
    "encode_fps",
    "decode_fps",
)
BD_METRICS = ("psnr_db", "ms_ssim", "vmaf", "psnr_kept_db", "ms_ssim_kept", "psnr_face_db")
REPORT_FILES = {"csv": "results.csv", "json": "results.json", "html": "report.html", "summary": "summary.md"}
CACHE_FOLDERS = ("cache", "cache/cells", "cache/masks", "worst")
SYMLINK_HINT = "is a symbolic link; eval never writes through one nor replaces it, --force or not"


def output_paths(config: EvalConfig) -> list[Path]:
    """Every file a run may write into `config.out`: the reports and one RD plot per clip."""
    return [config.out / name for name in REPORT_FILES.values()] + [plot_path(config.out, c.stem) for c in config.clips]


def check_outputs(config: EvalConfig) -> None:
    """Refuse before any work: an --out that is no folder, a symlink among the outputs or the cache folders,
    an output that is one of the clips, an existing output without `config.force`."""
    out = config.out
    if os.path.lexists(out) and not out.is_dir():
        raise OutputError("is not a folder; --out names the folder the results go into", out)
    if not out.is_dir():
        return  # made by the run: nothing in it yet
    for folder in (out / name for name in CACHE_FOLDERS):
        if folder.is_symlink() or (os.path.lexists(folder) and not folder.is_dir()):
            raise OutputError("is a symbolic link or not a folder; eval keeps its cache in folders of its own", folder)
    for path in output_paths(config):
        if path.is_symlink():
            raise OutputError(SYMLINK_HINT, path)
        check_file_target(path, config.force, config.clips)


def environment(ffmpeg: str, vmaf_exe: str | None, masks: MaskSource | None) -> dict[str, Any]:
    """Versions of what produced the numbers, recorded in results.json and the report."""
    return {
        "streamcodec": __version__,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
        "ffmpeg": ffmpeg_version(ffmpeg),
        "vmaf_ffmpeg": f"{vmaf_exe} ({ffmpeg_version(vmaf_exe)})" if vmaf_exe else None,
        "mask_source": masks.name if masks else None,
    }


def _plain(value: Any) -> Any:
    """JSON has no inf/nan: identical frames' PSNR (inf) is written as the string "inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def bd_rate_table(rows: list[dict[str, Any]], anchor: str, not_available: dict[str, str]) -> list[dict[str, Any]]:
    """BD-rate (kbps vs each quality metric) of every codec against `anchor`, per clip.

    Returns:
        One dict per (clip, codec, metric): bd_rate_percent or None with the reason.
    """
    table = []
    for clip in dict.fromkeys(row["clip"] for row in rows):

        def curve(codec: str, metric: str, clip: str = clip) -> tuple[list[float], list[float]]:
            ok = [r for r in rows if (r["clip"], r["codec"], r["status"]) == (clip, codec, "ok") and r.get(metric) is not None]
            return [r["kbps"] for r in ok], [r[metric] for r in ok]

        for codec in dict.fromkeys(row["codec"] for row in rows if row["codec"] != anchor):
            for metric in BD_METRICS:
                entry = {"clip": clip, "codec": codec, "anchor": anchor, "metric": metric}
                reason = not_available.get(codec) or not_available.get(anchor) or not_available.get(metric)
                if reason:
                    table.append({**entry, "bd_rate_percent": None, "reason": f"not available: {reason}"})
                    continue
                result = bd_rate(*curve(anchor, metric), *curve(codec, metric))
                table.append({**entry, "bd_rate_percent": result.percent, "reason": result.reason})
    return table


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """The result rows as CSV, "n/a" where a value was not measured."""
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: "n/a" if row.get(column) is None else row[column] for column in COLUMNS})


def write_json(run: EvalRun, bd: list[dict[str, Any]], path: Path) -> None:
    """The run as JSON: command, settings, environment, what was not available, counts, rows and BD-rates."""
    config = run.config
    document = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": config.command,
        "config": {
            "clips": [str(c) for c in config.clips],
            "codecs": config.codecs,
            "points": config.points,
            "anchor": run.anchor,
            "model": config.model,
            "gop": config.gop,
            "vmaf": config.vmaf,
        },
        "environment": run.environment,
        "not_available": run.not_available,
        "counts": {"computed": run.computed, "cached": run.cached, "failed": run.failed, "unavailable": run.unavailable},
        "rows": [{column: _plain(row.get(column)) for column in COLUMNS} for row in run.rows],
        "bd_rate": bd,
    }
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")


def _bd_lines(bd: list[dict[str, Any]], anchor: str) -> list[str]:
    """BD-rates that could be computed, then why the others could not (metrics sharing a reason on one line)."""
    known = [b for b in bd if b["bd_rate_percent"] is not None]
    lines = [f"- {b['clip']} {b['codec']} ({LABELS[b['metric']]}): {b['bd_rate_percent']:+.1f} %" for b in known]
    missing: dict[tuple[str, str, str], list[str]] = {}
    for b in bd:
        if b["bd_rate_percent"] is None:
            missing.setdefault((b["clip"], b["codec"], b["reason"] or "unknown"), []).append(LABELS[b["metric"]])
    lines += [f"- {clip} {codec} ({', '.join(metrics)}): n/a — {reason}" for (clip, codec, reason), metrics in missing.items()]
    return lines or [f"- none computable: no codec besides the anchor {anchor} was run"]


def _worst_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Each codec's worst block outside the kept region per clip, with the picture of its frame."""
    worst = worst_cells(rows)
    if not worst:
        return []
    lines = ["", f"Worst 16x16 block outside the kept region (mean absolute luma error; the bound is {BLOCK_ERROR_BOUND:g}):", ""]
    for r in worst:
        picture = f" — [source | decoded]({r['worst_image']})" if r.get("worst_image") else ""
        lines.append(f"- {r['clip']} {r['codec']} {r['point']}: {r['worst_block']:.1f} levels in frame {r['worst_frame']}, "
                     f"{r['frames_over_bound']} of {r['frames']} frames over the bound{picture}")  # fmt: skip
    return lines


def summary_markdown(run: EvalRun, bd: list[dict[str, Any]], plots: list[Path]) -> str:
    """The README section: results table, BD-rates, plots and the command that made them."""
    columns = SUMMARY_COLUMNS
    lines = ["| " + " | ".join(LABELS.get(c, c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c), c) for c in columns) + " |" for r in run.rows if r["status"] == "ok"]
    remarks = [f"- {r['clip']} {r['codec']} {r['point']}: {r['status']} — {r['detail']}" for r in run.rows if r["status"] != "ok"]
    remarks += [
        f"- {r['clip']} {r['codec']} {r['point']}: {r['notes']}" for r in run.rows if r["status"] == "ok" and r.get("notes")
    ]
    if remarks:
        lines += ["", *remarks]
    lines += _worst_lines(run.rows)
    lines += ["", f"BD-rate against {run.anchor} (negative = fewer bits for the same quality):", ""]
    lines += _bd_lines(bd, run.anchor)
    if run.not_available:
        lines += ["", "Not available:", "", *(f"- {name}: {reason}" for name, reason in run.not_available.items())]
    lines += ["", *(f"![RD curves {p.stem}]({p.name})" for p in plots)]
    if run.config.command:
        lines += ["", f"Produced by `{run.config.command}`."]
    return "\n".join(lines) + "\n"


def write_reports(run: EvalRun) -> dict[str, Path]:
    """Write every output file into the run's folder (see the module note); returns them by kind."""
    out, force = run.config.out, run.config.force
    bd = bd_rate_table(run.rows, run.anchor, run.not_available)
    outputs = {kind: out / name for kind, name in REPORT_FILES.items()}
    write_file(outputs["csv"], lambda path: write_csv(run.rows, path), force)
    write_file(outputs["json"], lambda path: write_json(run, bd, path), force)
    plots = write_plots(run.rows, out, force)
    write_file(outputs["html"], lambda path: write_html(run, bd, plots, path), force)
    write_file(outputs["summary"], lambda path: path.write_text(summary_markdown(run, bd, plots)), force)
    outputs |= {f"plot:{p.stem}": p for p in plots}
    return outputs
