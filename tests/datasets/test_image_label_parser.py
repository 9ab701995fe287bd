# Copyright (c) xfm_mm contributors. All rights reserved.
"""Labelled images (the unified transformer's image stream)."""
import base64

import pytest

from xfm_mm.datasets import BadRecordError, ImageLabelParser


def test_labelled_records_load_with_their_class(make_image):
    parser = ImageLabelParser(image_format='base64', num_classes=3)
    binary = base64.b64encode(make_image(8, 8)).decode('ascii')
    info = parser.parse({'binary': binary, 'label': 2})
    results = parser.load(info)
    assert results['gt_label'] == 2 and results['source'] == 'image'
    assert results['img'].shape == (8, 8, 3)
    for label in (3, -1, True, '1', None):
        with pytest.raises(BadRecordError, match='bad_label|label'):
            parser.parse({'binary': binary, 'label': label})
    named = ImageLabelParser(label_key='class', source='labelled')
    assert named.parse({'image': 'a.png', 'class': 7})['label'] == 7
