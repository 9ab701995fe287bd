# Copyright (c) xfm_mm contributors. All rights reserved.
"""Build the small, real pre-training set of the xfm_mm demo.

Every source is a registry package installed by
``tools/data/install_demo_assets.sh``; nothing is downloaded here. See
``docs/en/demo_data.md`` for sources, licenses, counts and the split.

Output (under ``--out``, image paths in records are relative to it)::

    images/{emoji,skimage,region,fashion_mnist}/*.png
    image_text/train.jsonl        {"image", "caption", "image_id", "source"}
    image_text/test.jsonl         held-out pairs, same schema
    image_text/test_retrieval.json  [{"image", "caption": [..], "image_id"}]
    image_text/train_retrieval.json [{"image", "caption", "image_id"}] (the
                                  train pairs in the retrieval fine-tuning
                                  format)
    region/train.jsonl            {"image", "caption", "elems": [{"caption",
                                  "bb": [x, y, w, h]}]}
    text/train.jsonl              {"desc", "label"}
    image/train.jsonl             {"image", "label"}
    licenses/                     upstream license files
    manifest.json                 counts, sources, versions, fingerprint

Usage::

    python tools/data/prepare_demo_data.py [--out data/demo] [--assets DIR]
"""
import argparse
import gzip
import hashlib
import importlib.util
import json
import os
import os.path as osp
import random
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageChops

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
INSTALL_HINT = ('run `bash tools/data/install_demo_assets.sh` (or pass '
                '--assets / set XFM_DEMO_ASSETS to where it installed them)')
FORMAT_VERSION = 3

EMOJI_PACKAGE = 'emoji-datasource-google'
EMOJI_VERSION = '16.0.0'
GENSIM_VERSION = '4.4.0'
FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress',
                         'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag',
                         'Ankle boot')
SKIN_TONES = {
    '1F3FB': 'light skin tone',
    '1F3FC': 'medium-light skin tone',
    '1F3FD': 'medium skin tone',
    '1F3FE': 'medium-dark skin tone',
    '1F3FF': 'dark skin tone',
}
# scikit-image files bundled in the wheel (no pooch download) whose
# docstrings state their copyright status, with hand-written captions.
SKIMAGE_PHOTOS = (
    ('astronaut.png', 'public domain (NASA)',
     'astronaut eileen collins in an orange space suit next to a flag'),
    ('camera.png', 'CC0 (Lav Varshney)',
     'black and white photo of a man looking through a camera on a tripod'),
    ('chelsea.png', 'CC0 (Stefan van der Walt)',
     'close up of the face of a tabby cat with green eyes'),
    ('coffee.png', 'CC0 (Rachel Michetti)',
     'a cup of coffee on a red saucer on a wooden table'),
    ('rocket.jpg', 'public domain (SpaceX)',
     'a rocket on its launch pad at dusk between two towers'),
    ('hubble_deep_field.jpg', 'public domain (NASA)',
     'many small distant galaxies in the dark night sky'),
    ('horse.png', 'CC0 (Andreas Preuss)',
     'black silhouette of a horse on a white background'),
    ('coins.png', 'no known copyright restrictions (Brooklyn Museum)',
     'rows of old greek coins on a dark background'),
    ('text.png', 'public domain (Wikipedia)',
     'handwritten letters and numbers on a sheet of paper'),
    ('retina.jpg', 'CC0 (Mikael Haggstrom)',
     'photo of a human retina with red blood vessels'),
    ('ihc.png', 'no known copyright restrictions (CMMI)',
     'microscope image of tissue stained brown and blue'),
    ('clock_motion.png', 'public domain (Stefan van der Walt)',
     'a motion blurred photo of a round wall clock'),
    ('brick.png', 'CC0 (CC0Textures)', 'a gray brick wall'),
    ('grass.png', 'CC0 (DeviantArt, linolafett)',
     'a close up of green grass in black and white'),
    ('gravel.png', 'CC0 (CC0Textures)', 'a close up of small gravel stones'),
    ('microaneurysms.png', 'CC0 (Andreas Maier)',
     'gray close up of a retina with blood vessels and dark spots'),
    ('color.png', 'synthetic image',
     'a color wheel with all hues around a white center'),
    ('phantom.png', 'synthetic image',
     'the shepp logan phantom, a simulated scan of a head'),
    ('chessboard_RGB.png', 'synthetic image',
     'a black and white checkerboard pattern'),
)


class DemoAssetError(FileNotFoundError):
    """A registry asset the demo set is built from is not installed."""


def _missing(what: str, path: str) -> DemoAssetError:
    return DemoAssetError(f'{what} not found at {path}; {INSTALL_HINT}')


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def default_assets_dir() -> str:
    """Return where ``install_demo_assets.sh`` puts the npm/PyPI assets.

    Checked in order: ``$XFM_DEMO_ASSETS``, ``$XFM_VENV/demo_assets``,
    ``<sys.prefix>/demo_assets``, ``<repo>/.venv/demo_assets``; the first
    existing one wins (the last one when none exists).

    Returns:
        str: The assets directory.
    """
    if os.environ.get('XFM_DEMO_ASSETS'):
        return os.environ['XFM_DEMO_ASSETS']
    candidates = [osp.join(sys.prefix, 'demo_assets'),
                  osp.join(REPO_ROOT, '.venv', 'demo_assets')]
    if os.environ.get('XFM_VENV'):
        candidates.insert(0, osp.join(os.environ['XFM_VENV'], 'demo_assets'))
    return next((c for c in candidates if osp.isdir(c)), candidates[-1])


def locate_sources(assets_dir: str,
                   fashion_mnist_dir: Optional[str] = None,
                   skimage_data_dir: Optional[str] = None) -> Dict[str, str]:
    """Find every source file and fail clearly when one is absent.

    Args:
        assets_dir (str): Directory filled by ``install_demo_assets.sh``.
        fashion_mnist_dir (str, optional): Folder with the Fashion-MNIST
            ``*-ubyte.gz`` files. Defaults to the Debian package's folder,
            then ``<assets_dir>/fashion-mnist/usr/share/...``.
        skimage_data_dir (str, optional): scikit-image's bundled ``data``
            folder. Defaults to the installed package's.

    Returns:
        dict: Paths keyed by ``emoji_dir``, ``polarity``, ``news`` (the Lee
        news corpus), ``fashion_mnist`` and ``skimage``.
    """
    emoji_dir = osp.join(assets_dir, EMOJI_PACKAGE)
    if not osp.isfile(osp.join(emoji_dir, 'emoji.json')):
        raise _missing(f'npm package {EMOJI_PACKAGE}@{EMOJI_VERSION}',
                       osp.join(emoji_dir, 'emoji.json'))
    polarity = osp.join(assets_dir, 'gensim', 'pang_lee_polarity.cor')
    if not osp.isfile(polarity):
        spec = importlib.util.find_spec('gensim')
        if spec is not None and spec.submodule_search_locations:
            installed = osp.join(spec.submodule_search_locations[0], 'test',
                                 'test_data', 'pang_lee_polarity.cor')
            polarity = installed if osp.isfile(installed) else polarity
    if not osp.isfile(polarity):
        raise _missing(
            f'pang_lee_polarity.cor of PyPI gensim=={GENSIM_VERSION}',
            polarity)
    news = osp.join(osp.dirname(polarity), 'lee_background.cor')
    if not osp.isfile(news):
        raise _missing(
            f'lee_background.cor of PyPI gensim=={GENSIM_VERSION}', news)
    if fashion_mnist_dir is None:
        local = osp.join(assets_dir, 'fashion-mnist',
                         FASHION_MNIST_DIR.lstrip('/'))
        fashion_mnist_dir = FASHION_MNIST_DIR if osp.isdir(
            FASHION_MNIST_DIR) or not osp.isdir(local) else local
    images_gz = osp.join(fashion_mnist_dir, 'train-images-idx3-ubyte.gz')
    if not osp.isfile(images_gz):
        raise _missing('Debian package dataset-fashion-mnist', images_gz)
    if skimage_data_dir is None:
        spec = importlib.util.find_spec('skimage')
        if spec is None or not spec.submodule_search_locations:
            raise DemoAssetError(
                'PyPI package scikit-image is not installed in this Python '
                f'({sys.executable}); {INSTALL_HINT}')
        skimage_data_dir = osp.join(spec.submodule_search_locations[0],
                                    'data')
    for name, _, _ in SKIMAGE_PHOTOS:
        if not osp.isfile(osp.join(skimage_data_dir, name)):
            raise _missing(f'scikit-image bundled image {name}',
                           osp.join(skimage_data_dir, name))
    return dict(emoji_dir=emoji_dir, polarity=polarity, news=news,
                fashion_mnist=fashion_mnist_dir, skimage=skimage_data_dir)


def _package_version(dist_name: str, fallback: str = 'unknown') -> str:
    try:
        from importlib.metadata import version
        return version(dist_name)
    except Exception:  # noqa: BLE001 (not installed: data read from a dir)
        return fallback


def _debian_version(package: str) -> str:
    try:
        result = subprocess.run(
            ['dpkg-query', '-W', '-f=${Version}', package],
            capture_output=True, text=True, check=False)
    except OSError:  # not a Debian system: files were given by path
        return 'unknown'
    return result.stdout.strip() or 'unknown'


def _npm_version(package_dir: str) -> str:
    try:
        with open(osp.join(package_dir, 'package.json'),
                  encoding='utf-8') as f:
            return json.load(f).get('version', 'unknown')
    except (OSError, ValueError):
        return 'unknown'


def _emoji_groups(emoji_dir: str) -> List[dict]:
    """One group per base emoji: its image, name and skin-tone variants."""
    path = osp.join(emoji_dir, 'emoji.json')
    with open(path, encoding='utf-8') as f:
        entries = json.load(f)
    groups, seen = [], set()
    for i, entry in enumerate(sorted(entries, key=lambda e: e['sort_order'])):
        for field in ('name', 'image', 'category'):
            if not isinstance(entry.get(field), str):
                raise ValueError(f'{path}: entry {i} has no string "{field}"')
        name = ' '.join(entry['name'].lower().split())
        if entry['category'] == 'Component' or name in seen:
            continue  # skin-tone swatches; one duplicated name
        seen.add(name)
        variants = []
        for key, var in sorted(entry.get('skin_variations', {}).items()):
            tones = set(key.split('-'))
            if len(tones) == 1 and key.split('-')[0] in SKIN_TONES:
                tone = SKIN_TONES[key.split('-')[0]]
                variants.append((var['image'], f'{name} with {tone}'))
        groups.append(dict(kind='emoji', file=entry['image'], caption=name,
                           category=entry['category'], variants=variants))
    return groups


def _to_rgb_on_white(image: Image.Image) -> Image.Image:
    if image.mode in ('RGBA', 'LA', 'P'):
        image = image.convert('RGBA')
        canvas = Image.new('RGB', image.size, (255, 255, 255))
        canvas.paste(image, mask=image.getchannel('A'))
        return canvas
    return image if image.mode in ('RGB', 'L') else image.convert('RGB')


def _save_png(image: Image.Image, out_root: str, rel_path: str) -> str:
    image.save(osp.join(out_root, rel_path), format='PNG', optimize=False)
    return rel_path


def _write_jsonl(path: str, records: Sequence[dict]) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + '\n')


def _build_image_text(groups: List[dict], src: Dict[str, str], out: str,
                      num_test: int, max_pairs: int,
                      rng: random.Random) -> Tuple[list, list, list, list]:
    """Split groups into held-out test pairs and capped training pairs.

    Returns the train and test records, the retrieval annotation and the
    training-side groups (for the region composites).
    """
    if num_test >= len(groups):
        raise ValueError(f'--num-test {num_test} must be below the '
                         f'{len(groups)} available image groups')
    order = list(range(len(groups)))
    rng.shuffle(order)
    test_groups = [groups[i] for i in sorted(order[:num_test])]
    train_groups = [groups[i] for i in sorted(order[num_test:])]

    train_pairs = []  # (kind, file, caption)
    for g in train_groups:
        train_pairs.append((g['kind'], g['file'], g['caption']))
        train_pairs += [(g['kind'], f, c) for f, c in g.get('variants', [])]
    rng.shuffle(train_pairs)
    train_pairs = sorted(train_pairs[:max(max_pairs - num_test, 0)])

    def write(kind: str, file: str) -> str:
        stem = osp.splitext(file)[0]
        rel = f'images/{kind}/{stem}.png'
        if not osp.exists(osp.join(out, rel)):
            path = osp.join(src['emoji_dir'], 'img', 'google', '64', file) \
                if kind == 'emoji' else osp.join(src['skimage'], file)
            if not osp.isfile(path):
                raise _missing(f'{kind} image', path)
            with Image.open(path) as im:
                im = _to_rgb_on_white(im)
                im.thumbnail((512, 512), Image.BICUBIC)
                _save_png(im, out, rel)
        return rel

    train = [dict(image=write(k, f), caption=c, image_id=i, source=k)
             for i, (k, f, c) in enumerate(train_pairs)]
    test = [dict(image=write(g['kind'], g['file']), caption=g['caption'],
                 image_id=i, source=g['kind'])
            for i, g in enumerate(test_groups)]
    retrieval = [dict(image=r['image'], caption=[r['caption']],
                      image_id=r['image_id']) for r in test]
    return train, test, retrieval, train_groups


def _place_boxes(sizes: List[int], canvas: int,
                 rng: random.Random) -> List[Tuple[int, int]]:
    """Top-left corners in distinct canvas quadrants (so never overlapping)
    for squares no larger than half the canvas."""
    half = canvas // 2
    quadrants = rng.sample([(0, 0), (1, 0), (0, 1), (1, 1)], len(sizes))
    return [(qx * half + rng.randint(0, half - size),
             qy * half + rng.randint(0, half - size))
            for size, (qx, qy) in zip(sizes, quadrants)]


def _build_regions(emoji: List[Tuple[str, str]], src: Dict[str, str],
                   out: str, num_images: int, canvas: int,
                   rng: random.Random) -> List[dict]:
    """Paste 2-4 training emoji on white canvases; boxes are exact."""
    if len(emoji) < 4:
        raise ValueError(f'need at least 4 training emoji, got {len(emoji)}')
    cache: Dict[str, Image.Image] = {}
    records = []
    for index in range(num_images):
        chosen = rng.sample(emoji, rng.randint(2, 4))
        sizes = [rng.randint(canvas // 5, canvas * 3 // 8) for _ in chosen]
        corners = _place_boxes(sizes, canvas, rng)
        image = Image.new('RGB', (canvas, canvas), (255, 255, 255))
        elems = []
        for (file, caption), size, (x, y) in zip(chosen, sizes, corners):
            if file not in cache:
                path = osp.join(src['emoji_dir'], 'img', 'google', '64', file)
                with Image.open(path) as im:
                    cache[file] = im.convert('RGBA')
            sprite = cache[file].resize((size, size), Image.BICUBIC)
            tile = _to_rgb_on_white(sprite)
            image.paste(tile, (x, y))
            # The box is the visible extent: pixels that differ from white.
            blank = Image.new('RGB', tile.size, (255, 255, 255))
            left, top, right, bottom = ImageChops.difference(
                tile, blank).getbbox() or sprite.getchannel('A').getbbox()
            elems.append(dict(caption=caption, bb=[x + left, y + top,
                                                   right - left,
                                                   bottom - top]))
        elems.sort(key=lambda e: (e['bb'][0], e['bb'][1]))
        names = [e['caption'] for e in elems]
        caption = ' and '.join([', '.join(names[:-1]), names[-1]]) \
            if len(names) > 1 else names[0]
        rel = _save_png(image, out, f'images/region/{index:05d}.png')
        records.append(dict(image=rel, caption=caption, elems=elems))
    return records


def _read_idx(path: str, magic: int) -> np.ndarray:
    with gzip.open(path, 'rb') as f:
        data = f.read()
    header = np.frombuffer(data, dtype='>i4', count=2)
    if header[0] != magic:
        raise ValueError(f'{path}: IDX magic {header[0]}, expected {magic}')
    ndim = magic & 0xFF
    shape = tuple(np.frombuffer(data, dtype='>i4', count=ndim, offset=4))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f'{path}: {array.size} bytes for shape {shape}')
    return array.reshape(shape)


def _build_fashion_mnist(folder: str, out: str, num_images: int,
                         rng: random.Random) -> List[dict]:
    images = _read_idx(osp.join(folder, 'train-images-idx3-ubyte.gz'), 2051)
    labels = _read_idx(osp.join(folder, 'train-labels-idx1-ubyte.gz'), 2049)
    if len(images) != len(labels):
        raise ValueError(f'{folder}: {len(images)} images, {len(labels)} '
                         'labels')
    picked = sorted(rng.sample(range(len(images)),
                               min(num_images, len(images))))
    records = []
    for index in picked:
        rel = _save_png(Image.fromarray(images[index], mode='L'), out,
                        f'images/fashion_mnist/{index:05d}.png')
        records.append(dict(image=rel, label=int(labels[index]),
                            class_name=FASHION_MNIST_CLASSES[labels[index]]))
    return records


def _read_polarity(path: str, max_sentences: int) -> List[dict]:
    records = []
    with open(path, encoding='latin-1') as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            label, _, text = line.strip().partition(' ')
            if not label.startswith('__label__') or not text.strip():
                raise ValueError(f'{path}:{line_no}: expected '
                                 '"__label__<pos|neg> <sentence>"')
            records.append(dict(desc=text.strip(),
                                label=label[len('__label__'):]))
    return records[:max_sentences]


_SENTENCE_END = re.compile(r'(?<=[.!?])\s+(?=["\'A-Z0-9])')


def _read_news(path: str) -> List[dict]:
    """Sentences of the Lee news corpus (one article per line): the
    larger text-only source, so that text MLM does not over-fit 200
    sentences and wear the pre-trained language encoder down."""
    records = []
    with open(path, encoding='utf-8', errors='replace') as f:
        for line in f:
            for sentence in _SENTENCE_END.split(line.strip()):
                if len(sentence.split()) >= 4:
                    records.append(dict(desc=sentence, label='news'))
    if not records:
        raise ValueError(f'{path}: no sentence found')
    return records


def _fingerprint(src: Dict[str, str], options: dict) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(options, sort_keys=True).encode())
    digest.update(str(FORMAT_VERSION).encode())
    for path in (osp.abspath(__file__), osp.join(src['emoji_dir'],
                                                 'emoji.json'),
                 src['polarity'], src['news']):
        digest.update(_sha256(path).encode())
    for name in ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'):
        digest.update(str(osp.getsize(osp.join(src['fashion_mnist'],
                                               name))).encode())
    for name, _, _ in SKIMAGE_PHOTOS:
        digest.update(str(osp.getsize(osp.join(src['skimage'],
                                               name))).encode())
    return digest.hexdigest()


OUTPUTS = ('images', 'image_text', 'region', 'text', 'image', 'licenses',
           'manifest.json')


def _is_up_to_date(out: str, fingerprint: str) -> bool:
    try:
        with open(osp.join(out, 'manifest.json'), encoding='utf-8') as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return False
    if manifest.get('fingerprint') != fingerprint:
        return False
    return all(osp.isfile(osp.join(out, shard))
               for shard in manifest.get('files', {}))


def prepare_demo_data(out_dir: str,
                      assets_dir: Optional[str] = None,
                      fashion_mnist_dir: Optional[str] = None,
                      skimage_data_dir: Optional[str] = None,
                      max_pairs: int = 4000,
                      num_test: int = 200,
                      num_regions: int = 1000,
                      region_canvas: int = 160,
                      num_images: int = 3000,
                      max_sentences: int = 5000,
                      seed: int = 0,
                      force: bool = False) -> dict:
    """Build (or reuse) the demo pre-training set under ``out_dir``.

    Args:
        out_dir (str): Output directory; record paths are relative to it.
        assets_dir (str, optional): npm/PyPI assets folder. Defaults to
            :func:`default_assets_dir`.
        fashion_mnist_dir (str, optional): Fashion-MNIST folder override.
        skimage_data_dir (str, optional): scikit-image data folder override.
        max_pairs (int): Cap on image-text pairs, test split included.
        num_test (int): Held-out image-text pairs (one per image).
        num_regions (int): Composite region images.
        region_canvas (int): Side of the square region canvases in pixels.
        num_images (int): Fashion-MNIST images for the image-only stream.
        max_sentences (int): Cap on text-only sentences (the 200 movie
            reviews first, then the news sentences).
        seed (int): Seed of every random choice.
        force (bool): Rebuild even if the manifest matches.

    Returns:
        dict: The manifest (counts, sources, fingerprint, ``reused`` flag).
    """
    if not 0 < num_test < max_pairs:
        raise ValueError(f'need 0 < num_test ({num_test}) < max_pairs '
                         f'({max_pairs})')
    if region_canvas < 64:
        raise ValueError(f'region_canvas must be >= 64, got {region_canvas}')
    assets_dir = assets_dir or default_assets_dir()
    src = locate_sources(assets_dir, fashion_mnist_dir, skimage_data_dir)
    options = dict(max_pairs=max_pairs, num_test=num_test,
                   num_regions=num_regions, region_canvas=region_canvas,
                   num_images=num_images, max_sentences=max_sentences,
                   seed=seed)
    fingerprint = _fingerprint(src, options)
    out_dir = osp.abspath(out_dir)
    if not force and _is_up_to_date(out_dir, fingerprint):
        with open(osp.join(out_dir, 'manifest.json'), encoding='utf-8') as f:
            return dict(json.load(f), reused=True)

    os.makedirs(out_dir, exist_ok=True)
    stage = tempfile.mkdtemp(prefix='.demo-build-', dir=out_dir)
    try:
        for sub in ('emoji', 'skimage', 'region', 'fashion_mnist'):
            os.makedirs(osp.join(stage, 'images', sub))
        groups = _emoji_groups(src['emoji_dir']) + [
            dict(kind='skimage', file=f, caption=c)
            for f, _, c in SKIMAGE_PHOTOS]
        train, test, retrieval, train_groups = _build_image_text(
            groups, src, stage, num_test, max_pairs, random.Random(seed))
        # Base emoji of the training side only: no held-out image is pasted.
        region_pool = [(g['file'], g['caption']) for g in train_groups
                       if g['kind'] == 'emoji']
        regions = _build_regions(region_pool, src, stage, num_regions,
                                 region_canvas, random.Random(seed + 1))
        fashion = _build_fashion_mnist(src['fashion_mnist'], stage,
                                       num_images, random.Random(seed + 2))
        texts = (_read_polarity(src['polarity'], max_sentences) +
                 _read_news(src['news']))[:max_sentences]

        shards = {'image_text/train.jsonl': train,
                  'image_text/test.jsonl': test,
                  'region/train.jsonl': regions,
                  'text/train.jsonl': texts,
                  'image/train.jsonl': fashion}
        for rel, records in shards.items():
            _write_jsonl(osp.join(stage, rel), records)
        with open(osp.join(stage, 'image_text', 'test_retrieval.json'), 'w',
                  encoding='utf-8') as f:
            json.dump(retrieval, f, ensure_ascii=False, indent=0)
        train_retrieval = [
            dict(image=r['image'], caption=r['caption'], image_id=r['image_id'])
            for r in train
        ]
        with open(osp.join(stage, 'image_text', 'train_retrieval.json'), 'w',
                  encoding='utf-8') as f:
            json.dump(train_retrieval, f, ensure_ascii=False, indent=0)
        licenses = _copy_licenses(src, stage)
        manifest = _manifest(src, options, fingerprint, shards, licenses,
                             stage)
        for name in OUTPUTS[:-1]:
            shutil.rmtree(osp.join(out_dir, name), ignore_errors=True)
            os.replace(osp.join(stage, name), osp.join(out_dir, name))
        with open(osp.join(out_dir, 'manifest.json'), 'w',
                  encoding='utf-8') as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return dict(manifest, reused=False)


def _copy_licenses(src: Dict[str, str], stage: str) -> List[str]:
    folder = osp.join(stage, 'licenses')
    os.makedirs(folder)
    copies = {
        osp.join(src['emoji_dir'], 'LICENSE'): 'emoji-datasource-MIT.txt',
        osp.join(osp.dirname(src['polarity']), 'COPYING'):
        'gensim-LGPL-2.1.txt',
        '/usr/share/doc/dataset-fashion-mnist/copyright':
        'fashion-mnist-copyright.txt',
    }
    written = []
    for path, name in copies.items():
        if osp.isfile(path):
            shutil.copyfile(path, osp.join(folder, name))
            written.append(f'licenses/{name}')
    return written


def _manifest(src: Dict[str, str], options: dict, fingerprint: str,
              shards: Dict[str, list], licenses: List[str],
              stage: str) -> dict:
    counts = {rel: len(records) for rel, records in shards.items()}
    counts['image_text/train.jsonl:emoji'] = sum(
        r['source'] == 'emoji' for r in shards['image_text/train.jsonl'])
    counts['image_text/train.jsonl:skimage'] = sum(
        r['source'] == 'skimage' for r in shards['image_text/train.jsonl'])
    counts['region/elems'] = sum(
        len(r['elems']) for r in shards['region/train.jsonl'])
    size = sum(osp.getsize(osp.join(root, name))
               for root, _, names in os.walk(stage) for name in names)
    sources = {
        'emoji': dict(
            package=f'npm {EMOJI_PACKAGE}@{_npm_version(src["emoji_dir"])}',
            path=src['emoji_dir'],
            license='data MIT (Cal Henderson); Noto emoji images '
            'Apache-2.0 (Google)'),
        'skimage': dict(
            package='PyPI scikit-image=='
            + _package_version('scikit-image'),
            path=src['skimage'],
            license='code BSD-3-Clause; per-image status in images',
            images={f: lic for f, lic, _ in SKIMAGE_PHOTOS}),
        'text': dict(
            package=f'PyPI gensim=={GENSIM_VERSION} '
            '(gensim/test/test_data/pang_lee_polarity.cor, '
            'lee_background.cor)',
            path=src['polarity'], sha256=_sha256(src['polarity']),
            news_sha256=_sha256(src['news']),
            license='gensim LGPL-2.1; sentences: Pang & Lee sentence '
            'polarity v1.0 (free for research use) and the Lee et al. '
            '(2005) news corpus shipped with gensim'),
        'fashion_mnist': dict(
            package='Debian dataset-fashion-mnist='
            + _debian_version('dataset-fashion-mnist'),
            path=src['fashion_mnist'], license='MIT (Zalando SE)',
            split='train-images-idx3-ubyte.gz, random subset'),
    }
    return dict(format_version=FORMAT_VERSION, fingerprint=fingerprint,
                options=options, counts=counts, sources=sources,
                licenses=licenses, size_bytes=size,
                files={rel: counts[rel] for rel in shards})


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line (see ``--help``)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'data', 'demo'))
    parser.add_argument('--assets', default=None,
                        help='assets folder of install_demo_assets.sh')
    parser.add_argument('--fashion-mnist-dir', default=None)
    parser.add_argument('--skimage-data-dir', default=None)
    parser.add_argument('--max-pairs', type=int, default=4000)
    parser.add_argument('--num-test', type=int, default=200)
    parser.add_argument('--num-regions', type=int, default=1000)
    parser.add_argument('--region-canvas', type=int, default=160)
    parser.add_argument('--num-images', type=int, default=3000)
    parser.add_argument('--max-sentences', type=int, default=5000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = parse_args(argv)
    try:
        manifest = prepare_demo_data(
            args.out, args.assets, args.fashion_mnist_dir,
            args.skimage_data_dir, args.max_pairs, args.num_test,
            args.num_regions, args.region_canvas, args.num_images,
            args.max_sentences, args.seed, args.force)
    except (DemoAssetError, ValueError) as err:
        print(f'prepare_demo_data: error: {err}', file=sys.stderr)
        return 2
    state = 'up to date' if manifest['reused'] else 'written'
    print(f'demo data {state} in {args.out}:')
    for rel, count in sorted(manifest['counts'].items()):
        print(f'  {rel}: {count}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
