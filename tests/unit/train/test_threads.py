"""`train.threads: auto` depends on the model and batch only."""

from __future__ import annotations

import torch

from canonml.models import build_model
from canonml.spec.model import CNNSpec, MLPSpec
from canonml.train.threads import HEAVY_BATCH_MACS, choose_threads, forward_macs


def test_forward_macs_counts_linear_layers() -> None:
    model = build_model(MLPSpec(hidden=[128]), (64,), 10)
    assert forward_macs(model, torch.zeros(1, 64)) == 64 * 128 + 128 * 10


def test_small_models_get_one_thread_and_big_ones_more() -> None:
    small = build_model(MLPSpec(hidden=[128]), (64,), 10)
    assert choose_threads("auto", small, torch.zeros(1, 64), 32) == 1
    big = build_model(CNNSpec(channels=[64, 128, 256]), (3, 32, 32), 10)
    macs = forward_macs(big, torch.zeros(1, 3, 32, 32))
    assert macs * 256 > HEAVY_BATCH_MACS
    assert choose_threads("auto", big, torch.zeros(1, 3, 32, 32), 256) >= 1
    assert choose_threads(3, small, torch.zeros(1, 64), 32) == 3
