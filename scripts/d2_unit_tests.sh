#!/usr/bin/env bash
# Run Detectron2's own unit tests against masktron, changing nothing but the package name
# (`detectron2.X.Y` -> `masktron.X.Y`), as measured in docs/porting.md.
#
# usage: scripts/d2_unit_tests.sh DETECTRON2_CHECKOUT [pytest arguments...]
#
# Detectron2's files are copied into a temporary folder (never into this repository), flat, with
# the helper files its config tests load (tests/config/root_cfg.py and tests/config/dir1/).
# Their own test dependencies are needed too: fvcore, iopath, opencv-python-headless, tabulate.
# Set DETECTRON2_DATASETS to a folder with datasets/coco/... for the tests that read
# coco_2017_val_100; without it they fail on the missing file.
set -euo pipefail
d2=${1:?usage: $0 DETECTRON2_CHECKOUT [pytest arguments...]}
shift
[ -d "$d2/tests" ] || { echo "$d2/tests: not a Detectron2 checkout" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d -t d2tests.XXXXXX)
trap 'rm -rf "$work"' EXIT
rename() {
  sed -E -e 's/^(\s*)(from|import) detectron2( |$)/\1\2 masktron\3/' \
         -e 's/\bdetectron2\.([a-z_])/masktron.\1/g' "$1" > "$2"
}
find "$d2/tests" -name 'test_*.py' | while read -r f; do rename "$f" "$work/$(basename "$f")"; done
if [ -d "$d2/tests/config" ]; then
  rename "$d2/tests/config/root_cfg.py" "$work/root_cfg.py"
  mkdir -p "$work/dir1"
  for f in "$d2"/tests/config/dir1/*.py; do rename "$f" "$work/dir1/$(basename "$f")"; done
fi
cd "$work"
PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" python -m pytest -q -p no:cacheprovider -o addopts="" \
  --continue-on-collection-errors -rfEs "$@" .
