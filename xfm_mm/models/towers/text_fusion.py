# Copyright (c) xfm_mm contributors. All rights reserved.
"""X2-VLM's text and fusion encoders: one BERT whose last layers
cross-attend (Zeng et al., arXiv 2211.12402, Sec. 3.1; upstream
zengyan-97/X2-VLM ``models/xvlm.py`` ``build_text_encoder`` and
``models/xbert.py``, ``text_num_hidden_layers: 18``,
``text_fusion_start_at: 12``)."""
from types import SimpleNamespace
from typing import Optional, Sequence

import torch
from mmengine.logging import print_log

from xfm_mm.registry import MODELS
from ..layers import TransformerStack
from ..weights import (check_load_result, convert_hf_text_encoder,
                       load_state_dict_file)
from ..weights.hf_bert import STACK_LAYERS
from .fusion import run_fusion
from .text import TextEncoder, bert_stack


class StackFusion:
    """The cross-attending layers of a :class:`TextFusionEncoder`, called
    like a :class:`FusionEncoder` (``fusion(text, text_mask, vision,
    vision_mask)``).

    Not a module: the layers stay parameters of the tower only, so the
    state dict has one name per tensor.

    Args:
        tower (TextFusionEncoder): The tower.
    """

    def __init__(self, tower: 'TextFusionEncoder'):
        self.tower = tower

    @property
    def embed_dims(self) -> int:
        """Width of the text states."""
        return self.tower.embed_dims

    @property
    def vision_dims(self) -> int:
        """Width of the vision tokens."""
        return self.tower.vision_dims

    @property
    def num_layers(self) -> int:
        """Number of cross-attending layers."""
        return self.tower.num_fusion_layers

    @property
    def transformer(self) -> SimpleNamespace:
        """``layers``: the fusion layers (a ``ModuleList`` sharing the
        tower's parameters), as a :class:`FusionEncoder`'s ``transformer``
        (e.g. to initialise a decoder from them)."""
        return SimpleNamespace(
            layers=self.tower.transformer.layers[self.tower.num_text_layers:])

    def __call__(self, *args, **kwargs) -> torch.Tensor:
        return self.tower.fuse(*args, **kwargs)

    def cross_kv(self, vision_embeds: torch.Tensor) -> list:
        """The fusion layers' cross-attention keys and values of vision
        tokens, for ``cross_kv`` (see :meth:`FusionEncoder.cross_kv`)."""
        return self.tower.transformer.cross_kv(
            vision_embeds, start=self.tower.num_text_layers)


@MODELS.register_module()
class TextFusionEncoder(TextEncoder):
    """A BERT of ``num_layers`` text layers followed by
    ``num_fusion_layers`` layers that cross-attend to vision tokens, all in
    one :class:`TransformerStack` (``transformer``).

    ``forward`` (:meth:`TextEncoder.forward`) runs the text layers
    (upstream ``mode='text'``, used by
    ITC and as the input of fusion), :meth:`fuse` the fusion layers
    (``mode='fusion'``); running both is upstream's ``mode='multi_modal'``
    (masked LM through all layers). Layer order in the fusion layers:
    self-attention, cross-attention, FFN, each post-norm.

    :meth:`load_pretrained` loads a HF BERT into the text layers and copies
    its layers ``fusion_init_layers`` (default: the last
    ``num_fusion_layers``, BERT layers 6-11) into the fusion layers; the
    cross-attention stays randomly initialised (upstream ``do_expand=True``
    and ``init_params``, trained at 2x lr). A checkpoint that already has
    the fusion layers (with cross-attention) loads as is.

    Args:
        num_fusion_layers (int): Cross-attending layers after the text
            layers. Defaults to 6.
        vision_dims (int, optional): Width of the vision tokens. Defaults
            to ``embed_dims``.
        fusion_init_layers (Sequence[int], optional): Source text layers
            of the fusion layers when loading a text-only checkpoint.
        **kwargs: :class:`TextEncoder` arguments; ``num_layers`` counts the
            text layers only.
    """

    def __init__(self,
                 num_fusion_layers: int = 6,
                 vision_dims: Optional[int] = None,
                 fusion_init_layers: Optional[Sequence[int]] = None,
                 **kwargs):
        # Read by _build_stack, which TextEncoder.__init__ calls.
        self.num_fusion_layers = int(num_fusion_layers)
        self._vision_dims = vision_dims
        super().__init__(**kwargs)
        self.num_text_layers = self.arch['num_layers']
        self.text_layers_end = self.num_text_layers  # forward: text only
        self.vision_dims = vision_dims or self.embed_dims
        if fusion_init_layers is None:
            fusion_init_layers = range(
                self.num_text_layers - self.num_fusion_layers,
                self.num_text_layers)
        self.fusion_init_layers = [int(i) for i in fusion_init_layers]
        if len(self.fusion_init_layers) != self.num_fusion_layers or any(
                not 0 <= i < self.num_text_layers
                for i in self.fusion_init_layers):
            raise ValueError(
                f'{type(self).__name__}: fusion_init_layers '
                f'{self.fusion_init_layers} must name {num_fusion_layers} '
                f'of the {self.num_text_layers} text layers')
        self.fusion = StackFusion(self)

    def _build_stack(self, arch: dict, norm_first: bool, final_norm: bool,
                     with_cp: bool) -> TransformerStack:
        num_text = arch['num_layers']
        return bert_stack(
            dict(arch, num_layers=num_text + self.num_fusion_layers),
            cross_attn_dims=self._vision_dims or arch['embed_dims'],
            norm_first=norm_first,
            final_norm=final_norm,
            with_cp=with_cp,
            cross_attn_layers=range(num_text,
                                    num_text + self.num_fusion_layers))

    def load_pretrained(self, path: str) -> None:
        """Load HF BERT weights: text layers as they are, fusion layers
        copied from ``fusion_init_layers`` unless the file has them.

        Args:
            path (str): Local HF directory or weights file.
        """
        name = type(self).__name__
        state, ignored = convert_hf_text_encoder(load_state_dict_file(path))
        copied = []
        for dst, src in enumerate(self.fusion_init_layers,
                                  self.num_text_layers):
            dst_prefix = f'{STACK_LAYERS}{dst}.'
            if any(k.startswith(dst_prefix) for k in state):
                continue
            src_prefix = f'{STACK_LAYERS}{src}.'
            state.update((dst_prefix + k[len(src_prefix):], v)
                         for k, v in list(state.items())
                         if k.startswith(src_prefix))
            copied.append(f'{src}->{dst}')
        try:
            missing, unexpected = self.load_state_dict(state, strict=False)
        except RuntimeError as e:
            raise RuntimeError(f'{name}: loading {path!r}: {e}') from e
        new = [k for k in missing if '.cross_attn' in k] if copied else []
        check_load_result(name, path, set(missing) - set(new), unexpected)
        print_log(
            f'{name}: loaded {path}; layers copied {", ".join(copied)}; '
            f'{len(new)} cross-attention tensors keep their random init; '
            f'skipped {len(ignored)} non-encoder keys',
            logger='current')

    def fuse(self,
             text_embeds: torch.Tensor,
             text_mask: Optional[torch.Tensor],
             vision_embeds: Optional[torch.Tensor],
             vision_mask: Optional[torch.Tensor] = None,
             cross_kv: Optional[list] = None,
             keep_padding: bool = False) -> torch.Tensor:
        """Run the fusion layers on text states; arguments and result as
        :meth:`FusionEncoder.forward`."""
        return run_fusion(
            self.transformer,
            type(self).__name__,
            self.vision_dims,
            text_embeds,
            text_mask,
            vision_embeds,
            vision_mask,
            start=self.num_text_layers,
            cross_kv=cross_kv,
            keep_padding=keep_padding)
