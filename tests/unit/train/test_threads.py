"""`train.threads: auto` depends on the model and batch only."""

from __future__ import annotations

import pytest
import torch

from canonml.model_io import ModelIO
from canonml.models import build_model
from canonml.spec.model import CNNSpec, MLPSpec
from canonml.train.threads import HEAVY_BATCH_MACS, _traced_macs, choose_threads, forward_macs


def test_forward_macs_counts_linear_layers() -> None:
    model = build_model(MLPSpec(hidden=[128]), ModelIO((64,), 10))
    assert forward_macs(model, torch.zeros(1, 64)) == 64 * 128 + 128 * 10


def test_small_models_get_one_thread_and_big_ones_more() -> None:
    small = build_model(MLPSpec(hidden=[128]), ModelIO((64,), 10))
    assert choose_threads("auto", small, (torch.zeros(1, 64),), 32) == 1
    big = build_model(CNNSpec(channels=[64, 128, 256]), ModelIO((3, 32, 32), 10))
    macs = forward_macs(big, torch.zeros(1, 3, 32, 32))
    assert macs * 256 > HEAVY_BATCH_MACS
    assert choose_threads("auto", big, (torch.zeros(1, 3, 32, 32),), 256) >= 1
    assert choose_threads(3, small, (torch.zeros(1, 64),), 32) == 3


class _Custom(torch.nn.Module):
    """A module the hooks do not know: its matmul is only visible to the operator counter."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(6, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w


@pytest.mark.parametrize(
    ("model", "shape"),
    [
        (
            build_model(
                MLPSpec(hidden=[32, 16], batch_norm=True, dropout=0.1), ModelIO((1, 8, 8), 10)
            ),
            (1, 8, 8),
        ),
        (
            build_model(CNNSpec(channels=[8, 16], batch_norm=True), ModelIO((1, 8, 8), 10)),
            (1, 8, 8),
        ),
        (build_model(CNNSpec(channels=[4], pool="avg"), ModelIO((3, 12, 10), 2)), (3, 12, 10)),
        (
            torch.nn.Sequential(
                torch.nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1),
                torch.nn.Conv2d(8, 4, 3, groups=2, padding=1),
                torch.nn.Flatten(),
                torch.nn.Linear(784, 3),
            ),
            (16, 7, 7),
        ),
        (torch.nn.Sequential(torch.nn.Linear(4, 6), _Custom()), (3, 4)),
    ],
)
def test_hook_count_equals_the_operator_count(
    model: torch.nn.Module, shape: tuple[int, ...]
) -> None:
    sample = torch.zeros(1, *shape)
    assert forward_macs(model, sample) == _traced_macs(model, sample) > 0
