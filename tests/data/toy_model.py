# Copyright (c) xfm_mm contributors. All rights reserved.
"""A tiny regression model, dataset and metric for the tool tests.

Imported by ``tests/data/configs/toy_*.py`` through ``custom_imports`` as the
top-level module ``toy_model`` (the tests put ``tests/data`` on the path).
Stands in for the real X-FM tiny config until that exists.
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.dataset import BaseDataset
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel, is_model_wrapper
from torch import nn

from xfm_mm.registry import DATASETS, HOOKS, METRICS, MODELS


@MODELS.register_module()
class ToyRegressor(BaseModel):
    """Two linear layers regressing ``target`` from ``inputs``.

    Args:
        in_dims (int): Input features.
        hidden_dims (int): Hidden features.
    """

    def __init__(self, in_dims: int = 8, hidden_dims: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dims, hidden_dims), nn.GELU(),
            nn.Linear(hidden_dims, 1))

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[Dict[str, torch.Tensor]] = None,
                mode: str = 'tensor'):
        """``loss`` gives the MSE, ``predict`` per-sample dicts.

        ``data_samples`` is ``default_collate``'s ``dict(target=(B,))``.
        """
        pred = self.net(inputs).squeeze(-1)
        if mode == 'tensor':
            return pred
        target = data_samples['target'].to(pred)
        if mode == 'loss':
            return dict(loss=nn.functional.mse_loss(pred, target))
        return [dict(pred=p, target=t) for p, t in zip(pred.detach(), target)]


@DATASETS.register_module()
class ToyRegressionDataset(BaseDataset):
    """``num_samples`` fixed random pairs ``y = sum(w * x)``.

    Args:
        num_samples (int): Dataset length.
        in_dims (int): Input features.
        seed (int): Seed of the generator that draws the data.
    """

    def __init__(self,
                 num_samples: int = 32,
                 in_dims: int = 8,
                 seed: int = 0,
                 **kwargs) -> None:
        self.num_samples = num_samples
        self.in_dims = in_dims
        self.seed = seed
        super().__init__(serialize_data=False, **kwargs)

    def load_data_list(self) -> List[dict]:
        generator = torch.Generator().manual_seed(self.seed)
        inputs = torch.randn(
            self.num_samples, self.in_dims, generator=generator)
        weight = torch.linspace(-1.0, 1.0, self.in_dims)
        targets = inputs @ weight
        return [
            dict(inputs=x, data_samples=dict(target=y))
            for x, y in zip(inputs, targets)
        ]

    def prepare_data(self, idx: int) -> dict:
        """The stored pair, without BaseDataset's ``sample_idx`` key."""
        return dict(self.data_list[idx])


@METRICS.register_module()
class ToyMSEMetric(BaseMetric):
    """Mean squared error of ``ToyRegressor`` predictions."""

    default_prefix = 'toy'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            self.results.append(float((sample['pred'] - sample['target'])**2))

    def compute_metrics(self, results: List[float]) -> Dict[str, float]:
        return dict(mse=sum(results) / len(results))


@HOOKS.register_module()
class ToyRankReportHook(Hook):
    """Writes ``rank<k>.json`` to the work dir after training.

    The report (rank, world size, iteration, sum of the parameters) lets a
    test check that every rank trained and that DDP kept them in sync.
    """

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        param_sum = sum(p.detach().double().sum().item()
                        for p in model.parameters())
        report = dict(
            rank=runner.rank,
            world_size=runner.world_size,
            iter=runner.iter,
            param_sum=param_sum)
        path = osp.join(runner.work_dir, f'rank{runner.rank}.json')
        with open(path, 'w') as file:
            json.dump(report, file)
