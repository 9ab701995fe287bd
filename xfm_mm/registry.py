# Copyright (c) xfm_mm contributors. All rights reserved.
"""xfm_mm registries: children of mmengine's root registries.

Every registry here has ``scope='xfm_mm'`` and a ``locations`` list, so that
``type='xfm_mm.Name'`` resolves from any scope: mmengine imports
``xfm_mm.registry`` when it meets the ``xfm_mm.`` prefix, and the child
registry then imports the modules in ``locations`` to fill itself. This is
what lets an mmdet or mmseg config (``default_scope='mmdet'``) use
``backbone=dict(type='xfm_mm.XFMViT')`` without ``custom_imports``.

``TOKENIZER`` is a child of mmpretrain's tokenizer registry, so tokenizers
registered there (``mmpretrain.BertTokenizer`` etc.) are reachable too.
``RECORD_PARSERS`` (a root: neither mmengine nor mmpretrain has one) holds
the parsers that turn one JSON-lines record into a pipeline input; a
dataset's ``parser=dict(type=...)`` is built from it.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import INFERENCERS as MMENGINE_INFERENCERS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import \
    RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import \
    WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS',
    'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS',
    'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'TASK_UTILS', 'METRICS',
    'EVALUATOR', 'VISUALIZERS', 'VISBACKENDS', 'INFERENCERS', 'FUNCTIONS',
    'TOKENIZER', 'RECORD_PARSERS',
    'STRATEGIES'
]


def _child(name: str, parent: Registry, locations: list) -> Registry:
    return Registry(
        name, parent=parent, scope='xfm_mm', locations=locations)


# Training machinery.
RUNNERS = _child('runner', MMENGINE_RUNNERS, ['xfm_mm.engine'])
RUNNER_CONSTRUCTORS = _child('runner constructor',
                             MMENGINE_RUNNER_CONSTRUCTORS, ['xfm_mm.engine'])
LOOPS = _child('loop', MMENGINE_LOOPS, ['xfm_mm.engine'])
HOOKS = _child('hook', MMENGINE_HOOKS, ['xfm_mm.engine'])
LOG_PROCESSORS = _child('log processor', MMENGINE_LOG_PROCESSORS,
                        ['xfm_mm.engine'])
OPTIMIZERS = _child('optimizer', MMENGINE_OPTIMIZERS, ['xfm_mm.engine'])
OPTIM_WRAPPERS = _child('optim wrapper', MMENGINE_OPTIM_WRAPPERS,
                        ['xfm_mm.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
                                    ['xfm_mm.engine'])
PARAM_SCHEDULERS = _child('parameter scheduler', MMENGINE_PARAM_SCHEDULERS,
                          ['xfm_mm.engine'])
STRATEGIES = _child('strategy', MMENGINE_STRATEGIES, ['xfm_mm.engine'])

# Data.
DATASETS = _child('dataset', MMENGINE_DATASETS, ['xfm_mm.datasets'])
DATA_SAMPLERS = _child('data sampler', MMENGINE_DATA_SAMPLERS,
                       ['xfm_mm.datasets'])
TRANSFORMS = _child('transform', MMENGINE_TRANSFORMS,
                    ['xfm_mm.datasets.transforms'])

# Models.
MODELS = _child('model', MMENGINE_MODELS, ['xfm_mm.models'])
MODEL_WRAPPERS = _child('model_wrapper', MMENGINE_MODEL_WRAPPERS,
                        ['xfm_mm.models'])
WEIGHT_INITIALIZERS = _child('weight initializer',
                             MMENGINE_WEIGHT_INITIALIZERS, ['xfm_mm.models'])
TASK_UTILS = _child('task util', MMENGINE_TASK_UTILS, ['xfm_mm.models'])

# Evaluation and visualisation.
METRICS = _child('metric', MMENGINE_METRICS, ['xfm_mm.evaluation'])
EVALUATOR = _child('evaluator', MMENGINE_EVALUATOR, ['xfm_mm.evaluation'])
VISUALIZERS = _child('visualizer', MMENGINE_VISUALIZERS,
                     ['xfm_mm.visualization'])
VISBACKENDS = _child('vis_backend', MMENGINE_VISBACKENDS,
                     ['xfm_mm.visualization'])

INFERENCERS = _child('inferencer', MMENGINE_INFERENCERS, ['xfm_mm.apis'])
FUNCTIONS = _child('function', MMENGINE_FUNCTIONS, ['xfm_mm.datasets'])
RECORD_PARSERS = Registry(
    'record parser', scope='xfm_mm', locations=['xfm_mm.datasets.parsers'])


def _tokenizer_parent() -> Registry:
    """mmpretrain's TOKENIZER registry (a root), imported lazily-safe."""
    from mmpretrain.registry import TOKENIZER as MMPRETRAIN_TOKENIZER
    return MMPRETRAIN_TOKENIZER


TOKENIZER = Registry(
    'tokenizer',
    parent=_tokenizer_parent(),
    scope='xfm_mm',
    locations=['xfm_mm.models.tokenizers'])
