"""Membership-inference attack statistics: AUC and its interval, TPR at low FPR, the DP
bound, and float64 scores that do not tie on confident points."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from canonml.data.prepare import Split
from canonml.evaluate.audit import _scores, attack, dp_bound


def test_separated_scores_give_auc_1_and_mixed_ones_chance() -> None:
    member = np.r_[np.ones(100), np.zeros(100)]
    perfect = attack(np.r_[np.full(100, 2.0), np.full(100, 1.0)] + 0, member, 100, 0)
    assert perfect["auc"] == 1.0 and not perfect["chance"]
    assert perfect["tpr_at_fpr"]["0.01"] == 1.0 and perfect["advantage"] == 1.0
    noise = np.random.default_rng(0).normal(size=200)
    guess = attack(noise, member, 200, 0)
    low, high = guess["auc_interval"]
    assert low < 0.5 < high and guess["chance"] and abs(guess["auc"] - 0.5) < 0.1


def test_the_dp_bound_is_e_to_the_epsilon_times_fpr_plus_delta() -> None:
    bound = dp_bound(1.0, 1e-5)
    assert bound["tpr_at_fpr"]["0.01"] == pytest.approx(math.e * 0.01 + 1e-5)
    assert bound["advantage"] == pytest.approx((math.e - 1 + 2e-5) / (math.e + 1))
    assert dp_bound(50.0, 1e-5)["tpr_at_fpr"]["0.001"] == 1.0


def test_scores_are_float64_so_confident_points_do_not_tie() -> None:
    model = torch.nn.Linear(1, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[40.0], [-40.0]]))
        model.bias.zero_()
    x = np.array([[1.0], [1.1], [0.9], [1.2]], dtype=np.float32)
    y = np.zeros(4, dtype=np.int64)
    data = SimpleNamespace(
        train=Split(x[:2], y[:2]), test=Split(x[2:], y[2:]), label_names=["a", "b"]
    )
    scores = _scores(model, data, np.array([0, 1]), np.array([0, 1]))  # type: ignore[arg-type]
    assert scores["loss"].dtype == np.float64 and len(set(scores["loss"].tolist())) == 4
    float32 = torch.log_softmax(model(torch.from_numpy(x)), dim=1)[:, 0]
    assert len(set(float32.tolist())) < 4  # what float32 would have given: ties at 0
