# Copyright (c) xfm_mm contributors. All rights reserved.
"""Reading JSON-lines shards and decoding images, shared by all datasets.

A *shard* is one JSON-lines file, optionally gzipped (``.gz``). Shards are
named by files, folders (every regular file inside, sorted, except hidden
ones and ``_``-prefixed markers such as ``_SUCCESS``) or glob patterns;
several can be given as a list or as one comma-separated string.

Images are returned as ``uint8`` HWC arrays in **BGR** order, the layout
``mmcv.imfrombytes`` and mmpretrain's ``LoadImageFromFile`` produce, so the
mmcv / mmpretrain transforms apply unchanged; the data preprocessor converts
to RGB (``to_rgb=True``).
"""
import base64
import binascii
import glob
import gzip
import hashlib
import io
import json
import os
import os.path as osp
import zlib
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmengine import fileio
from PIL import Image

GLOB_CHARS = '*?['


class BadRecordError(Exception):
    """A record that cannot be used; datasets skip it and count ``reason``.

    Transforms may raise it too (e.g. a caption that is empty after
    cleaning) to have the sample skipped and counted instead of crashing the
    run.

    Args:
        reason (str): Short machine-readable reason, e.g. ``'bad_image'``.
        detail (str): Human-readable detail for the log.
    """

    def __init__(self, reason: str, detail: str = '') -> None:
        super().__init__(f'{reason}: {detail}' if detail else reason)
        self.reason = reason
        self.detail = detail


class ShardReadError(RuntimeError):
    """A shard that cannot be read to its end (e.g. a truncated gzip).

    The lines before the failure have been yielded; datasets count the
    failure and move on to the next shard.

    Args:
        path (str): The shard.
        line_no (int): The last line read.
        error (Exception): What the reader raised.
    """

    def __init__(self, path: str, line_no: int, error: Exception) -> None:
        super().__init__(f'iter_shard_lines: cannot read shard {path} after '
                         f'line {line_no}: {type(error).__name__}: {error}')
        self.path = path
        self.line_no = line_no
        self.error = error


def _is_shard_file(path: str) -> bool:
    name = osp.basename(path)
    return osp.isfile(path) and not name.startswith(('.', '_'))


def list_shards(ann_file: Union[str, Sequence[str]],
                data_root: str = '') -> List[str]:
    """Expand files, folders and globs into a sorted list of shard files.

    Args:
        ann_file (str | Sequence[str]): Files, folders or glob patterns, as a
            list or a comma-separated string. Relative ones are joined to
            ``data_root``.
        data_root (str): Root for relative entries. Defaults to ''.

    Returns:
        list[str]: Shard files in a deterministic order (entry order, each
        folder or glob sorted), without duplicates.

    Raises:
        FileNotFoundError: If an entry matches nothing.
    """
    entries = ann_file.split(',') if isinstance(ann_file, str) else ann_file
    shards: List[str] = []
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        if data_root and not osp.isabs(entry):
            entry = osp.join(data_root, entry)
        if osp.isfile(entry):
            found = [entry]
        elif osp.isdir(entry):
            found = sorted(
                osp.join(entry, name) for name in os.listdir(entry)
                if _is_shard_file(osp.join(entry, name)))
        elif any(c in entry for c in GLOB_CHARS):
            found = sorted(
                p for p in glob.glob(entry, recursive=True)
                if _is_shard_file(p))
        else:
            found = []
        if not found:
            raise FileNotFoundError(f'list_shards: ann_file entry {entry!r} '
                                    'matches no JSON-lines shard')
        shards.extend(found)
    if not shards:
        raise FileNotFoundError(
            f'list_shards: ann_file {ann_file!r} names no shard')
    return list(dict.fromkeys(shards))


def _open_binary(path: str):
    with open(path, 'rb') as f:
        magic = f.read(2)
    if path.endswith('.gz') or magic == b'\x1f\x8b':
        return gzip.open(path, 'rb')
    return open(path, 'rb')


def iter_shard_lines(path: str,
                     stride: int = 1,
                     offset: int = 0) -> Iterator[Tuple[int, bytes]]:
    """Yield ``(line_number, raw_line)`` of the non-blank lines of a shard.

    Args:
        path (str): The shard file (plain or gzipped).
        stride (int): Keep only lines whose 0-based index ``i`` satisfies
            ``i % stride == offset``; used to split a file between readers.
        offset (int): See ``stride``.

    Yields:
        tuple[int, bytes]: 1-based line number and the line without newline.

    Raises:
        ShardReadError: If the file cannot be read to its end (e.g. a
            truncated or corrupt gzip), naming the file and the line
            reached; the lines before it have been yielded.
    """
    line_no = 0
    try:
        with _open_binary(path) as f:
            for line_no, raw in enumerate(f, start=1):
                if (line_no - 1) % stride != offset:
                    continue
                raw = raw.strip()
                if raw:
                    yield line_no, raw
    except (OSError, EOFError, zlib.error) as e:
        raise ShardReadError(path, line_no, e) from e


def parse_json_line(raw: Union[bytes, str]) -> dict:
    """Decode one JSON-lines record.

    Args:
        raw (bytes | str): The line.

    Returns:
        dict: The record.

    Raises:
        BadRecordError: ``bad_json`` if it is not UTF-8 JSON, not an
            object, or nested deeper than Python's recursion limit.
    """
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise BadRecordError('bad_json', str(e)[:200]) from None
    except RecursionError:
        raise BadRecordError('bad_json', 'nested too deeply') from None
    if not isinstance(record, dict):
        raise BadRecordError(
            'bad_json', f'a record must be an object, got '
            f'{type(record).__name__}')
    return record


def read_image_bytes(value: str,
                     image_format: str,
                     img_root: str = '',
                     backend_args: Optional[dict] = None) -> bytes:
    """Get the encoded bytes of an image field.

    Args:
        value (str | bytes): A path (relative to ``img_root`` unless
            absolute), a base64 string, or the encoded bytes themselves.
        image_format (str): ``'path'``, ``'base64'`` or ``'bytes'`` (records
            made from tar shards carry the image file's bytes).
        img_root (str): Folder that relative paths are joined to.
        backend_args (dict, optional): mmengine file backend arguments.

    Returns:
        bytes: The encoded image.

    Raises:
        BadRecordError: ``image_not_found`` or ``bad_image``.
    """
    if image_format == 'bytes':
        if not isinstance(value, (bytes, bytearray)) or not value:
            raise BadRecordError(
                'bad_image', f'image field must be non-empty bytes, got '
                f'{type(value).__name__}')
        return bytes(value)
    if not isinstance(value, str) or not value:
        raise BadRecordError(
            'bad_image', f'image field must be a non-empty string, got '
            f'{type(value).__name__}')
    if image_format == 'base64':
        try:
            return base64.b64decode(value, validate=False)
        except (binascii.Error, ValueError) as e:
            raise BadRecordError('bad_image', f'bad base64: {e}') from None
    path = value if osp.isabs(value) or not img_root else osp.join(
        img_root, value)
    try:
        return fileio.get(path, backend_args=backend_args)
    except FileNotFoundError:
        raise BadRecordError('image_not_found', path) from None
    except OSError as e:
        raise BadRecordError('bad_image', f'{path}: {e}') from None


def _to_rgb(image: Image.Image) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a PIL image of any 8- or 16-bit mode."""
    mode = image.mode
    # PIL keeps 16-bit grey as I;16* (or I from older PNG decoders) and its
    # convert() clips those values at 255: scale them to 8 bits instead.
    if mode.startswith('I;16') or (mode == 'I' and image.format == 'PNG'):
        grey = np.asarray(image).astype(np.float32) / 257
        grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if mode in ('I', 'F'):
        raise BadRecordError(
            'unsupported_image_mode',
            f'{image.format} image of mode {mode!r} (32-bit integer or '
            'float pixels have no defined range); convert it to 8 or 16 '
            'bits')
    if mode == 'RGB':  # convert() would copy the pixels once more
        return np.asarray(image)
    return np.asarray(image.convert('RGB'))


def _open_image(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except Exception as e:  # PIL raises many exception types
        raise BadRecordError('bad_image',
                             f'{type(e).__name__}: {e}'[:200]) from None


def image_size(data: bytes) -> Tuple[int, int]:
    """``(height, width)`` of an encoded image, from its header only.

    Args:
        data (bytes): The encoded image.

    Returns:
        tuple[int, int]: The size ``decode_image(data)`` has.

    Raises:
        BadRecordError: ``bad_image`` if PIL cannot read the header.
    """
    with _open_image(data) as image:
        width, height = image.size
    if width == 0 or height == 0:
        raise BadRecordError('bad_image', f'empty image {width}x{height}')
    return height, width


def decode_image(data: bytes, scale: int = 1, bgr: bool = True) -> np.ndarray:
    """Decode encoded image bytes into a BGR ``uint8`` HWC array.

    Any 8-bit mode (grey, palette, RGBA, CMYK) is converted to 3 channels;
    16-bit grey is scaled to 8 bits (``round(v / 257)``) instead of being
    clipped (PIL itself keeps the high byte of 16-bit colour).
    Truncated files are rejected rather than padded.

    With ``scale`` 2, 4 or 8 a JPEG is decoded at that fraction of its size
    by libjpeg's DCT scaling (PIL's ``draft``; side ``ceil(side / scale)``,
    pixel ``i`` covering the full-size pixels ``[i * scale, (i + 1) *
    scale)``), which skips most of the inverse DCT and colour conversion;
    other formats ignore it and decode at full size.

    Args:
        data (bytes): The encoded image (JPEG, PNG, ...).
        scale (int): 1, 2, 4 or 8. Defaults to 1.
        bgr (bool): BGR order; False leaves the decoder's RGB (a read-only
            array), for a caller that swaps the channels of a smaller crop.
            Defaults to True.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 array in BGR (or RGB) order.

    Raises:
        BadRecordError: ``bad_image`` if PIL cannot decode it,
            ``unsupported_image_mode`` for 32-bit integer or float pixels.
    """
    if scale not in (1, 2, 4, 8):
        raise ValueError(f'decode_image: scale must be 1, 2, 4 or 8, got '
                         f'{scale!r}')
    try:
        with Image.open(io.BytesIO(data)) as image:
            if scale > 1 and image.format == 'JPEG':
                width, height = image.size
                image.draft(None,
                            (max(width // scale, 1), max(height // scale, 1)))
            rgb = _to_rgb(image)
    except BadRecordError:
        raise
    except Exception as e:  # PIL raises many exception types
        raise BadRecordError('bad_image',
                             f'{type(e).__name__}: {e}'[:200]) from None
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise BadRecordError('bad_image', f'empty image {rgb.shape}')
    if not bgr:
        return rgb
    # cvtColor swaps channels with SIMD; a reversed-stride copy
    # (rgb[..., ::-1]) costs more than the JPEG decode of a small image.
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def stable_id(key: Union[str, bytes]) -> int:
    """A process-independent non-negative 63-bit id of a string.

    Python's ``hash`` is salted per process, so it cannot name the same
    image identically in two dataloader workers; this one can.

    Args:
        key (str | bytes): e.g. an image path or a base64 image.

    Returns:
        int: The id.
    """
    if isinstance(key, str):
        key = key.encode('utf-8')
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, 'little') & (2**63 - 1)
