#!/usr/bin/env bash
# Build the wheel and check it in a fresh venv: the command, the registry, label CSVs, bundled recipes and the
# service's page.
# The venv reuses the build venv's installed packages (torch and the other heavy dependencies): nothing downloads;
# tympan itself is installed from the wheel only (--no-deps, --force-reinstall), and the checks run outside the
# source tree so they cannot import it.
set -euo pipefail
PYTHON=${PYTHON:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PYTHON" -m build --wheel --no-isolation --outdir "$WORK/dist" "$ROOT" >"$WORK/build.log" 2>&1 || {
    cat "$WORK/build.log"; exit 1; }
WHEEL=$(ls "$WORK"/dist/tympan-*.whl)
"$PYTHON" -m venv "$WORK/venv"
# Reuse the build venv's packages (torch & co.) through a .pth line: appended after the fresh venv's own
# site-packages, and its .pth files (an editable tympan) are not processed, so tympan comes from the wheel.
SITE=$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' >"$SITE/_reuse_build_venv.pth"
"$WORK/venv/bin/pip" install -q --no-deps --force-reinstall --no-index "$WHEEL"
cd "$WORK"
"$WORK/venv/bin/tympan" --help >/dev/null
"$WORK/venv/bin/tympan" --version
"$WORK/venv/bin/python" - "$ROOT" <<'PY'
import sys
from importlib import metadata
from pathlib import Path

import tympan
from tympan.labels import get_labels, list_label_sets

root = Path(sys.argv[1]).resolve()
assert root not in Path(tympan.__file__).resolve().parents, f"imported the source tree: {tympan.__file__}"
assert tympan.__version__ == metadata.version("tympan")
assert len(tympan.list_models()) > 50, tympan.list_models()
assert len(get_labels("audioset")) == 527 and len(list_label_sets()) >= 5
from tympan.train.recipes import recipe_dir

recipes = sorted(p.name for p in recipe_dir().glob("*.yaml"))
assert "dcase23_cpmobile_kd.yaml" in recipes, recipes
assert (Path(tympan.__file__).parent / "models" / "zoo" / "complexity.json").is_file()
static = Path(tympan.__file__).parent / "serve" / "static"
assert {"index.html", "app.js", "capture-worklet.js", "style.css"} <= {p.name for p in static.iterdir()}, static
print(f"wheel ok: {len(tympan.list_models())} presets, {len(recipes)} recipes")
PY
