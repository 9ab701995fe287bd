# Copyright (c) xfm_mm contributors. All rights reserved.
"""Safe checkpoint loading: mmengine checkpoints load, code never runs."""
import fractions
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModule
from mmengine.runner import CheckpointLoader, Runner, load_checkpoint
from torch import nn

from xfm_mm.utils import (TRUST_ENV_VAR, UnsafeCheckpointError,
                          load_from_safe_alias, load_from_safe_http,
                          load_from_safe_local, register_safe_loader,
                          safe_torch_load)

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data')
CONFIG = osp.join(DATA, 'configs', 'toy_train.py')


@pytest.fixture(autouse=True)
def safe_loader(monkeypatch):
    monkeypatch.delenv(TRUST_ENV_VAR, raising=False)
    register_safe_loader()


class _Payload:
    """Pickles as ``func(*args)``: what a malicious checkpoint carries."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker: str) -> dict:
    """Each payload creates ``marker`` when unpickled; value: (payload,
    name of the global the unpickler must refuse). torch.save writes
    protocol 2, whose Python 2 names map ``subprocess`` to ``commands``."""
    write_marker = f"open({marker!r}, 'w').close()"
    touch = ['touch', marker]
    system = f'{os.system.__module__}.system'  # posix.system on Linux
    return {
        'exec': (_Payload(exec, (write_marker, )), 'builtins.exec'),
        'open': (_Payload(open, (marker, 'w')), 'io.open'),
        'os.system': (_Payload(os.system, (' '.join(touch), )), system),
        'subprocess': (_Payload(subprocess.call, (touch, )), 'commands.call'),
    }


def _small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))


def _runner_like_checkpoint() -> dict:
    """What mmengine's Runner saves besides tensors (message hub, meta)."""
    loss = HistoryBuffer()
    for value in (3.0, 2.5, 2.0):
        loss.update(value)
    return dict(
        meta=dict(
            iter=3,
            seed=np.int64(7),
            dataset_meta=dict(
                palette=np.arange(6, dtype=np.uint8).reshape(2, 3))),
        state_dict=_small_model().state_dict(),
        message_hub=dict(
            log_scalars={'train/loss': loss},
            runtime_info=dict(
                eta=np.float64(1.5),
                best=np.float32(0.25),
                flag=np.bool_(True),
                names=np.array(['a', 'bc'])),
            resumed_keys={'train/loss': True}))


def test_runner_checkpoint_content_loads(tmp_path):
    path = str(tmp_path / 'runner_like.pth')
    torch.save(_runner_like_checkpoint(), path)
    # torch's default weights_only load refuses it (the mmengine#1655 bug).
    with pytest.raises(Exception, match='HistoryBuffer|Unsupported global'):
        torch.load(path, weights_only=True)

    loaded = CheckpointLoader.load_checkpoint(path)
    expected = _runner_like_checkpoint()
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.data[0].tolist() == [3.0, 2.5, 2.0]
    assert buffer.mean() == pytest.approx(2.5)
    assert buffer.statistics('min') == 2.0
    info = loaded['message_hub']['runtime_info']
    assert info['eta'] == np.float64(1.5) and type(info['eta']) is np.float64
    assert type(info['best']) is np.float32 and type(info['flag']) is np.bool_
    assert info['names'].tolist() == ['a', 'bc']
    assert loaded['meta']['seed'] == 7
    np.testing.assert_array_equal(loaded['meta']['dataset_meta']['palette'],
                                  expected['meta']['dataset_meta']['palette'])
    for key, value in expected['state_dict'].items():
        assert torch.equal(loaded['state_dict'][key], value)


def test_numpy1_names_and_legacy_format(tmp_path):
    path = tmp_path / 'numpy1_legacy.pth'
    torch.save(
        _runner_like_checkpoint(), path, _use_new_zipfile_serialization=False)
    raw = path.read_bytes()
    # NumPy 1.x wrote numpy.core.multiarray; rewrite the names accordingly.
    assert b'numpy._core.multiarray\n' in raw
    path.write_bytes(
        raw.replace(b'numpy._core.multiarray\n', b'numpy.core.multiarray\n'))

    loaded = safe_torch_load(str(path))
    info = loaded['message_hub']['runtime_info']
    assert type(info['eta']) is np.float64 and info['eta'] == 1.5
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 2.0


@pytest.mark.parametrize('payload',
                         ['exec', 'open', 'os.system', 'subprocess'])
def test_code_in_checkpoint_is_refused_and_not_run(tmp_path, payload):
    marker = str(tmp_path / 'marker')
    evil, refused_global = _payloads(marker)[payload]
    path = str(tmp_path / f'{payload}.pth')
    torch.save(dict(state_dict=_small_model().state_dict(), evil=evil), path)

    # The payload is live: a full unpickle runs it.
    torch.load(path, weights_only=False)
    assert osp.exists(marker)
    os.remove(marker)

    model = _small_model()
    pretrained = BaseModule(init_cfg=dict(type='Pretrained', checkpoint=path))
    pretrained.body = _small_model()
    attempts = {
        'safe_torch_load': lambda: safe_torch_load(path),
        'CheckpointLoader': lambda: CheckpointLoader.load_checkpoint(path),
        'load_checkpoint': lambda: load_checkpoint(model, path),
        'init_cfg=Pretrained': pretrained.init_weights,
    }
    for name, attempt in attempts.items():
        with pytest.raises(UnsafeCheckpointError) as info:
            attempt()
        message = str(info.value)
        assert path in message, name
        assert refused_global in message, name
        assert TRUST_ENV_VAR in message, name
        assert not osp.exists(marker), f'{name} ran the payload'


@pytest.mark.parametrize('resume', [False, True])
def test_runner_refuses_code_in_load_from_and_resume(tmp_path, resume):
    marker = str(tmp_path / 'marker')
    evil, refused_global = _payloads(marker)['exec']
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(meta=dict(iter=1), evil=evil), path)

    sys.path.insert(0, DATA)
    try:
        cfg = Config.fromfile(CONFIG)
    finally:
        sys.path.remove(DATA)
    cfg.work_dir = str(tmp_path / 'work_dir')
    cfg.experiment_name = f'refuse_{resume}_{id(tmp_path)}'
    cfg.log_level = 'WARNING'
    cfg.load_from = path
    cfg.resume = resume
    runner = Runner.from_cfg(cfg)
    with pytest.raises(UnsafeCheckpointError, match=refused_global):
        runner.load_or_resume()
    assert not osp.exists(marker)


def test_getattr_is_restricted_to_history_buffer_methods(tmp_path):
    path = str(tmp_path / 'getattr.pth')
    torch.save(
        dict(method=_Payload(getattr, (HistoryBuffer, '__init__'))), path)
    with pytest.raises(UnsafeCheckpointError, match="'__init__'"):
        safe_torch_load(path)
    torch.save(dict(method=_Payload(getattr, (HistoryBuffer, 'mean'))), path)
    assert safe_torch_load(path)['method'] is HistoryBuffer.mean


def test_trust_opt_in(tmp_path, monkeypatch):
    path = str(tmp_path / 'fraction.pth')
    torch.save(dict(value=fractions.Fraction(1, 3)), path)
    with pytest.raises(UnsafeCheckpointError, match='fractions.Fraction'):
        safe_torch_load(path)

    monkeypatch.setenv(TRUST_ENV_VAR, str(tmp_path / 'other.pth'))
    with pytest.raises(UnsafeCheckpointError):
        safe_torch_load(path)
    monkeypatch.setenv(TRUST_ENV_VAR,
                       os.pathsep.join([str(tmp_path / 'other.pth'), path]))
    assert safe_torch_load(path)['value'] == fractions.Fraction(1, 3)
    monkeypatch.setenv(TRUST_ENV_VAR, '1')
    assert load_from_safe_local(path)['value'] == fractions.Fraction(1, 3)


def test_safetensors_file(tmp_path):
    from safetensors.torch import save_file
    source = _small_model()
    for param in source.parameters():
        nn.init.normal_(param)
    path = str(tmp_path / 'weights.safetensors')
    save_file(source.state_dict(), path)
    target = _small_model()
    load_checkpoint(target, path, map_location='cpu', strict=True)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)


def test_url_loader_is_weights_only(tmp_path):
    # file:// URLs go through the same torch.hub download-and-load path as
    # http(s):// without needing a network.
    good = tmp_path / 'good.pth'
    torch.save(_runner_like_checkpoint(), good)
    loaded = load_from_safe_http(
        good.as_uri(), model_dir=str(tmp_path / 'hub_good'))
    assert loaded['message_hub']['log_scalars']['train/loss'].max() == 3.0

    marker = str(tmp_path / 'marker')
    evil = tmp_path / 'evil.pth'
    torch.save(dict(evil=_payloads(marker)['exec'][0]), evil)
    with pytest.raises(UnsafeCheckpointError, match='builtins.exec'):
        load_from_safe_http(evil.as_uri(), model_dir=str(tmp_path / 'hub'))
    assert not osp.exists(marker)


def test_schemes_are_registered():
    loaders = {
        'work_dirs/iter_4.pth': load_from_safe_local,
        '/abs/model.safetensors': load_from_safe_local,
        'https://host/model.pth': load_from_safe_http,
        'http://host/model.pth': load_from_safe_http,
        'torchvision://resnet50': load_from_safe_alias,
        'open-mmlab://resnet50_caffe': load_from_safe_alias,
        'mmcls://resnet50': load_from_safe_alias,
    }
    for path, loader in loaders.items():
        assert CheckpointLoader._get_checkpoint_loader(path) is loader, path
    for path in ('s3://bucket/model.pth', 'pavi://model.pth'):
        assert CheckpointLoader._get_checkpoint_loader(path)._xfm_mm_safe
