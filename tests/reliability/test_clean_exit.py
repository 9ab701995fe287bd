# Copyright (c) xfm_mm contributors. All rights reserved.
"""A finished distributed run frees its process group before Python exits.

A gloo thread still alive while the interpreter finalizes can abort a run
that has finished training (see ``xfm_mm.utils.shutdown_distributed``).
``train_on_ranks`` ends each rank as tools/train.py does: it drops the
runner and calls ``shutdown_distributed``; after that, no thread the
process group started may be left.
"""
import os.path as osp

import pytest
from faults import DATA, train_on_ranks

TOY_CONFIG = osp.join(DATA, 'configs', 'toy_train.py')


@pytest.mark.skipif(
    not osp.isdir('/proc/self/task'), reason='counts threads in /proc')
def test_no_process_group_thread_outlives_shutdown(tmp_path):
    ranks = train_on_ranks(TOY_CONFIG, str(tmp_path / 'work'),
                           str(tmp_path / 'out'))
    for rank in ranks:
        assert 'error' not in rank, rank.get('traceback')
        assert len(rank['weights']) == 6  # it trained
        assert rank['threads_at_end'] == rank['threads_at_start'], rank
