"""The explain stage's parts on small hand-made models: every Captum method on tables and
images, integrated gradients' completeness, and both checks telling a faithful attribution
from a meaningless one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from canonml.evaluate.explain import (
    attribute,
    class_probabilities,
    deletion_steps,
    deletion_test,
    pick_examples,
    randomisation_check,
    reinitialised,
)
from canonml.spec.explain import METHODS, ExplainSpec


def linear(weights: list[float]) -> nn.Module:
    """Two classes: class 1's score is w · x, class 0's is 0."""
    layer = nn.Linear(len(weights), 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.0] * len(weights), weights]))
    return layer


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(5,), (1, 6, 6)])
def test_every_method_gives_one_attribution_per_input(method: str, shape: tuple) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(shape)), 3))
    x = np.random.default_rng(0).normal(size=(4, *shape)).astype(np.float32)
    cfg = ExplainSpec(method=method, steps=8)
    base = np.zeros((1, *shape), np.float32)
    a, delta = attribute(model, x, np.array([0, 1, 2, 0]), cfg, base, seed=3)
    assert a.shape == x.shape and np.isfinite(a).all() and np.abs(a).sum() > 0
    assert (delta is not None) == (method == "integrated_gradients")
    again, _ = attribute(model, x, np.array([0, 1, 2, 0]), cfg, base, seed=3)
    np.testing.assert_array_equal(a, again)  # seeded: gradient SHAP draws noise


def test_integrated_gradients_add_up_to_the_change_in_probability() -> None:
    model = linear([2.0, -1.0, 0.5])
    x = np.array([[1.0, 1.0, 2.0], [0.3, -2.0, 0.0]], np.float32)
    base = np.zeros((1, 3), np.float32)
    a, delta = attribute(model, x, np.array([1, 1]), ExplainSpec(steps=256), base)
    p = class_probabilities(model, x)[:, 1]
    np.testing.assert_allclose(a.sum(axis=1), p - 0.5, atol=1e-3)
    assert np.abs(delta).max() < 1e-3


def test_the_deletion_test_tells_faithful_from_meaningless_attributions() -> None:
    weights = [3.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    model = linear(weights)
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=(60, 8))).astype(np.float32) + 0.5
    target = np.ones(60, dtype=np.int64)
    base = np.zeros((1, 8), np.float32)
    faithful = x * np.array(weights, np.float32)
    good = deletion_test(lambda v: class_probabilities(model, v), x, target, faithful, base, rng)
    assert good["holds"] and good["area_attributed"] < good["area_random"]
    assert good["share_below_random"] > 0.9 and len(good["attributed"]) == 9
    backwards = -faithful  # the least important first
    bad = deletion_test(lambda v: class_probabilities(model, v), x, target, backwards, base, rng)
    assert not bad["holds"] and bad["area_attributed"] > bad["area_random"]


def test_the_randomisation_check_fails_an_attribution_that_ignores_the_weights() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 20))
    same = randomisation_check(a, a * 2.0)  # e.g. an edge detector: the input itself
    assert same["mean_spearman"] == pytest.approx(1.0) and not same["holds"]
    other = randomisation_check(a, rng.normal(size=(50, 20)))
    assert abs(other["mean_spearman"]) < 0.15 and other["holds"]


def test_reinitialised_weights_differ_and_the_model_is_untouched() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fresh = reinitialised(model, seed=0)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert not torch.equal(fresh[0].weight, model[0].weight)
    again = reinitialised(model, seed=0)
    torch.testing.assert_close(again[0].weight, fresh[0].weight)


def test_shown_examples_are_at_most_half_wrong() -> None:
    rng = np.random.default_rng(0)
    pred = np.array([0, 1, 1, 0, 2, 2, 0, 1, 1, 1])
    y = np.array([0, 1, 0, 0, 2, 1, 1, 1, 1, 1])
    shown = pick_examples(pred, y, 6, rng)
    assert len(shown) == 6 and sum(pred[i] != y[i] for i in shown) == 3
    assert len(pick_examples(pred, pred, 4, rng)) == 4  # no wrong ones: all right


def test_deletion_steps_cover_none_to_all() -> None:
    assert list(deletion_steps(4)) == [0, 1, 2, 3, 4]
    many = deletion_steps(3072)
    assert many[0] == 0 and many[-1] == 3072 and len(many) == 33
