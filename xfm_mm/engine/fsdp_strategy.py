# Copyright (c) xfm_mm contributors. All rights reserved.
"""mmengine's ``FSDPStrategy`` with checkpoints that save on CPU and resume
through xfm_mm's weights-only loader."""
import dataclasses

import torch
from mmengine._strategy import FSDPStrategy
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp.api import StateDictType

from xfm_mm.registry import STRATEGIES
from xfm_mm.utils.checkpoint_allowlist import sharded_allowlisted


@STRATEGIES.register_module()
class SafeFSDPStrategy(FSDPStrategy):
    """``FSDPStrategy`` whose checkpoints save and resume on CPU too.

    Three changes to mmengine 0.10.7's strategy, all about checkpoints:

    - **Sharded resume** (``state_dict_cfg='local'``): each ``rank{i}.pth``
      holds torch's ``ShardedTensor`` objects, which the weights-only
      loader refuses. They are loaded inside
      :func:`~xfm_mm.utils.checkpoint_allowlist.sharded_allowlisted`, which
      adds exactly ``ShardedTensor`` and its metadata classes for that load;
      everything else in the file is still refused.
    - **Full checkpoints when the model is on CPU** (gloo):
      ``state_dict_cfg='full'`` asks FSDP for ``offload_to_cpu=True``. With
      the flat parameters already on CPU, FSDP's offload
      (``FlatParamHandle.to_cpu`` in ``torch/distributed/fsdp/_flat_param.py``)
      moves nothing, then frees the unsharded storage that the "offloaded"
      views still point into, and cloning them for the state dict reads
      freed memory: SIGSEGV on rank 0. Offloading is pointless there, so it
      is switched off for both the model and the optimizer state dicts.
    - **Optimizer state on resume**: mmengine calls
      ``FSDP.optim_state_dict_to_load(state_dict, model, optimizer)``, the
      argument order of torch 1.x; torch 2 takes ``(model, optimizer,
      state_dict)`` and fails (``TypeError: unhashable type: 'dict'``). The
      optimizer, not its wrapper, is passed to FSDP both ways.

    Args:
        **kwargs: The arguments of ``FSDPStrategy`` (``model_wrapper``,
            ``state_dict_cfg``, ...).
    """

    def _wrap_model(self, model):
        if self._compute_on_cpu():
            for attr in ('state_dict_config', 'optim_state_dict_config'):
                config = getattr(self, attr)
                if getattr(config, 'offload_to_cpu', False):
                    setattr(self, attr,
                            dataclasses.replace(config, offload_to_cpu=False))
        return super()._wrap_model(model)

    def _compute_on_cpu(self) -> bool:
        device_id = (self.model_wrapper or {}).get('device_id')
        if device_id is not None:
            return torch.device(device_id).type == 'cpu'
        return not torch.cuda.is_available()

    def load_checkpoint(self, filename: str, **kwargs) -> dict:
        """Load the rank's checkpoint (see ``FSDPStrategy.load_checkpoint``).

        Args:
            filename (str): The checkpoint file (``'full'``) or the folder of
                ``rank{i}.pth`` shards (``'local'`` and other sharded
                state dict types).
            **kwargs: ``map_location``, ``strict``, ``revise_keys``,
                ``callback``.

        Returns:
            dict: The checkpoint without its ``state_dict``.
        """
        if self.state_dict_type == StateDictType.FULL_STATE_DICT:
            return super().load_checkpoint(filename, **kwargs)
        with sharded_allowlisted():
            return super().load_checkpoint(filename, **kwargs)

    def optim_state_dict(self) -> dict:
        """The optimizer's state dict in the configured FSDP form.

        Returns:
            dict: What ``FSDP.optim_state_dict`` returns for the optimizer.
        """
        return FSDP.optim_state_dict(self.model, self.optim_wrapper.optimizer)

    def load_optim_state_dict(self, state_dict: dict) -> None:
        """Load an optimizer state dict saved by :meth:`optim_state_dict`.

        Args:
            state_dict (dict): The saved optimizer state dict.
        """
        self.optim_wrapper.load_state_dict(
            FSDP.optim_state_dict_to_load(self.model,
                                          self.optim_wrapper.optimizer,
                                          state_dict))
