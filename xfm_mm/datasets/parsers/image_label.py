# Copyright (c) xfm_mm contributors. All rights reserved.
"""Images with a class label: the unpaired labelled images of the unified
transformer (arXiv 2112.07074) and of any supervised image stream."""
from typing import Optional

from xfm_mm.registry import RECORD_PARSERS
from ..readers import BadRecordError
from .image import ImageParser


@RECORD_PARSERS.register_module()
class ImageLabelParser(ImageParser):
    """``{image: path | binary: base64, label: int}`` -> ``gt_label``.

    Args:
        label_key (str): The label field. Defaults to ``'label'``.
        num_classes (int, optional): Labels must be in
            ``[0, num_classes)``; None only checks they are >= 0.
        **kwargs: ``image_key``, ``image_format``, ``image_id_key`` and
            ``source`` (default ``'image'``) of :class:`ImageParser`.
    """

    def __init__(self,
                 label_key: str = 'label',
                 num_classes: Optional[int] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.label_key = label_key
        self.num_classes = num_classes

    def parse(self, record: dict) -> dict:
        """Validate a record; see :class:`RecordParser`."""
        info = super().parse(record)
        label = record.get(self.label_key)
        if isinstance(label, bool) or not isinstance(label, int) or \
                label < 0 or (self.num_classes is not None
                              and label >= self.num_classes):
            raise BadRecordError(
                'bad_label', f'{self.label_key!r} {label!r} is not a class '
                f'index below {self.num_classes}')
        return dict(info, label=label)

    def load(self, info: dict) -> dict:
        """Decode; see :class:`RecordParser`."""
        return dict(super().load(info), gt_label=info['label'])
