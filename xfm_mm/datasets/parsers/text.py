# Copyright (c) xfm_mm contributors. All rights reserved.
"""Parser of text-only records."""
from typing import Optional

from xfm_mm.registry import RECORD_PARSERS
from ..readers import BadRecordError
from .base import RecordParser, choice, texts_of


@RECORD_PARSERS.register_module()
class TextParser(RecordParser):
    """Text-only records: ``{desc: str | [str]}``; ``load`` gives ``text``
    (one of a list, stripped) and ``source``.

    Args:
        text_key (str): The text field. Defaults to ``'desc'``.
        source (str, optional): Defaults to ``'text'``.
    """

    source = 'text'

    def __init__(self,
                 text_key: str = 'desc',
                 source: Optional[str] = None) -> None:
        super().__init__(source)
        self.text_key = text_key

    def parse(self, record: dict) -> dict:
        """Validate a record; see :class:`RecordParser`."""
        if self.text_key not in record:
            raise BadRecordError('missing_field', f'no {self.text_key!r}')
        texts = texts_of(record[self.text_key], self.text_key)
        if not texts:
            raise BadRecordError('empty_caption', f'{self.text_key!r}')
        return dict(texts=texts)

    def load(self, info: dict) -> dict:
        """Choose the text; see :class:`RecordParser`."""
        return dict(text=choice(info['texts']).strip(), source=self.source)
