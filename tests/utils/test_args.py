# Copyright (c) xfm_mm contributors. All rights reserved.
import pytest

from xfm_mm.datasets.transforms.video import ResizeFrames
from xfm_mm.models.layers.embeddings import TextEmbedding
from xfm_mm.utils.args import check_arg, format_args


def test_check_arg_message_names_owner_field_expectation_value():
    check_arg(True, 'Owner', 'size', '>= 1', 0)  # passes silently
    with pytest.raises(ValueError,
                       match=r"^Owner: key must be >= 1, got 'x'$"):
        check_arg(False, 'Owner', 'key', '>= 1', 'x')


def test_callers_keep_their_messages():
    with pytest.raises(ValueError, match="TextEmbedding: position_style "
                       "must be 'bert' or 'roberta', got 'gpt'"):
        TextEmbedding(10, 8, 16, 2, 0, 'gpt', 1e-12, 0.)


def test_format_args_matches_the_former_reprs():
    assert format_args(object(), a=1, b='x', c=(1, 2)) == \
        "object(a=1, b='x', c=(1, 2))"
    assert repr(ResizeFrames(224)) == 'ResizeFrames(scale=224, flip_prob=0.0)'
