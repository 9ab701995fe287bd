# Copyright (c) xfm_mm contributors. All rights reserved.
"""Every downstream config builds; its tiny version trains and predicts.

Full-size models are built on the meta device (no memory, no compute) and
their backbone + neck run there at the config's resolution, which checks
that channels and pyramid levels agree with the heads. Tiny versions take
one optimiser step and one prediction on CPU.
"""
import importlib.util

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import OPTIM_WRAPPERS

NEEDS_OPS = ('mask_rcnn', 'retinanet', 'upernet')
ALL = ('finetune', 'linear_probe', 'mlp_probe', 'mask_rcnn', 'retinanet',
       'upernet')
HAS_OPS = importlib.util.find_spec('mmcv._ext') is not None


def skip_without_ops(name):
    if name in NEEDS_OPS and not HAS_OPS:
        pytest.skip('mmdet / mmseg need mmcv with compiled ops')


def _optim_wrapper(cfg, model):
    with OPTIM_WRAPPERS.switch_scope_and_registry(cfg.default_scope):
        return build_optim_wrapper(model, cfg.optim_wrapper)


@pytest.mark.parametrize('name', ALL)
def test_full_size_config_on_meta(name, load_config, scoped_models):
    skip_without_ops(name)
    cfg = load_config(name, tiny=False)
    backbone_cfg = cfg.model.backbone
    assert backbone_cfg.type == 'xfm_mm.XFMViT'
    assert backbone_cfg.init_cfg == dict(
        type='Pretrained',
        checkpoint='work_dirs/xfm-base_pretrain/xfm_pretrain.pth',
        prefix='vision_encoder.')
    backbone_cfg.init_cfg = None
    models = scoped_models(cfg)
    with torch.device('meta'):
        model = models.build(cfg.model).eval()
    backbone = model.backbone
    assert (backbone.embed_dims, backbone.num_layers) == (768, 12)
    side = backbone.patch_embed.img_size
    with torch.no_grad():
        feats = backbone(torch.empty(1, 3, *side, device='meta'))
        if getattr(model, 'neck', None) is not None:
            feats = model.neck(feats)

    if name in ('finetune', 'mlp_probe'):
        assert feats[-1].shape == (1, 1 + (224 // 16)**2, 768)
        assert model.head.in_channels == 768
        assert model.head.mlp[-1].out_features == 1000
    elif name == 'linear_probe':
        assert feats[-1].shape == (1, 768)
        assert model.head.fc.in_features == 768
        assert all(not p.requires_grad for p in backbone.parameters())
    elif name == 'mask_rcnn':
        strides = model.rpn_head.prior_generator.strides
        assert [side[0] // f.shape[-1]
                for f in feats] == [s[0] for s in strides]
        assert {f.shape[1] for f in feats} == {model.rpn_head.in_channels}
        roi_strides = model.roi_head.bbox_roi_extractor.featmap_strides
        assert roi_strides == [4, 8, 16, 32]
    elif name == 'retinanet':
        strides = model.bbox_head.prior_generator.strides
        assert [side[0] // f.shape[-1]
                for f in feats] == [s[0] for s in strides]
        assert {f.shape[1] for f in feats} == {model.bbox_head.in_channels}
    else:  # upernet
        assert [side[0] // f.shape[-1] for f in feats] == [4, 8, 16, 32]
        assert [f.shape[1] for f in feats] == model.decode_head.in_channels

    # paramwise_cfg (num_layers=12 included) fits the full-size model.
    if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':  # GPU only
        cfg.optim_wrapper.type = 'OptimWrapper'
    optim_wrapper = _optim_wrapper(cfg, model)
    lrs = {g['lr'] for g in optim_wrapper.optimizer.param_groups}
    base_lr = cfg.optim_wrapper.optimizer.lr
    assert max(lrs) == pytest.approx(base_lr)


def _classification_batch(num_classes=10):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(0)
    images = torch.randint(
        0, 256, (4, 3, 64, 64), generator=g, dtype=torch.uint8)
    samples = [DataSample().set_gt_label(i % num_classes) for i in range(4)]
    return dict(inputs=images, data_samples=samples)


def _detection_batch(with_mask):
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(0)
    return demo_mm_inputs(
        batch_size=2,
        image_shapes=[(3, 64, 64), (3, 64, 48)],
        num_items=[3, 2],
        num_classes=80,
        with_mask=with_mask)


def _segmentation_batch():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for height, width in [(64, 96)] * 2:  # wider than the slide window
        inputs.append(
            torch.randint(
                0, 256, (3, height, width), generator=g, dtype=torch.uint8))
        sample = SegDataSample(
            metainfo=dict(
                img_shape=(height, width),
                ori_shape=(height, width),
                pad_shape=(height, width)))
        label = torch.randint(0, 150, (1, height, width), generator=g)
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('name', ALL)
def test_tiny_model_trains_and_predicts(name, load_config, scoped_models):
    skip_without_ops(name)
    cfg = load_config(name)
    model = scoped_models(cfg).build(cfg.model)
    model.init_weights()
    optim_wrapper = _optim_wrapper(cfg, model)
    if name in ('mask_rcnn', 'retinanet'):
        batch = _detection_batch(with_mask=name == 'mask_rcnn')
    elif name == 'upernet':
        batch = _segmentation_batch()
    else:
        batch = _classification_batch()

    trainable = {
        n: p.detach().clone()
        for n, p in model.named_parameters() if p.requires_grad
    }
    frozen = {
        n: p.detach().clone()
        for n, p in model.named_parameters() if not p.requires_grad
    }
    model.train()
    losses = model.train_step(batch, optim_wrapper)
    assert losses['loss'].isfinite()
    changed = [
        n for n, p in model.named_parameters()
        if n in trainable and not torch.equal(p, trainable[n])
    ]
    assert any(n.startswith('backbone.') for n in changed) == (
        name not in ('linear_probe', 'mlp_probe'))
    assert any(not n.startswith('backbone.') for n in changed)
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n

    model.eval()
    with torch.no_grad():
        results = model.test_step(batch)
    assert len(results) == len(batch['data_samples'])
    for result in results:
        if name in ('mask_rcnn', 'retinanet'):
            pred = result.pred_instances
            assert pred.bboxes.shape[1:] == (4, )
            assert len(pred.scores) == len(pred.labels) == len(pred.bboxes)
            if name == 'mask_rcnn':
                assert pred.masks.shape[1:] == result.ori_shape
        elif name == 'upernet':
            assert result.pred_sem_seg.data.shape[1:] == result.ori_shape
            assert result.pred_sem_seg.data.max() < 150
        else:
            assert result.pred_score.shape == (10, )
            torch.testing.assert_close(result.pred_score.sum(),
                                       torch.tensor(1.))


def test_upernet_on_simple_fpn(load_config, scoped_models):
    """The single-map pyramid also feeds mmseg's UPerHead."""
    skip_without_ops('upernet')
    cfg = load_config('upernet')
    cfg.model.backbone.out_indices = (-1, )
    cfg.model.neck = dict(
        type='xfm_mm.SimpleFPN', in_channels=32, out_channels=24, num_outs=4)
    cfg.model.decode_head.in_channels = [24] * 4
    cfg.model.auxiliary_head.in_channels = 24
    model = scoped_models(cfg).build(cfg.model)
    optim_wrapper = _optim_wrapper(cfg, model)
    losses = model.train_step(_segmentation_batch(), optim_wrapper)
    assert losses['loss'].isfinite()
    assert losses['decode.loss_ce'] > 0
