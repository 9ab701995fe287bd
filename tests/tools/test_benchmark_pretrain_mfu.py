# Copyright (c) xfm_mm contributors. All rights reserved.
"""tools/analysis/benchmark_pretrain.py: the GPU peak table is matched on
device names, and the MFU column is achieved FLOP/s over the peak, per
source and for the whole iteration (a tiny CPU run with --peak-tflops; no
timing is asserted)."""
import argparse
import os.path as osp
import sys

import pytest
import torch

from tool_loader import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.parametrize(
    'name,dtype,expected',
    [
        ('NVIDIA H100 80GB HBM3', 'bf16', ('H100 SXM', 989)),
        ('NVIDIA H100 PCIe', 'bf16', ('H100 PCIe', 756)),
        ('NVIDIA H100 PCIe', 'tf32', ('H100 PCIe', 378)),
        ('NVIDIA H100 NVL', 'bf16', None),
        ('NVIDIA H200', 'bf16', ('H200 SXM', 989)),
        ('NVIDIA H200 NVL', 'bf16', None),
        ('NVIDIA A100-SXM4-80GB', 'bf16', ('A100', 312)),
        ('NVIDIA A100-PCIE-40GB', 'tf32', ('A100', 156)),
        ('NVIDIA A100 80GB PCIe', 'fp32', ('A100', 19.5)),
        ('NVIDIA A10', 'bf16', ('A10', 125)),
        ('NVIDIA A10G', 'bf16', None),
        ('NVIDIA L40S', 'fp16', ('L40S', 362)),
        ('Tesla V100-SXM2-16GB', 'fp16', ('V100 SXM2', 125)),
        ('Tesla V100-PCIE-32GB', 'fp16', ('V100 PCIe', 112)),
        ('Tesla V100-SXM2-16GB', 'bf16', None),  # no bf16 tensor cores
        ('NVIDIA GeForce RTX 4090', 'bf16', ('RTX 4090', 165)),
        ('NVIDIA GeForce RTX 3090', 'bf16', None),
    ])
def test_peak_table_matches_device_names(name, dtype, expected):
    tool = load_tool('analysis/benchmark_pretrain.py')
    assert tool.match_peak(name, dtype) == expected


def test_peak_on_cpu_needs_the_option():
    tool = load_tool('analysis/benchmark_pretrain.py')
    cpu = torch.device('cpu')
    args = argparse.Namespace(amp=False, amp_dtype=None, peak_tflops=None)
    assert tool.peak_for(args, cpu) == (None, 'MFU: give --peak-tflops on CPU')
    args = argparse.Namespace(amp=True, amp_dtype=None, peak_tflops=2.0)
    peak, note = tool.peak_for(args, cpu)
    assert peak == 2.0 and '(bf16, --peak-tflops)' in note
    assert tool.mfu(3e12, 2.0, 2.0) == '75.0'
    assert tool.mfu(3e12, 2.0, None) == '-'


def test_tiny_run_prints_mfu(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, osp.join(REPO, 'tests', 'helpers'))
    from demo_data import DEMO_CONFIG, prepare_small_demo, small_demo_options
    root = prepare_small_demo(str(tmp_path / 'demo'))
    options = small_demo_options(root)
    options.pop('default_hooks.logger.interval')
    for source in ('text', 'region'):  # None disables a source
        options = {
            k: v
            for k, v in options.items()
            if not k.startswith(f'train_dataloader.{source}.')
        }
        options[f'train_dataloader.{source}'] = None
    peak = 0.05
    monkeypatch.setattr(sys, 'argv', [
        'benchmark_pretrain.py', DEMO_CONFIG, '--iters', '1', '--warmup', '0',
        '--peak-tflops',
        str(peak), '--cfg-options',
        "train_cfg.schedule=[['image_text'],['image']]"
    ] + [f'{k}={v}' for k, v in options.items()])
    load_tool('analysis/benchmark_pretrain.py').main()
    lines = capsys.readouterr().out.splitlines()
    assert 'peak: 0.05 TFLOP/s (fp32, --peak-tflops)' in lines
    rows = {x.split()[0]: x.split()[1:] for x in lines if x.strip()}
    total_gflop = 0.
    for source in ('image_text', 'image', 'total'):
        gflop, tflops, mfu = (float(v) for v in rows[source][3:6])
        assert gflop > 0
        # MFU % = achieved TFLOP/s / peak, up to the printed rounding
        assert abs(mfu - 100 * tflops / peak) <= 0.05 + 0.05 / peak + 1e-6
        total_gflop += gflop if source != 'total' else 0
    assert abs(float(rows['total'][3]) - total_gflop) < 0.02
