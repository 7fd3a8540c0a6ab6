"""The one-page HTML report: settings, what is not available, BD-rates, RD plots, the worst block outside the kept
region of each codec (its frame, source | decoded), the full table."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..metrics import BLOCK_ERROR_BOUND
from .results import COLUMNS, LABELS, EvalRun, fmt, worst_cells

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:110em}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
td:nth-child(-n+3),th{text-align:left}tr.failed{background:#fdd}tr.na{color:#888}img{max-width:100%}"""
TABLE_COLUMNS = tuple(c for c in COLUMNS if c not in ("width", "height", "duration_s", "worst_image", "cached"))


def _table(headers: list[str], rows: list[tuple[str, list[str]]]) -> str:
    """An HTML table; each row is (css class, cells), already escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(f'<tr class="{cls}">' + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>" for cls, cells in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _bd_section(bd: list[dict[str, Any]], anchor: str) -> str:
    rows = []
    for entry in bd:
        value = f"{entry['bd_rate_percent']:+.1f} %" if entry["bd_rate_percent"] is not None else "n/a"
        rows.append(
            (
                "" if entry["bd_rate_percent"] is not None else "na",
                [
                    html.escape(entry["clip"]),
                    html.escape(entry["codec"]),
                    html.escape(LABELS[entry["metric"]]),
                    value,
                    html.escape(entry["reason"] or ""),
                ],
            )
        )
    intro = (
        f"<p>Average rate change against <b>{html.escape(anchor)}</b> at equal quality (Bjøntegaard, PCHIP over "
        "log-rate on the shared quality range); negative means fewer bits.</p>"
    )
    return "<h2>BD-rate</h2>" + intro + _table(["clip", "codec", "quality metric", "BD-rate", "why n/a"], rows)


def _worst_section(rows: list[dict[str, Any]]) -> str:
    """Each codec's worst block outside the kept region per clip: its frame, source beside decoded."""
    worst = worst_cells(rows)
    if not worst:
        return ""
    intro = (
        "<p>Per clip and codec, the 16x16 block with the largest mean absolute BT.601 luma error against the "
        f"source among the blocks no kept pixel touches (the same masks for every codec), over every rate point; "
        f"over {BLOCK_ERROR_BOUND:g} levels a block shows what is not there, or hides what is. Left the source, "
        "right the decoded frame, the block outlined.</p>"
    )
    figures = []
    for row in worst:
        caption = html.escape(
            f"{row['clip']} {row['codec']} {row['point']}: {row['worst_block']:.1f} levels in frame {row['worst_frame']}; "
            f"{row['frames_over_bound']} of {row['frames']} frames over the bound"
        )
        image = f'<img src="{html.escape(row["worst_image"])}" alt="{caption}">' if row.get("worst_image") else ""
        figures.append(f"<figure>{image}<figcaption>{caption}</figcaption></figure>")
    return "<h2>Worst block outside the kept region</h2>" + intro + "".join(figures)


def _results_section(rows: list[dict[str, Any]]) -> str:
    body = []
    for row in rows:
        cls = {"failed": "failed", "n/a": "na"}.get(row["status"], "")
        body.append((cls, [html.escape(fmt(row.get(c), c)) for c in TABLE_COLUMNS]))
    return "<h2>All cells</h2>" + _table([LABELS.get(c, c) for c in TABLE_COLUMNS], body)


def write_html(run: EvalRun, bd: list[dict[str, Any]], plots: list[Path], path: Path) -> None:
    """Write report.html next to the plots it shows (linked by file name)."""
    config, env = run.config, run.environment
    settings = (
        f"{len(config.clips)} clip(s), codecs {', '.join(config.codecs)}, {config.points} points, model {config.model}, "
        f"GOP {config.gop} for every codec. Bitrate = whole file size × 8 / duration (container included)."
    )
    facts = [
        html.escape(fact)
        for fact in (
            settings,
            f"ffmpeg: {env.get('ffmpeg')}",
            f"VMAF: {env.get('vmaf_ffmpeg') or 'n/a'}",
            f"cells: {run.computed} computed, {run.cached} cached, {run.failed} failed, {run.unavailable} not available",
        )
    ]
    if config.command:
        facts.insert(0, f"command: <code>{html.escape(config.command)}</code>")
    missing = "".join(f"<li><b>{html.escape(k)}</b>: not available — {html.escape(v)}</li>" for k, v in run.not_available.items())
    images = "".join(f'<p><img src="{html.escape(p.name)}" alt="RD curves {html.escape(p.stem)}"></p>' for p in plots)
    page = [
        '<!doctype html><html><head><meta charset="utf-8"><title>streamcodec evaluation</title>',
        f"<style>{STYLE}</style></head><body><h1>streamcodec evaluation</h1>",
        "<ul>" + "".join(f"<li>{f}</li>" for f in facts) + "</ul>",
        f"<h2>Not available</h2><ul>{missing}</ul>" if missing else "",
        "<h2>Rate–distortion</h2>" + (images or "<p>No measured points to plot.</p>"),
        _bd_section(bd, run.anchor),
        _worst_section(run.rows),
        _results_section(run.rows),
        "</body></html>",
    ]
    path.write_text("\n".join(page))
