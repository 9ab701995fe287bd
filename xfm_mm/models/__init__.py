# Copyright (c) xfm_mm contributors. All rights reserved.
from .backbones import *  # noqa: F401,F403
from .downstream import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .pretrainers import *  # noqa: F401,F403
from .towers import *  # noqa: F401,F403
from .base import BaseMultimodalModel  # noqa: F401
from .data_preprocessor import MultiSourceDataPreprocessor  # noqa: F401
from .tokenizers import HFTokenizer, build_tokenizer  # noqa: F401
