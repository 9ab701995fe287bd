# Copyright (c) xfm_mm contributors. All rights reserved.
"""The base of every xfm_mm pre-training and task model."""
from abc import abstractmethod
from typing import List, Optional, Union

from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import nn

from xfm_mm.registry import MODELS
from .utils.compile import compile_module, pop_compile_cfg
from .weights import upgrade_legacy_keys


class BaseMultimodalModel(BaseModel):
    """Data preprocessor, sub-module building and ``mode`` dispatch.

    What every xfm_mm model (X-FM, X2-VLM, FLAVA, the unified model, their
    task models) shares:

    - The data preprocessor is built in xfm_mm's ``MODELS`` registry, so it
      resolves whatever the default scope (mmengine's ``BaseModel`` would
      look in mmengine's registry); it defaults to ``MultiSourceDataPreprocessor``.
    - :meth:`build_module` builds a tower or head from its config.
    - :meth:`forward` dispatches on ``mode`` to :meth:`loss`,
      :meth:`predict` and :meth:`_forward`, which subclasses implement.
    - Checkpoints saved before the towers were rebuilt have their keys
      renamed before anything else reads them, the model's own
      ``load_state_dict`` pre-hooks included
      (:func:`~xfm_mm.models.weights.upgrade_legacy_keys`).

    Args:
        data_preprocessor (dict | nn.Module, optional): The data
            preprocessor or its config. Defaults to
            ``dict(type='MultiSourceDataPreprocessor')``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='MultiSourceDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.register_load_state_dict_pre_hook(upgrade_legacy_keys)

    @staticmethod
    def build_module(cfg: Optional[dict]) -> Optional[nn.Module]:
        """Build a sub-module from its ``MODELS`` config.

        ``compile=True`` (or a dict of ``torch.compile`` arguments) in the
        config compiles the module's forward in place, e.g.
        ``model.vision_encoder.compile=True``
        (:func:`~xfm_mm.models.utils.compile.compile_module`).

        Args:
            cfg (dict, optional): The config; None builds nothing.

        Returns:
            nn.Module | None: The module, or None when ``cfg`` is None.
        """
        if cfg is None:
            return None
        cfg, compile_kwargs = pop_compile_cfg(cfg)
        return compile_module(MODELS.build(cfg), compile_kwargs)

    def forward(self,
                inputs: dict,
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        """Dispatch on ``mode``.

        Args:
            inputs (dict): The batch made by ``MultiSourceDataPreprocessor``.
            data_samples (list[BaseDataElement], optional): Per-sample
                annotations and meta. Defaults to None.
            mode (str): ``'loss'``, ``'predict'`` or ``'tensor'``.
                Defaults to ``'tensor'``.

        Returns:
            dict | list | torch.Tensor: ``'loss'``: a dict of loss tensors
            (:meth:`loss`); ``'predict'``: the data samples with the
            predictions (:meth:`predict`); ``'tensor'``: the model's raw
            output (:meth:`_forward`, see the subclass).
        """
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}".')

    @abstractmethod
    def loss(self, inputs: dict, data_samples: Optional[list] = None) -> dict:
        """Losses of a batch (``mode='loss'``)."""

    @abstractmethod
    def predict(self,
                inputs: dict,
                data_samples: Optional[list] = None) -> list:
        """Data samples carrying predictions (``mode='predict'``)."""

    @abstractmethod
    def _forward(self, inputs: dict, data_samples: Optional[list] = None):
        """The raw network output, without loss or post-processing
        (``mode='tensor'``)."""
