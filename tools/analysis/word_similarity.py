# Copyright (c) xfm_mm contributors. All rights reserved.
"""How much word knowledge a language encoder keeps: Spearman correlation
between human word-pair similarity ratings and the cosine of the encoder's
mean-pooled word embeddings (the pooling of the sentence-transformers
MiniLM the demo starts from).

The ratings come with the gensim wheel the demo assets already download
(``wordsim353.tsv``, Finkelstein et al. 2002; ``simlex999.txt``, Hill et
al. 2015); neither is used in training.

Usage::

    python tools/analysis/word_similarity.py configs/xfm/pretrain_demo.py \
        [CHECKPOINT] [--pairs PATH ...] [--out result.json]

Without a checkpoint the encoder is the config's initialisation (the real
MiniLM weights); with one, its ``text_encoder.*`` weights.
"""
import argparse
import json
import os.path as osp
import sys
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
import xfm_mm  # noqa: E402,F401  (registries, safe checkpoint loading)
from xfm_mm.models.tokenizers import build_tokenizer  # noqa: E402
from xfm_mm.registry import MODELS  # noqa: E402

BENCHMARKS = ('wordsim353.tsv', 'simlex999.txt')


def read_pairs(path: str) -> List[Tuple[str, str, float]]:
    """``word1<TAB>word2<TAB>score`` lines; ``#`` lines are comments."""
    pairs = []
    with open(path, encoding='utf-8') as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip() or line.startswith('#'):
                continue
            fields = line.rstrip('\n').split('\t')
            try:
                pairs.append((fields[0], fields[1], float(fields[2])))
            except (IndexError, ValueError):
                raise ValueError(f'{path}:{line_no}: expected "word1\\t'
                                 'word2\\tscore"') from None
    if not pairs:
        raise ValueError(f'{path}: no word pair')
    return pairs


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho (average ranks for ties)."""
    def ranks(x):
        x = np.asarray(x, dtype=np.float64)
        order = np.argsort(x, kind='mergesort')
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for value in np.unique(x):  # average the ranks of ties
            tied = x == value
            r[tied] = r[tied].mean()
        return r
    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


@torch.no_grad()
def embed_words(encoder, tokenizer, words: Sequence[str]) -> torch.Tensor:
    """Mean-pooled last hidden states of each word, L2-normalised."""
    encoded = tokenizer(list(words), padding=True, return_tensors='pt')
    hidden = encoder(encoded['input_ids'], encoded['attention_mask'])
    mask = encoded['attention_mask'].unsqueeze(-1).to(hidden)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled.float(), dim=-1)


def word_similarity(encoder, tokenizer,
                    pairs: Sequence[Tuple[str, str, float]]) -> float:
    """Spearman rho of the encoder's cosines against the ratings."""
    words = sorted({w for a, b, _ in pairs for w in (a, b)})
    vectors = embed_words(encoder, tokenizer, words)
    index = {w: i for i, w in enumerate(words)}
    cosines = [float(vectors[index[a]] @ vectors[index[b]])
               for a, b, _ in pairs]
    return spearman(cosines, [s for _, _, s in pairs])


def load_text_encoder(config: str, checkpoint: str = None):
    """The config's language encoder, with a checkpoint's weights."""
    cfg = Config.fromfile(config)
    encoder = MODELS.build(cfg.model.text_encoder)
    encoder.init_weights()
    if checkpoint:
        from mmengine.runner.checkpoint import _load_checkpoint
        state = _load_checkpoint(checkpoint, map_location='cpu')
        state = state.get('state_dict', state)
        prefix = 'text_encoder.'
        own = {k[len(prefix):]: v for k, v in state.items()
               if k.startswith(prefix)}
        if not own:
            raise KeyError(f'{checkpoint}: no {prefix}* weights')
        encoder.load_state_dict(own)
    return encoder.eval(), build_tokenizer(cfg.tokenizer)


def default_pairs() -> List[str]:
    """The benchmark files next to the demo's gensim assets."""
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'data'))
    from prepare_demo_data import default_assets_dir
    folder = osp.join(default_assets_dir(), 'gensim')
    return [osp.join(folder, name) for name in BENCHMARKS]


def main(argv=None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', default=None)
    parser.add_argument('--pairs', nargs='+', default=None,
                        help='benchmark files (default: wordsim353, '
                        'simlex999 of the demo assets)')
    parser.add_argument('--out', default=None, help='write a JSON result')
    args = parser.parse_args(argv)
    encoder, tokenizer = load_text_encoder(args.config, args.checkpoint)
    result = {}
    for path in args.pairs or default_pairs():
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{path} not found; run tools/data/install_demo_assets.sh')
        name = osp.splitext(osp.basename(path))[0]
        result[name] = word_similarity(encoder, tokenizer, read_pairs(path))
        print(f'{name}: Spearman {result[name]:.4f}')
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
