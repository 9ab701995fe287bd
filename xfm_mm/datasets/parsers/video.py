# Copyright (c) xfm_mm contributors. All rights reserved.
"""Video-text records: a video file or a folder of frames, and a caption
(X2-VLM, arXiv 2211.12402, Sec. 4.1; upstream zengyan-97/X2-VLM
``dataset/pretrain_dataset.py`` video readers and ``dataset/utils.py``
``sample_frame_ids``)."""
import importlib.util
import os
import os.path as osp
from typing import List, Optional

import mmcv
import numpy as np

from xfm_mm.registry import RECORD_PARSERS
from xfm_mm.utils.args import check_arg
from ..readers import (BadRecordError, decode_image, read_image_bytes,
                       stable_id)
from .base import RecordParser, choice, texts_of

FRAME_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
VIDEO_DECODERS = ('av', 'decord')


def sample_frame_ids(num_total: int, num_frames: int,
                     training: bool) -> List[int]:
    """Which frames of a video to use, as upstream.

    The video is cut into ``num_frames`` equal segments; training takes a
    random frame of each segment, evaluation the first. A video with fewer
    frames than ``num_frames`` repeats frames: random ones in training, the
    frames spread evenly in evaluation; the ids stay in time order.

    Args:
        num_total (int): Frames in the video (> 0).
        num_frames (int): Frames wanted.
        training (bool): Random (True) or deterministic choice.

    Returns:
        list[int]: ``num_frames`` frame indices, non-decreasing.
    """
    if num_total <= 0:
        raise ValueError(f'sample_frame_ids: a video of {num_total} frames')
    if num_total < num_frames:
        if training:
            extra = np.random.randint(num_total, size=num_frames - num_total)
            return sorted(list(range(num_total)) + extra.tolist())
        return np.linspace(0, num_total - 1, num_frames).round().astype(
            int).tolist()
    edges = np.linspace(0, num_total, num_frames + 1).astype(int)
    if not training:
        return edges[:-1].tolist()
    return [int(np.random.randint(lo, hi)) for lo, hi in
            zip(edges[:-1], edges[1:])]


def available_video_decoder() -> Optional[str]:
    """The first of PyAV (``av``) and ``decord`` that is installed."""
    return next((name for name in VIDEO_DECODERS
                 if importlib.util.find_spec(name) is not None), None)


def _decode_video(path: str, num_frames: int, training: bool,
                  decoder: str) -> List[np.ndarray]:
    """Decode the chosen frames of a video file as BGR arrays."""
    if decoder == 'decord':
        import decord
        reader = decord.VideoReader(path, num_threads=1)
        ids = sample_frame_ids(len(reader), num_frames, training)
        frames = reader.get_batch(ids).asnumpy()
        return [np.ascontiguousarray(f[..., ::-1]) for f in frames]
    import av
    with av.open(path) as container:
        frames = [
            f.to_ndarray(format='bgr24')
            for f in container.decode(video=0)
        ]
    ids = sample_frame_ids(len(frames), num_frames, training)
    return [frames[i] for i in ids]


def load_video_frames(path: str,
                      num_frames: int,
                      training: bool,
                      backend_args: Optional[dict] = None) -> np.ndarray:
    """Decode ``num_frames`` frames of a video file or frame folder.

    Args:
        path (str): A video file or a folder of frame images.
        num_frames (int): Frames to sample (:func:`sample_frame_ids`).
        training (bool): Random or deterministic sampling.
        backend_args (dict, optional): mmengine file backend arguments.

    Returns:
        np.ndarray: ``(F, H, W, 3)`` BGR uint8 (frames resized to the first
        one's size when they differ).

    Raises:
        BadRecordError: ``video_not_found`` or ``bad_video``.
    """
    if osp.isdir(path):
        names = sorted(n for n in os.listdir(path)
                       if n.lower().endswith(FRAME_EXTENSIONS))
        if not names:
            raise BadRecordError('bad_video', f'{path}: no frame images')
        ids = sample_frame_ids(len(names), num_frames, training)
        frames = [
            decode_image(
                read_image_bytes(osp.join(path, names[i]), 'path', '',
                                 backend_args)) for i in ids
        ]
    elif not osp.exists(path):
        raise BadRecordError('video_not_found', path)
    else:
        decoder = available_video_decoder()
        if decoder is None:
            raise RuntimeError(
                f'load_video_frames: {path} is a video file, but no video '
                'decoder is installed: pip install av (PyAV) or decord, or '
                'give folders of frames')
        try:
            frames = _decode_video(path, num_frames, training, decoder)
        except Exception as e:  # decoders raise many exception types
            raise BadRecordError(
                'bad_video', f'{path}: {type(e).__name__}: {e}'[:200]) \
                from None
        if not frames:
            raise BadRecordError('bad_video', f'{path}: no frames')
    height, width = frames[0].shape[:2]
    if any(f.shape[:2] != (height, width) for f in frames):
        frames = [mmcv.imresize(f, (width, height)) for f in frames]
    return np.stack(frames)


@RECORD_PARSERS.register_module()
class VideoTextParser(RecordParser):
    """Video-text pairs: ``{video: file | frame folder, caption: ...}``.

    A folder holds one image per frame (``.jpg``, ``.png``, ...), in the
    order of their sorted names. A video file is decoded with PyAV or
    decord, whichever is installed; without either, a record naming a file
    stops the run with an error saying what to install (frame folders need
    neither). Unreadable videos, empty folders and bad frames are bad
    records: skipped and counted.

    ``load`` gives ``img``: ``(F, H, W, 3)`` BGR uint8 frames (resized to
    the first frame's size when they differ), ``text``, ``image_id`` and
    ``source``.

    Args:
        num_frames (int): Frames per clip (upstream ``frame_len``: 3).
        training (bool): Random frame per segment (True) or the first
            (evaluation). Defaults to True.
        video_key (str): Video field. Defaults to ``'video'``.
        caption_key (str): Caption field. Defaults to ``'caption'``.
        video_id_key (str, optional): Id field (clips sharing an id are ITC
            positives of each other); hashed from the path when absent.
        skip_captions (Sequence[str]): Captions that make a record bad
            (upstream skips HowTo100M's ``[Music]``).
        source (str, optional): Defaults to ``'video_text'``.
    """

    source = 'video_text'

    def __init__(self,
                 num_frames: int = 3,
                 training: bool = True,
                 video_key: str = 'video',
                 caption_key: str = 'caption',
                 video_id_key: Optional[str] = 'video_id',
                 skip_captions=('[Music]', ),
                 source: Optional[str] = None) -> None:
        super().__init__(source)
        check_arg(num_frames >= 1, type(self).__name__, 'num_frames', '>= 1',
                  num_frames)
        self.num_frames = num_frames
        self.training = training
        self.video_key = video_key
        self.caption_key = caption_key
        self.video_id_key = video_id_key
        self.skip_captions = set(skip_captions)

    def _path(self, value: str) -> str:
        return value if osp.isabs(value) or not self.img_root else osp.join(
            self.img_root, value)

    def parse(self, record: dict) -> dict:
        """Validate a record; see :class:`RecordParser`."""
        video = record.get(self.video_key)
        if not isinstance(video, str) or not video:
            raise BadRecordError('missing_field',
                                 f'no or empty {self.video_key!r}')
        captions = [
            c for c in texts_of(record.get(self.caption_key, []),
                                self.caption_key)
            if c.strip() not in self.skip_captions
        ]
        if not captions:
            raise BadRecordError('empty_caption', f'{self.caption_key!r}')
        if osp.splitext(video)[1].lower() not in ('', ) + FRAME_EXTENSIONS \
                and available_video_decoder() is None:
            raise RuntimeError(
                f'{type(self).__name__}: field {self.video_key!r} names the '
                f'video file {video!r}, but no video decoder is installed: '
                'pip install av (PyAV) or decord, or give folders of frames')
        value = record.get(self.video_id_key) if self.video_id_key else None
        video_id = value if isinstance(value, int) and not isinstance(
            value, bool) and value >= 0 else stable_id(str(value or video))
        return dict(video=video, captions=captions, image_id=video_id)

    def load_frames(self, video: str) -> np.ndarray:
        """Decode ``num_frames`` frames: ``(F, H, W, 3)`` BGR uint8."""
        return load_video_frames(
            self._path(video), self.num_frames, self.training,
            self.backend_args)

    def load(self, info: dict) -> dict:
        """Decode and choose; see :class:`RecordParser`."""
        frames = self.load_frames(info['video'])
        return dict(
            img=frames,
            img_shape=frames.shape[1:3],
            ori_shape=frames.shape[1:3],
            text=choice(info['captions']),
            image_id=info['image_id'],
            source=self.source)
