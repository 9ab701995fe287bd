# Copyright (c) xfm_mm contributors. All rights reserved.
"""Launch helpers shared by tools/train.py and tools/test.py."""
import datetime

import torch
from mmengine.config import Config, ConfigDict
from mmengine.device import get_device
from torch.nn.parallel import DistributedDataParallel

from xfm_mm.registry import MODEL_WRAPPERS


def setup_cpu_distributed(cfg: Config) -> None:
    """Let ``--launcher pytorch`` run on a machine without GPU.

    mmengine's ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` and
    its DDP wrapper passes ``device_ids=[LOCAL_RANK]``. Without a GPU the
    gloo process group is created here (the Runner then skips ``init_dist``)
    and DDP wraps the CPU model without ``device_ids``.

    Args:
        cfg (Config): The merged config, changed in place.
    """
    if cfg.launcher == 'none' or get_device() != 'cpu':
        return
    if cfg.launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {cfg.launcher} needs GPUs; on a CPU-only machine '
            'start several processes with tools/dist_train.sh or '
            'tools/dist_test.sh (torchrun, '
            '--launcher pytorch)')
    env_cfg = cfg.setdefault('env_cfg', ConfigDict())
    dist_cfg = env_cfg.setdefault('dist_cfg', ConfigDict())
    dist_cfg['backend'] = 'gloo'
    if not torch.distributed.is_initialized():
        timeout = datetime.timedelta(seconds=dist_cfg.get('timeout', 1800))
        torch.distributed.init_process_group(backend='gloo', timeout=timeout)

    wrapper_cfg = cfg.get('model_wrapper_cfg') or ConfigDict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper_cls = MODEL_WRAPPERS.get(
        wrapper_cfg.get('type', 'MMDistributedDataParallel'))
    if wrapper_cls is not None and issubclass(wrapper_cls,
                                              DistributedDataParallel):
        wrapper_cfg['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper_cfg
    # FlexibleRunner's FSDPStrategy passes device_id=LOCAL_RANK (a GPU).
    strategy = cfg.get('strategy')
    if strategy and 'FSDP' in str(strategy.get('type', '')):
        strategy.setdefault('model_wrapper',
                            ConfigDict()).setdefault('device_id', 'cpu')


def shutdown_distributed() -> None:
    """Destroy the default process group, if one exists, before exit.

    torch asks for it at the end of a distributed program. Without it, one
    two-process CPU run (tools/dist_train.sh, gloo) in a full test run
    aborted on rank 1 after training had finished (SIGABRT, ``terminate
    called without an active exception``), failing the launcher.
    """
    if torch.distributed.is_available() and \
            torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
