# Copyright (c) xfm_mm contributors. All rights reserved.
"""BERT / RoBERTa-compatible text encoder: embedding + transformer stack."""
import os.path as osp
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule

from xfm_mm.registry import MODELS
from xfm_mm.utils.paths import resolve_path
from ..layers import (TextEmbedding, TransformerStack, mask_to_bias,
                      run_on_real_tokens)
from ..weights import (TEXT_137E521, check_load_result,
                       convert_hf_text_encoder, load_state_dict_file,
                       resolve_arch, upgrade_legacy_keys)

#: BERT-base values for architecture arguments nobody set.
BERT_BASE_ARCH = dict(
    vocab_size=30522,
    embed_dims=768,
    num_layers=12,
    num_heads=12,
    feedforward_channels=3072,
    max_positions=512,
    type_vocab_size=2,
    pad_token_id=0,
    position_style='bert',
    layer_norm_eps=1e-12,
    dropout=0.1,
    attn_dropout=0.1)


def init_bert_weights(module: nn.Module) -> None:
    """BERT initialisation: N(0, 0.02) weights, zero biases, unit norms.

    Args:
        module (nn.Module): Applied to every submodule via ``Module.apply``.
    """
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if (isinstance(module, nn.Embedding)
                and module.padding_idx is not None):
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def bert_stack(arch: dict,
               cross_attn_dims: Optional[int] = None,
               norm_first: bool = False,
               final_norm: bool = False,
               with_cp: bool = False,
               cross_attn_layers: Optional[Sequence[int]] = None
               ) -> TransformerStack:
    """The transformer stack of a BERT-style tower.

    Args:
        arch (dict): ``num_layers``, ``embed_dims``, ``num_heads``,
            ``feedforward_channels``, ``layer_norm_eps``, ``dropout``,
            ``attn_dropout``.
        cross_attn_dims (int, optional): Context width; the layers of
            ``cross_attn_layers`` cross-attend when given.
        norm_first (bool): Pre-norm layers. Defaults to False (BERT).
        final_norm (bool): A final LayerNorm. Defaults to False.
        with_cp (bool): Activation checkpointing. Defaults to False.
        cross_attn_layers (Sequence[int], optional): The cross-attending
            layers (X2-VLM: ``range(12, 18)``). Defaults to every layer.

    Returns:
        TransformerStack: The stack.
    """
    layer_cfg = dict(
        embed_dims=arch['embed_dims'],
        num_heads=arch['num_heads'],
        feedforward_channels=arch['feedforward_channels'],
        norm_first=norm_first,
        layer_norm_eps=arch['layer_norm_eps'],
        dropout=arch['dropout'],
        attn_dropout=arch['attn_dropout'])
    if cross_attn_dims is not None:
        layer_cfg['cross_attn_dims'] = cross_attn_dims
    return TransformerStack(
        arch['num_layers'],
        layer_cfg,
        cross_attn_layers=None if cross_attn_dims is None else
        (cross_attn_layers if cross_attn_layers is not None else 'all'),
        final_norm=final_norm,
        with_cp=with_cp)


def bert_arch(
    owner: str,
    arch: dict,
    hf_config: Optional[str],
    keys: Sequence[str] = tuple(BERT_BASE_ARCH)) -> dict:
    """Architecture of a BERT-style tower: given > HF config > BERT-base.

    Args:
        owner (str): The tower's name, for the error message.
        arch (dict): The architecture arguments given (the tower's
            ``**arch``); None counts as not given.
        hf_config (str, optional): Local HF directory or ``config.json``.
        keys (Sequence[str]): The tower's architecture arguments (names in
            :data:`BERT_BASE_ARCH`). Defaults to all.

    Returns:
        dict: A value for each of ``keys``.
    """
    unknown = sorted(set(arch) - set(keys))
    if unknown:
        raise TypeError(f'{owner}: unexpected arguments {unknown}; the '
                        f'architecture arguments are {list(keys)}')
    return resolve_arch({k: arch.get(k)
                         for k in keys}, hf_config, BERT_BASE_ARCH)


def text_embedding(arch: dict) -> TextEmbedding:
    """The :class:`TextEmbedding` of a resolved text architecture."""
    return TextEmbedding(arch['vocab_size'], arch['embed_dims'],
                         arch['max_positions'], arch['type_vocab_size'],
                         arch['pad_token_id'], arch['position_style'],
                         arch['layer_norm_eps'], arch['dropout'])


class BertTower(BaseModule):
    """What the BERT-style towers share: loading ``pretrained`` weights
    once, after ``init_cfg``, and renaming the keys of checkpoints saved
    before the towers were built on :class:`TransformerStack`.

    Args:
        pretrained (str, optional): Weights that :meth:`load_pretrained`
            reads at the first :meth:`init_weights`.
        init_cfg (dict, optional): mmengine initialisation config.
    """
    legacy_key_rules = TEXT_137E521

    def __init__(self,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.pretrained = pretrained
        self.register_load_state_dict_pre_hook(upgrade_legacy_keys)

    def init_weights(self) -> None:
        """Apply ``init_cfg``, then load ``pretrained`` if given."""
        first_time = not self._is_init
        super().init_weights()
        if self.pretrained is not None and first_time:
            self.load_pretrained(self.pretrained)

    def load_pretrained(self, path: str) -> None:
        """Load ``path`` (see the subclass)."""
        raise NotImplementedError(
            f'{type(self).__name__} loads no pretrained weights')


@MODELS.register_module()
class TextEncoder(BertTower):
    """BERT / RoBERTa-compatible text encoder returning last hidden states.

    :class:`TextEmbedding` + :class:`TransformerStack` (``transformer``).
    Post-norm BERT layers by default; ``norm_first=True, final_norm=True``
    gives the pre-LN encoder of FLAVA.

    Architecture arguments left out come from ``hf_config`` when given,
    otherwise from BERT-base (:data:`BERT_BASE_ARCH`). When ``pretrained``
    is a HF directory with a ``config.json`` and ``hf_config`` is None,
    that config is used, so ``TextEncoder(pretrained='<hf dir>')`` rebuilds
    the published model.

    Args:
        norm_first (bool): Pre-norm layers. Defaults to False.
        final_norm (bool): A LayerNorm after the last layer. Defaults to
            False.
        with_cp (bool): Activation checkpointing per layer in training.
            Defaults to False.
        hf_config (str, optional): Local HF directory or ``config.json``
            (``model_type`` bert / roberta / xlm-roberta).
        pretrained (str, optional): Local HF directory or weights file,
            loaded strictly by :meth:`init_weights`; HF pooler and LM-head
            keys are skipped and logged.
        init_cfg (dict, optional): mmengine initialisation config.
        **arch: Architecture arguments:

            - ``vocab_size`` (int): Vocabulary size.
            - ``embed_dims`` (int): Hidden width.
            - ``num_layers`` (int): Number of layers.
            - ``num_heads`` (int): Attention heads.
            - ``feedforward_channels`` (int): FFN hidden width.
            - ``max_positions`` (int): Rows of the position table.
            - ``type_vocab_size`` (int): Rows of the token-type table.
            - ``pad_token_id`` (int): Padding token id.
            - ``position_style`` (str): ``'bert'`` or ``'roberta'``, see
              :class:`TextEmbedding`.
            - ``layer_norm_eps`` (float): LayerNorm epsilon.
            - ``dropout`` (float): Hidden dropout.
            - ``attn_dropout`` (float): Attention-probability dropout.
    """

    def __init__(self,
                 norm_first: bool = False,
                 final_norm: bool = False,
                 with_cp: bool = False,
                 hf_config: Optional[str] = None,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None,
                 **arch):
        if pretrained is not None:
            pretrained = resolve_path(pretrained)
            if not osp.exists(pretrained):
                # Checked here: without it the BERT-base defaults would be
                # built and fail later with unrelated shape errors.
                raise FileNotFoundError(
                    f'{type(self).__name__}: pretrained={pretrained!r} does '
                    'not exist (a HF model folder or a weights file)')
        super().__init__(pretrained, init_cfg=init_cfg)
        if (hf_config is None and pretrained is not None
                and osp.isfile(osp.join(pretrained, 'config.json'))):
            hf_config = pretrained
        arch = bert_arch(type(self).__name__, arch, hf_config)
        self.arch = arch
        self.embed_dims = arch['embed_dims']
        self.embeddings = text_embedding(arch)
        self.transformer = self._build_stack(arch, norm_first, final_norm,
                                             with_cp)
        self.apply(init_bert_weights)

    #: One past the last layer :meth:`forward` runs (None: all); a subclass
    #: with layers after the text layers sets it.
    text_layers_end: Optional[int] = None

    def _build_stack(self, arch: dict, norm_first: bool, final_norm: bool,
                     with_cp: bool) -> TransformerStack:
        """The stack of ``arch['num_layers']`` text layers (a subclass may
        add layers, e.g. X2-VLM's cross-attending ones)."""
        return bert_stack(
            arch, norm_first=norm_first, final_norm=final_norm,
            with_cp=with_cp)

    @property
    def word_embeddings(self) -> nn.Embedding:
        """The word embedding table (an MLM decoder may tie to it)."""
        return self.embeddings.word_embeddings

    def load_pretrained(self, path: str) -> None:
        """Load HF BERT / RoBERTa encoder weights strictly.

        Args:
            path (str): Local HF directory or weights file. Keys may carry
                the ``bert.`` / ``roberta.`` prefix.
        """
        name = type(self).__name__
        state, ignored = convert_hf_text_encoder(load_state_dict_file(path))
        try:
            missing, unexpected = self.load_state_dict(state, strict=False)
        except RuntimeError as e:
            raise RuntimeError(f'{name}: loading {path!r}: {e}') from e
        check_load_result(name, path, missing, unexpected)
        if ignored:
            print_log(
                f'{name}: loaded {path}; skipped {len(ignored)} non-encoder '
                f'keys: {", ".join(sorted(ignored))}',
                logger='current')

    def forward(self,
                input_ids: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None,
                inputs_embeds: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.Tensor] = None,
                keep_padding: bool = False) -> torch.Tensor:
        """Encode a batch of token sequences.

        Args:
            input_ids (Tensor, optional): ``(B, L)`` token ids.
            attention_mask (Tensor, optional): ``(B, L)``, 1 = real token.
                None attends to every token.
            inputs_embeds (Tensor, optional): ``(B, L, D)`` word embeddings
                used instead of ``input_ids`` (positions and token types are
                still added).
            token_type_ids (Tensor, optional): ``(B, L)``; zeros if None.
            keep_padding (bool): Run the padded layout and return the states
                of the padding positions too, as HF does, for a reader of
                them (upstream VQA ranks answers attending to the question
                padding). Defaults to False.

        Returns:
            Tensor: ``(B, L, D)`` last hidden states; zeros at padding
            when the batch is padded and ``keep_padding`` is False (the
            layers then run on the real tokens only,
            :class:`TokenPacking`).
        """
        x = self.embeddings(input_ids, attention_mask, inputs_embeds,
                            token_type_ids)
        bias = None if attention_mask is None else mask_to_bias(
            attention_mask, x)
        return run_on_real_tokens(
            lambda h, **kw: self.transformer(
                h, bias, end=self.text_layers_end, **kw), x, attention_mask,
            keep_padding)
