# Copyright (c) xfm_mm contributors. All rights reserved.
"""VisionLanguageModel: the towers under the pretrainer's names, fuse()."""
import pytest
import torch

from tiny_models import IMG, make_batch, tiny_xfm_cfg

from xfm_mm.models.utils.vision_language import VisionLanguageModel
from xfm_mm.registry import MODELS


class Fused(VisionLanguageModel):
    """The smallest subclass: one head argument, the rest as keywords."""

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def loss(self, inputs, data_samples=None):
        return dict(loss=self.fuse(inputs).mean() * self.scale)

    def predict(self, inputs, data_samples=None):
        return []

    def _forward(self, inputs, data_samples=None):
        return self.fuse(inputs)


def _towers():
    cfg = tiny_xfm_cfg()
    return {
        k: cfg[k]
        for k in ('text_encoder', 'vision_encoder', 'fusion_encoder')
    }


def test_fuse_is_text_over_its_whole_image():
    torch.manual_seed(0)
    model = Fused(scale=2.0, **_towers()).eval()
    data = model.data_preprocessor(make_batch('image_text'), False)
    inputs = data['inputs']
    assert inputs['images'].shape[-1] == IMG
    with torch.no_grad():
        vision = model.vision_encoder(inputs['images'])
        text = model.text_encoder(inputs['text_ids'], inputs['text_mask'])
        expected = model.fusion_encoder(text, inputs['text_mask'], vision)
        torch.testing.assert_close(model(**data, mode='tensor'), expected)
    assert model.scale == 2.0


def test_pretraining_names_and_missing_tower():
    """The pretrainer is one: its towers load into a subclass by name."""
    torch.manual_seed(0)
    pretrainer = MODELS.build(tiny_xfm_cfg())
    model = Fused(**_towers())
    towers = {
        k: v
        for k, v in pretrainer.state_dict().items()
        if k.split('.')[0] in ('text_encoder', 'vision_encoder',
                               'fusion_encoder')
    }
    assert set(towers) == set(model.state_dict())
    model.load_state_dict(towers, strict=True)
    # A missing fusion tower is an error unless the text tower fuses itself
    # (X2-VLM's TextFusionEncoder).
    with pytest.raises(ValueError, match='fusion_encoder is None'):
        Fused(
            text_encoder=_towers()['text_encoder'],
            vision_encoder=_towers()['vision_encoder'])
