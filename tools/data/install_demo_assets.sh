#!/usr/bin/env bash
# Copyright (c) xfm_mm contributors. All rights reserved.
#
# Install the registry packages the demo pre-training set is built from
# (see docs/en/demo_data.md). Idempotent: every asset is checked first and a
# second run only prints "present" lines.
#
#   npm     emoji-datasource-google@16.0.0  -> $ASSETS/emoji-datasource-google
#           (emoji.json + the 64 px Noto PNGs; the sprite sheets are skipped)
#   PyPI    gensim==4.4.0 (downloaded, not installed; only four files of
#           its test_data are kept: pang_lee_polarity.cor and
#           lee_background.cor (text), wordsim353.tsv and simlex999.txt
#           (word-similarity check of the language encoder)) -> $ASSETS/gensim
#   PyPI    scikit-image (installed into $VENV only when missing)
#   Debian  dataset-fashion-mnist -> /usr/share/datasets/fashion-mnist
#           (apt-get install as root; otherwise apt-get download + dpkg -x
#           into $ASSETS/fashion-mnist)
#
# Environment:
#   XFM_VENV          project environment (default: <repo>/.venv)
#   XFM_DEMO_ASSETS   where npm/PyPI assets go (default: $XFM_VENV/demo_assets)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${XFM_VENV:-$ROOT/.venv}
ASSETS=${XFM_DEMO_ASSETS:-$VENV/demo_assets}
PY=$VENV/bin/python

EMOJI_VERSION=16.0.0
GENSIM_VERSION=4.4.0
SKIMAGE_VERSION=0.26.0
FMNIST_SYSTEM_DIR=/usr/share/datasets/fashion-mnist

say() { printf '[demo-assets] %s\n' "$*"; }
die() { printf '[demo-assets] ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "$PY" ] || die "no Python at $PY (run tools/install.sh or set XFM_VENV)"
mkdir -p "$ASSETS"

# 1. Noto emoji images and names (npm). `npm pack` fetches the published
#    tarball; only the files the demo reads are unpacked.
EMOJI_DIR=$ASSETS/emoji-datasource-google
if [ -f "$EMOJI_DIR/.complete-$EMOJI_VERSION" ]; then
    say "emoji-datasource-google $EMOJI_VERSION present"
else
    command -v npm >/dev/null || die "npm not found (apt-get install -y npm)"
    say "fetching emoji-datasource-google@$EMOJI_VERSION (74 MB)"
    TMP=$(mktemp -d)
    trap 'rm -rf "$TMP"' EXIT
    (cd "$TMP" && npm pack --silent "emoji-datasource-google@$EMOJI_VERSION" \
        >/dev/null) || die "npm pack emoji-datasource-google failed"
    rm -rf "$EMOJI_DIR"
    mkdir -p "$EMOJI_DIR"
    tar -xzf "$TMP/emoji-datasource-google-$EMOJI_VERSION.tgz" \
        -C "$EMOJI_DIR" --strip-components=1 --wildcards \
        package/package.json package/emoji.json package/LICENSE \
        package/README.md 'package/img/google/64/*' ||
        die "could not unpack the emoji tarball"
    rm -rf "$TMP"
    trap - EXIT
    touch "$EMOJI_DIR/.complete-$EMOJI_VERSION"
fi

# 2. Pang & Lee polarity sentences shipped in the gensim wheel. The wheel is
#    only downloaded and one data file kept, so gensim's runtime (scipy,
#    smart_open) never enters the environment.
GENSIM_DIR=$ASSETS/gensim
if [ -f "$GENSIM_DIR/.complete-$GENSIM_VERSION-v2" ]; then
    say "gensim $GENSIM_VERSION test data present"
else
    say "downloading gensim==$GENSIM_VERSION (wheel, not installed)"
    TMP=$(mktemp -d)
    trap 'rm -rf "$TMP"' EXIT
    "$PY" -m pip download -q --disable-pip-version-check --no-deps \
        "gensim==$GENSIM_VERSION" -d "$TMP" ||
        die "pip download gensim==$GENSIM_VERSION failed"
    rm -rf "$GENSIM_DIR"
    mkdir -p "$GENSIM_DIR"
    "$PY" - "$TMP" "$GENSIM_DIR" <<'PY' || die "gensim data not unpacked"
import pathlib, sys, tarfile, zipfile
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
data_dir = 'gensim/test/test_data/'
data_file = data_dir + 'pang_lee_polarity.cor'
wanted = {'COPYING': 'COPYING', 'LICENSE': 'COPYING'}
for name in ('pang_lee_polarity.cor', 'lee_background.cor',
             'wordsim353.tsv', 'simlex999.txt'):
    wanted[data_dir + name] = name
archive = next(iter(sorted(src.iterdir())))
if archive.suffix == '.whl':
    with zipfile.ZipFile(archive) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
else:
    with tarfile.open(archive) as tf:
        members = {m.name.split('/', 1)[1]: tf.extractfile(m).read()
                   for m in tf.getmembers() if m.isfile() and '/' in m.name}
found = set()
for name, data in members.items():
    for suffix, out in wanted.items():
        if name == suffix or name.endswith('.dist-info/' + suffix) or (
                name.endswith('.dist-info/licenses/' + suffix)):
            (dst / out).write_bytes(data)
            found.add(out)
missing = {'pang_lee_polarity.cor', 'lee_background.cor',
           'wordsim353.tsv', 'simlex999.txt'} - found
if missing:
    sys.exit(f'{archive.name} has no {data_dir}{sorted(missing)}')
PY
    rm -rf "$TMP"
    trap - EXIT
    touch "$GENSIM_DIR/.complete-$GENSIM_VERSION-v2"
fi

# 3. scikit-image's bundled photos (normally already installed from
#    requirements/tests.txt).
if "$PY" - <<'PY'; then
import importlib.util, os, sys
spec = importlib.util.find_spec('skimage')
ok = spec is not None and os.path.isfile(os.path.join(
    spec.submodule_search_locations[0], 'data', 'astronaut.png'))
sys.exit(0 if ok else 1)
PY
    say "scikit-image present"
else
    say "installing scikit-image==$SKIMAGE_VERSION into $VENV"
    "$PY" -m pip install -q --disable-pip-version-check \
        "scikit-image==$SKIMAGE_VERSION" || die "scikit-image install failed"
fi

# 4. Fashion-MNIST from Debian.
LOCAL_FMNIST=$ASSETS/fashion-mnist$FMNIST_SYSTEM_DIR
if [ -f "$FMNIST_SYSTEM_DIR/train-images-idx3-ubyte.gz" ]; then
    say "dataset-fashion-mnist present ($FMNIST_SYSTEM_DIR)"
elif [ -f "$LOCAL_FMNIST/train-images-idx3-ubyte.gz" ]; then
    say "dataset-fashion-mnist present ($LOCAL_FMNIST)"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show dataset-fashion-mnist >/dev/null 2>&1; then
        say "apt-get update (dataset-fashion-mnist not in the package lists)"
        apt-get update -qq || die "apt-get update failed"
    fi
    say "apt-get install dataset-fashion-mnist"
    apt-get install -y -qq --no-install-recommends dataset-fashion-mnist \
        >/dev/null || die "apt-get install dataset-fashion-mnist failed"
elif command -v apt-get >/dev/null; then
    say "not root: unpacking dataset-fashion-mnist into $ASSETS/fashion-mnist"
    TMP=$(mktemp -d)
    trap 'rm -rf "$TMP"' EXIT
    (cd "$TMP" && apt-get download -qq dataset-fashion-mnist) ||
        die "apt-get download dataset-fashion-mnist failed"
    dpkg -x "$TMP"/dataset-fashion-mnist_*.deb "$ASSETS/fashion-mnist"
    rm -rf "$TMP"
    trap - EXIT
else
    die "dataset-fashion-mnist needs apt-get (Debian/Ubuntu); copy its" \
        "*-ubyte.gz files to $LOCAL_FMNIST by hand"
fi

say "done: assets in $ASSETS"
