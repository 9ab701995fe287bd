# Copyright (c) xfm_mm contributors. All rights reserved.
"""Video-text records: upstream frame sampling, frame folders, bad videos
skipped and counted, a clear error without a video decoder."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

from xfm_mm.datasets import JsonlDataset
from xfm_mm.datasets.parsers import (VideoTextParser, available_video_decoder,
                                     sample_frame_ids)
from xfm_mm.datasets.transforms import (LoadVideoFrames,
                                        PackMultiSourceInputs, ResizeFrames)


def test_frame_sampling_as_upstream():
    # Evaluation: the first frame of each of 3 equal segments.
    assert sample_frame_ids(9, 3, training=False) == [0, 3, 6]
    assert sample_frame_ids(10, 3, training=False) == [0, 3, 6]
    np.random.seed(0)
    seen = set()
    for _ in range(200):
        ids = sample_frame_ids(9, 3, training=True)
        assert 0 <= ids[0] < 3 <= ids[1] < 6 <= ids[2] < 9
        seen.add(tuple(ids))
    assert len(seen) > 10  # random within each segment
    # Short videos repeat frames, in time order.
    ids = sample_frame_ids(2, 5, training=True)
    assert len(ids) == 5 and set(ids) == {0, 1} and ids == sorted(ids)
    assert sample_frame_ids(2, 3, training=False) == [0, 0, 1] or \
        sample_frame_ids(2, 3, training=False) == [0, 1, 1]
    with pytest.raises(ValueError):
        sample_frame_ids(0, 3, training=True)


def _clip(folder, num, size=(20, 24)):
    os.makedirs(folder)
    for i in range(num):
        Image.new('RGB', size, (10 * i, 0, 0)).save(
            osp.join(folder, f'{i:02d}.png'))


@pytest.fixture
def video_shard(tmp_path):
    _clip(str(tmp_path / 'clips' / 'a'), 6)
    _clip(str(tmp_path / 'clips' / 'b'), 2)
    os.makedirs(tmp_path / 'clips' / 'empty')
    (tmp_path / 'clips' / 'broken').mkdir()
    (tmp_path / 'clips' / 'broken' / '00.png').write_bytes(b'not a png')
    records = [
        dict(video='clips/a', caption='a red square', video_id=1),
        dict(video='clips/b', caption=['two frames']),
        dict(video='clips/empty', caption='nothing'),
        dict(video='clips/broken', caption='broken frame'),
        dict(video='clips/missing', caption='missing'),
        dict(video='clips/a', caption='[Music]'),
        dict(caption='no video'),
    ] + [dict(video='clips/a', caption=f'copy {i}') for i in range(4)]
    shard = tmp_path / 'video.jsonl'
    shard.write_text('\n'.join(json.dumps(r) for r in records) + '\n')
    return tmp_path


def test_frame_folders_decode_and_bad_videos_are_counted(video_shard):
    pack = PackMultiSourceInputs(fields=['image_id'])
    dataset = JsonlDataset(
        ann_file='video.jsonl',
        data_root=str(video_shard),
        parser=dict(type='VideoTextParser', num_frames=3, training=False),
        pipeline=[ResizeFrames(scale=16), pack])
    # Parse-time drops: [Music] and the record without a video.
    assert len(dataset) == 9
    sample = dataset.prepare_data(0)
    assert sample['inputs'].shape == (3, 3, 16, 16)
    assert sample['inputs'].dtype == torch.uint8
    # Frames 0, 2, 4 (first of each segment): red = 0, 20, 40 (BGR order).
    assert sample['inputs'][:, 2, 0, 0].tolist() == [0, 20, 40]
    assert dataset.prepare_data(1)['inputs'].shape[0] == 3  # repeated
    for index in (2, 3, 4):
        assert dataset.prepare_data(index) is None
    assert dataset._bad_indices == {2, 3, 4}
    stats = next(iter(dataset._shard_stats.values()))
    assert dict(stats.reasons) == {
        'empty_caption': 1, 'missing_field': 1, 'bad_video': 1,
        'bad_image': 1, 'video_not_found': 1}


def test_video_files_need_a_decoder(tmp_path):
    parser = VideoTextParser()
    record = dict(video='clip.mp4', caption='a clip')
    if available_video_decoder() is None:
        with pytest.raises(RuntimeError, match='pip install av'):
            parser.parse(record)
    else:
        assert parser.parse(record)['video'] == 'clip.mp4'


def test_load_video_frames_transform(tmp_path):
    _clip(str(tmp_path / 'a'), 4, size=(8, 8))
    results = LoadVideoFrames(num_frames=2)(dict(img_path=str(tmp_path /
                                                              'a')))
    assert results['img'].shape == (2, 8, 8, 3)


def test_msrvtt_retrieval_and_qa_datasets(tmp_path):
    from xfm_mm.datasets import MSRVTTQADataset, VideoTextRetrievalDataset
    _clip(str(tmp_path / 'videos' / 'video1'), 3, size=(8, 8))
    _clip(str(tmp_path / 'videos' / 'video2'), 3, size=(8, 8))
    (tmp_path / 'test.json').write_text(json.dumps([
        dict(video='videos/video1', caption=['a', 'b'], video_id='video1'),
        dict(video='videos/video2', caption='c', video_id='video2'),
    ]))
    retrieval = VideoTextRetrievalDataset(
        ann_file='test.json',
        data_root=str(tmp_path),
        test_mode=True,
        pipeline=[dict(type='LoadVideoFrames', num_frames=2)])
    assert retrieval.num_images == 2 and retrieval.num_texts == 3
    assert retrieval[0]['img'].shape == (2, 8, 8, 3)
    (tmp_path / 'qa.json').write_text(json.dumps([
        dict(video_id='video1', question='what is red?', answer='square'),
        dict(video_id='video2', question='how many?', answer='two'),
    ]))
    qa = MSRVTTQADataset(
        ann_file='qa.json',
        data_root=str(tmp_path),
        data_prefix=dict(img_path='videos'),
        video_ext='')
    info = qa.get_data_info(1)
    assert info['img_path'].endswith(osp.join('videos', 'video2'))
    assert info['answers'] == ['two'] and info['answer_weight'] == [1.0]
    (tmp_path / 'bad.json').write_text(json.dumps([dict(video_id='v')]))
    with pytest.raises(KeyError, match='question'):
        MSRVTTQADataset(ann_file='bad.json', data_root=str(tmp_path))
