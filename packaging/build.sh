#!/usr/bin/env bash
# Build the desktop bundle: dist/hubsync/ with the `hubsync` and `hubsync-tray` programs.
#
#   packaging/build.sh            # reuse build/venv when it exists
#   packaging/build.sh --clean    # start from a new build venv
#   PYTHON=python3.12 packaging/build.sh
#
# Everything it makes lives in build/ and dist/ (both git-ignored): a build venv with the
# project installed as a user would get it (`pip install '.[gui]'`) plus PyInstaller, the
# hicolor icons rendered from the SVG, PyInstaller's work files, and the bundle.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
BUILD=$ROOT/build
VENV=$BUILD/venv
DIST=$ROOT/dist

if [ "${1:-}" = "--clean" ]; then
  rm -rf "$VENV" "$BUILD/pyinstaller" "$BUILD/icons" "$DIST/hubsync"
elif [ -n "${1:-}" ]; then
  echo "usage: $0 [--clean]" >&2
  exit 2
fi

"$PYTHON" - <<'PY' || { echo "packaging needs Python 3.11 or newer (set PYTHON=...)" >&2; exit 1; }
import sys, sysconfig
sys.exit(0 if sys.version_info >= (3, 11) and sysconfig.get_config_var("Py_ENABLE_SHARED") else 1)
PY

start=$(date +%s)
cd "$ROOT"
unset PYTHONPATH PYTHONHOME

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> build venv: $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --quiet --disable-pip-version-check)
echo "==> installing hubsync[gui] and PyInstaller into the build venv"
# setuptools builds in build/lib: clear it so no deleted module sneaks into the wheel.
rm -rf "$BUILD/lib" "$BUILD"/bdist.*
"${PIP[@]}" install -c packaging/constraints.txt ".[gui]" pyinstaller
# Same version number as an earlier build: force this tree's code in.
"${PIP[@]}" install --no-deps --force-reinstall .

echo "==> rendering hicolor icons"
rm -rf "$BUILD/icons"
QT_QPA_PLATFORM=offscreen "$VENV/bin/python" packaging/render_icons.py "$BUILD/icons" >/dev/null

echo "==> pyinstaller"
# Run outside the source tree so nothing is imported from it by accident.
(
  cd "$BUILD"
  HUBSYNC_ICON_DIR="$BUILD/icons" "$VENV/bin/pyinstaller" --noconfirm --log-level WARN \
    --distpath "$DIST" --workpath "$BUILD/pyinstaller" "$ROOT/packaging/hubsync.spec"
)

bundle=$DIST/hubsync
"$bundle/hubsync" --version >/dev/null
end=$(date +%s)
echo "==> built in $((end - start)) s"
echo "bundle: $bundle ($(du -sh "$bundle" | cut -f1), $(find "$bundle" -type f | wc -l) files)"
echo "run:    $bundle/hubsync --help    $bundle/hubsync-tray"
echo "test:   HUBSYNC_TEST_BUNDLE=$bundle .venv/bin/python -m pytest tests/test_bundle.py"
