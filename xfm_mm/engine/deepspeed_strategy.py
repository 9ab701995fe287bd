# Copyright (c) xfm_mm contributors. All rights reserved.
"""DeepSpeed ZeRO (Rajbhandari et al., SC 2020) through mmengine's
``DeepSpeedStrategy``, for the multi-source loop, with checkpoints that
resume through xfm_mm's weights-only loader."""
import contextlib
from typing import Callable, Optional

import torch
import torch.distributed as dist
from mmengine._strategy import deepspeed as mm_deepspeed
from mmengine._strategy.deepspeed import (DeepSpeedOptimWrapper,
                                          DeepSpeedStrategy,
                                          MMDeepSpeedEngineWrapper)
from mmengine.logging import print_log
from mmengine.registry import OPTIMIZERS

from xfm_mm.registry import MODEL_WRAPPERS, OPTIM_WRAPPERS, STRATEGIES
from xfm_mm.utils.checkpoint import safe_torch_load

__all__ = [
    'SafeDeepSpeedStrategy', 'DeepSpeedEngineWrapper',
    'MultiSourceDeepSpeedOptimWrapper', 'safe_checkpoint_engine'
]


@MODEL_WRAPPERS.register_module()
class DeepSpeedEngineWrapper(MMDeepSpeedEngineWrapper):
    """mmengine's engine wrapper, callable like the other model wrappers.

    :class:`~xfm_mm.engine.MultiSourceTrainLoop` runs each source's forward
    as ``model(**data, mode='loss')`` (one backward per source, one
    optimizer step per group), which mmengine's wrapper, built for one
    ``train_step`` per step, does not offer.
    """

    def __call__(self, *args, **kwargs):
        return self.model(*args, **kwargs)


@OPTIM_WRAPPERS.register_module()
class MultiSourceDeepSpeedOptimWrapper(DeepSpeedOptimWrapper):
    """mmengine's DeepSpeed optimizer wrapper for several backward passes
    per optimizer step.

    The loop marks the last backward of a step group with
    :meth:`set_accumulation_boundary`; DeepSpeed reduces (ZeRO-1/2:
    partitions) the gradients summed over the group's sources there, and
    :meth:`step` then steps once. Precision is DeepSpeed's (``bf16`` or
    ``torch_autocast`` in the strategy config), so :meth:`optim_context`
    adds nothing; gradient clipping is the strategy's
    ``gradient_clipping``.
    """

    def set_accumulation_boundary(self, is_last: bool) -> None:
        """Say whether the next backward is the last one before the step.

        Args:
            is_last (bool): The next backward ends the step group.
        """
        self.model.set_gradient_accumulation_boundary(is_last)

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Back-propagate ``loss`` unscaled: the group's sources add up, as
        under DDP (DeepSpeed would divide by its accumulation steps)."""
        self.model.backward(loss, scale_wrt_gas=False, **kwargs)

    def zero_grad(self, **kwargs) -> None:
        """Nothing: DeepSpeed clears the gradients in its step."""

    @contextlib.contextmanager
    def optim_context(self, model: torch.nn.Module):
        """No context: DeepSpeed's engine applies the precision policy."""
        yield


def _register_deepspeed_optimizers() -> list:
    """mmengine's ``register_deepspeed_optimizers`` for DeepSpeed 0.19.

    mmengine 0.10.7 also imports ``deepspeed.runtime.fp16.onebit``, which
    DeepSpeed 0.19 no longer has, and so fails to build any
    ``DeepSpeedStrategy``; this registers the optimizers that exist.

    Returns:
        list[str]: The names registered in mmengine's ``OPTIMIZERS``.
    """
    from deepspeed.ops.adam import DeepSpeedCPUAdam, FusedAdam
    from deepspeed.ops.lamb import FusedLamb
    names = []
    for cls in (DeepSpeedCPUAdam, FusedAdam, FusedLamb):
        if cls.__name__ not in OPTIMIZERS:
            OPTIMIZERS.register_module(module=cls)
        names.append(cls.__name__)
    return names


@contextlib.contextmanager
def _deepspeed_optimizer_registration():
    """Build mmengine's strategy with :func:`_register_deepspeed_optimizers`
    in place of its own."""
    original = mm_deepspeed.register_deepspeed_optimizers
    mm_deepspeed.register_deepspeed_optimizers = \
        _register_deepspeed_optimizers
    try:
        yield
    finally:
        mm_deepspeed.register_deepspeed_optimizers = original


def _plain(value):
    """``value`` with every dict (e.g. mmengine's ``ConfigDict``) and list
    rebuilt as a plain one."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value


@contextlib.contextmanager
def _scalars_broadcast_here(model: torch.nn.Module):
    """Broadcast the model's 0-d parameters (the ITC temperature) from rank
    0 here, and have ``deepspeed.initialize`` skip them.

    DeepSpeed's ``_broadcast_model`` sends each parameter as bytes,
    ``p.data.view(torch.uint8)``, which a 0-d tensor refuses. It leaves out
    parameters marked ``ds_optim_param`` (its own mark for parameters that
    are not replicated); the mark is removed again after ``initialize``.
    """
    from deepspeed.accelerator import get_accelerator
    scalars = [p for p in model.parameters() if p.dim() == 0]
    if scalars and dist.is_initialized():
        model.to(get_accelerator().current_device_name())
        for param in scalars:
            dist.broadcast(param.data, src=0)
    for param in scalars:
        param.ds_optim_param = True
    try:
        yield
    finally:
        for param in scalars:
            del param.ds_optim_param


def safe_checkpoint_engine(config):
    """DeepSpeed's torch checkpoint engine, loading through
    :func:`~xfm_mm.utils.checkpoint.safe_torch_load`.

    DeepSpeed's own ``TorchCheckpointEngine.load`` unpickles with
    ``weights_only=False``, so a crafted checkpoint folder would run code on
    ``--resume``. This one refuses anything outside the allowlist of
    :mod:`xfm_mm.utils.checkpoint_allowlist` plus the plain DeepSpeed types
    its files hold.

    Args:
        config: The engine's ``DeepSpeedConfig``.

    Returns:
        TorchCheckpointEngine: The engine to set as the DeepSpeed engine's
        ``checkpoint_engine``.
    """
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import \
        TorchCheckpointEngine
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    # What ZeRO-1/2 optimizer states hold besides tensors and containers:
    # the stage (an int enum), the (static, for bf16 / fp32) loss scaler's
    # attributes and the (numel, start) dataclass of each parameter's slice
    # of a partition. The last two are rebuilt from their attributes,
    # without running their code.
    deepspeed_globals = (ZeroStageEnum, LossScaler, fragment_address)

    class SafeTorchCheckpointEngine(TorchCheckpointEngine):

        def load(self, path: str, map_location=None):
            present = torch.serialization.get_safe_globals()
            extra = [g for g in deepspeed_globals if g not in present]
            with torch.serialization.safe_globals(extra):
                return safe_torch_load(path, map_location=map_location)

    return SafeTorchCheckpointEngine(config)


@STRATEGIES.register_module()
class SafeDeepSpeedStrategy(DeepSpeedStrategy):
    """mmengine's ``DeepSpeedStrategy`` for xfm_mm's multi-source loop.

    Changes to mmengine 0.10.7's strategy:

    - the model wrapper is :class:`DeepSpeedEngineWrapper` (callable) and
      checkpoints load through :func:`safe_checkpoint_engine` (no code from
      the file runs, on ``load_from`` or ``--resume``);
    - the hooks' ``before_save_checkpoint`` / ``after_load_checkpoint`` run,
      so a resumed run continues exactly (random states);
    - ``train_micro_batch_size_per_gpu`` defaults to 1: DeepSpeed requires
      it, mmengine sets it only for its own strategy name, and with several
      sources per step it only feeds DeepSpeed's throughput log;
    - it builds with DeepSpeed 0.19, which no longer has the one-bit
      optimizers mmengine imports (:func:`_register_deepspeed_optimizers`);
    - ZeRO stage 3 is refused: with several backward passes per step its
      updates differed from DDP's (7e-3 to 1.4e-2 on a toy model; stages 1
      and 2: 0 and 1.5e-8); shard parameters with FSDP (``*_fsdp.py``) instead;
    - 0-d parameters (the ITC temperature), which DeepSpeed cannot
      broadcast, are broadcast before ``deepspeed.initialize``;
    - on gloo (CPU processes), which has no reduce-scatter, ZeRO-2 reduces
      with all-reduce (``reduce_scatter=False``).

    Under ZeRO the parameters a step group does not use get zero gradients
    (flat partitions) where DDP gives them none, so AdamW's momentum still
    moves them in that group's step: a schedule of step groups over
    different towers (X-FM's) does not give DDP's updates exactly.

    Args:
        **kwargs: The arguments of ``DeepSpeedStrategy`` (``config``,
            ``zero_optimization``, ``gradient_clipping``, ``bf16``, ...).
    """

    def __init__(self,
                 *,
                 train_micro_batch_size_per_gpu: Optional[int] = 1,
                 **kwargs):
        with _deepspeed_optimizer_registration():
            super().__init__(
                train_micro_batch_size_per_gpu=train_micro_batch_size_per_gpu,
                **kwargs)
        stage = self.config.get('zero_optimization', {}).get('stage', 0)
        if stage > 2:
            raise ValueError(
                f'{type(self).__name__}: ZeRO stage {stage} is not supported '
                'by the multi-source loop (several backward passes per '
                'step); use stage 1 or 2, or FSDP (configs/xfm/*_fsdp.py) '
                'to shard parameters')

    def save_checkpoint(self,
                        filename: str,
                        *,
                        extra_ckpt: Optional[dict] = None,
                        callback: Optional[Callable] = None,
                        **kwargs) -> None:
        """Save as ``DeepSpeedStrategy.save_checkpoint``, after running
        ``callback`` (the hooks' ``before_save_checkpoint``, e.g. the random
        states of :class:`~xfm_mm.engine.hooks.RandomStateHook`), which
        mmengine's strategy skips.

        Args:
            filename (str): The checkpoint folder.
            extra_ckpt (dict, optional): What is saved besides the model and
                optimizer (``meta``, ``message_hub``).
            callback (callable, optional): Called with ``extra_ckpt``.
            **kwargs: ``save_optimizer``, ``save_param_scheduler``.
        """
        extra_ckpt = {} if extra_ckpt is None else extra_ckpt
        if callback is not None:
            callback(extra_ckpt)
        super().save_checkpoint(filename, extra_ckpt=extra_ckpt, **kwargs)

    def resume(self,
               filename: str,
               *,
               callback: Optional[Callable] = None,
               **kwargs) -> dict:
        """Resume as ``DeepSpeedStrategy.resume``, then run ``callback``
        (the hooks' ``after_load_checkpoint``), which mmengine's strategy
        skips: without it the random states, and so the ITM negatives and
        dropout masks, would not be resumed.

        Args:
            filename (str): The checkpoint folder.
            callback (callable, optional): Called with the loaded extra
                state.
            **kwargs: ``resume_optimizer``, ``resume_param_scheduler``,
                ``map_location``.

        Returns:
            dict: The extra state saved with the checkpoint.
        """
        checkpoint = super().resume(filename, **kwargs)
        if callback is not None:
            callback(checkpoint)
        return checkpoint

    def _wrap_model(self, model: torch.nn.Module) -> DeepSpeedEngineWrapper:
        import deepspeed
        # Plain containers: DeepSpeed pickles its config into every
        # checkpoint, and a ConfigDict there would not load weights-only.
        config = _plain(self.config)
        zero = config.get('zero_optimization', {})
        if (dist.is_initialized() and dist.get_backend() == 'gloo'
                and zero.get('stage', 0) == 2
                and zero.get('reduce_scatter', True)):
            print_log(
                f'{type(self).__name__}: gloo has no reduce-scatter; ZeRO-2 '
                'reduces gradients with all-reduce', logger='current')
            zero['reduce_scatter'] = False
        with _scalars_broadcast_here(model):
            if hasattr(self, 'optim_wrapper'):
                engine, self.optim_wrapper.optimizer, *_ = \
                    deepspeed.initialize(
                        model=model,
                        optimizer=self.optim_wrapper.optimizer,
                        config=config)
            else:
                engine, *_ = deepspeed.initialize(model=model, config=config)
        engine.checkpoint_engine = safe_checkpoint_engine(engine._config)
        return DeepSpeedEngineWrapper(
            model=engine, inputs_to_half=self._inputs_to_half)
