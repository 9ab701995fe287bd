# Copyright (c) xfm_mm contributors. All rights reserved.
"""Wrong checkpoint files give clear errors instead of silent damage.

Empty, cut-off and non-PyTorch files used to raise a bare ``EOFError`` or a
zip-reader error; a ``load_from`` file whose tensors all had other shapes
trained from random weights; a weights-only file given to ``--resume``
raised ``KeyError: 'message_hub'``.
"""
import io
import os.path as osp
import uuid

import pytest
import torch
from faults import DATA
from mmengine.config import Config
from mmengine.runner import Runner, load_checkpoint

from xfm_mm.engine import GuardedRunner
from xfm_mm.utils import CorruptCheckpointError, safe_torch_load

TOY_CONFIG = osp.join(DATA, 'configs', 'toy_train.py')


def _runner(tmp_path, runner_cls=GuardedRunner, **overrides):
    cfg = Config.fromfile(TOY_CONFIG)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = f'mistakes_{uuid.uuid4().hex}'
    cfg.log_level = 'WARNING'
    cfg.custom_hooks = []
    cfg.train_cfg.max_iters = 2
    cfg.merge_from_dict(overrides)
    return runner_cls.from_cfg(cfg)


@pytest.fixture(scope='module')
def good_checkpoint(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('good')
    _runner(tmp_path).train()
    return str(tmp_path / 'work' / 'iter_2.pth')


def _corrupt_files(tmp_path, good):
    data = open(good, 'rb').read()
    legacy = io.BytesIO()
    torch.save({'state_dict': {}},
               legacy,
               _use_new_zipfile_serialization=False)
    files = {
        'empty': (b'', r'it is empty \(0 bytes\)'),
        'cut_off': (data[:len(data) // 2],
                    r'it is cut off \(\d+ bytes; the end of its zip archive '
                    'is missing\\)'),
        'cut_off_legacy': (legacy.getvalue()[:40], 'it ends too early'),
        'not_pytorch': (b'{"state_dict": {}}',
                        r"it is not a PyTorch file \(it starts with b'\{\"st'"
                        r'\); check the path'),
    }
    for name, (content, _) in files.items():
        (tmp_path / f'{name}.pth').write_bytes(content)
    return {
        name: (str(tmp_path / f'{name}.pth'), reason)
        for name, (_, reason) in files.items()
    }


@pytest.mark.parametrize('entry', ['load_from', 'resume', 'load_checkpoint'])
def test_broken_files_name_the_file_and_the_problem(tmp_path, entry,
                                                    good_checkpoint):
    for name, (path, reason) in _corrupt_files(tmp_path,
                                               good_checkpoint).items():
        pattern = (rf"safe_torch_load: cannot load checkpoint '{path}': "
                   f'{reason}')
        with pytest.raises(CorruptCheckpointError, match=pattern):
            if entry == 'load_checkpoint':  # init_cfg=Pretrained, tools
                load_checkpoint(torch.nn.Linear(1, 1), path)
            else:
                _runner(
                    tmp_path, load_from=path,
                    resume=entry == 'resume').train()


def _toy_state(**shapes):
    return {
        name: torch.zeros(shape)
        for name, shape in dict(
            {
                'net.0.weight': (16, 8),
                'net.0.bias': (16, ),
                'net.2.weight': (1, 16),
                'net.2.bias': (1, )
            }, **shapes).items()
    }


def test_a_checkpoint_that_fits_no_tensor_is_refused(tmp_path):
    path = str(tmp_path / 'other_model.pth')
    torch.save(
        {
            'state_dict':
            _toy_state(
                **{
                    'net.0.weight': (3, 3),
                    'net.0.bias': (5, ),
                    'net.2.weight': (2, 2),
                    'net.2.bias': (3, )
                })
        }, path)
    with pytest.raises(
            ValueError,
            match=r"GuardedRunner: '.*other_model.pth' gave the model "
            r'0 of its 4 tensors; 4 have another shape \('
            r'net\.0\.weight: checkpoint \(3, 3\), model '
            r'\(16, 8\).*Nothing would be loaded'):
        _runner(tmp_path, load_from=path).train()
    # Control: mmengine's Runner trains on from random weights.
    runner = _runner(tmp_path, Runner, load_from=path)
    runner.train()
    assert runner.iter == 2


def test_a_partly_fitting_checkpoint_loads_what_fits_and_says_so(
        tmp_path, capsys):
    path = str(tmp_path / 'new_head.pth')
    state = _toy_state(**{'net.2.weight': (3, 16), 'net.2.bias': (3, )})
    state['net.0.weight'] += 0.5
    torch.save({'state_dict': state}, path)
    runner = _runner(tmp_path, load_from=path, train_cfg=dict(max_iters=0))
    runner.train()
    warning = capsys.readouterr().out
    assert ("gave the model 2 of its 4 tensors; 2 have another shape "
            '(net.2.weight: checkpoint (3, 16), model (1, 16), net.2.bias: '
            'checkpoint (3,), model (1,)), 0 are missing (none). Those keep '
            'their initial values.') in warning
    assert torch.equal(runner.model.net[0].weight, state['net.0.weight'])


@pytest.mark.parametrize('drop,missing', [
    (('message_hub', 'optimizer', 'param_schedulers'),
     'message_hub, optimizer, param_schedulers'),
    (('optimizer', ), 'optimizer'),
    (('meta', ), 'meta'),
])
def test_resume_needs_a_complete_runner_checkpoint(tmp_path, good_checkpoint,
                                                   drop, missing):
    checkpoint = safe_torch_load(good_checkpoint)
    for key in drop:
        del checkpoint[key]
    path = str(tmp_path / 'partial.pth')
    torch.save(checkpoint, path)
    with pytest.raises(
            ValueError,
            match=rf"GuardedRunner: cannot resume from '{path}': it "
            r'is not a complete Runner checkpoint \(missing '
            rf'{missing}; .*pass it as load_from instead'):
        _runner(tmp_path, load_from=path, resume=True).train()
    # The same file starts a new run as load_from.
    _runner(tmp_path, load_from=path).train()


def test_a_good_checkpoint_resumes(tmp_path, good_checkpoint):
    runner = _runner(
        tmp_path,
        load_from=good_checkpoint,
        resume=True,
        train_cfg=dict(max_iters=3))
    runner.train()
    assert runner.iter == 3
