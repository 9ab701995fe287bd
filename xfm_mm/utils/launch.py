# Copyright (c) xfm_mm contributors. All rights reserved.
"""Launch helpers shared by tools/train.py and tools/test.py."""
import datetime
import gc

import torch
# Imported before any process group exists: importing torch._dynamo later
# keeps references to the default group for good, so that
# shutdown_distributed() could no longer free it.
import torch._dynamo  # noqa: F401
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
    """Free every process group, joining its threads, before exit.

    Deregistering the groups is not enough. A gloo worker thread that drops
    the last reference to a tensor made in Python needs the GIL; if the
    interpreter is already finalizing, the thread is ended in a ``noexcept``
    frame and the process aborts (SIGABRT, ``terminate called without an
    active exception``, pytorch/pytorch#190489): 3 of 52 two-process CPU
    runs of tools/dist_train.sh died so after training had finished. A
    group is freed, and its threads joined, once nothing holds it: callers
    drop their runner first (its DDP wrapper holds the group), and the
    collection here breaks the runner's reference cycles.
    """
    if not (torch.distributed.is_available()
            and torch.distributed.is_initialized()):
        return
    gc.collect()
    torch.distributed.destroy_process_group()
