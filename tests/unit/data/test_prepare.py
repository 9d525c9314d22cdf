"""Split, preprocessing of images, de-duplication, target encoding and augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from canonml.data.augment import make_augment
from canonml.data.dataset import Dataset
from canonml.data.prepare import prepare
from canonml.data.preprocess import apply_preprocess, fit_preprocess
from canonml.data.split import split_indices
from canonml.errors import DataError
from canonml.spec import load_spec
from canonml.spec.data import AugmentSpec, PreprocessSpec, SplitSpec
from canonml.tasks import get_task
from canonml.tasks.regression import unscale
from tests.conftest import tiny_spec


def test_split_is_seeded_stratified_and_disjoint() -> None:
    y = np.repeat([0, 1, 2], [50, 30, 20])
    tr, va, te = split_indices(100, y, SplitSpec(val=0.1, test=0.2), seed=0, has_test=False)
    assert (len(tr), len(va), len(te)) == (70, 10, 20)
    assert not (set(tr) & set(va) or set(tr) & set(te) or set(va) & set(te))
    assert np.bincount(y[te]).tolist() == [10, 6, 4]  # class balance kept
    again = split_indices(100, y, SplitSpec(val=0.1, test=0.2), seed=0, has_test=False)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again, strict=True))
    other = split_indices(100, y, SplitSpec(val=0.1, test=0.2), seed=1, has_test=False)
    assert not np.array_equal(te, other[2])


def test_official_test_split_only_cuts_val() -> None:
    tr, va, te = split_indices(50, None, SplitSpec(val=0.2, test=0.3), seed=0, has_test=True)
    assert (len(tr), len(va), len(te)) == (40, 10, 0)


@pytest.mark.parametrize(
    ("n", "y", "message"),
    [
        (0, None, "empty data set"),
        (3, None, "data.split.val: val fraction 0.1 of 3 examples"),
        (20, np.array([0] * 18 + [1, 1]), "class 1 has 2 example(s)"),
    ],
)
def test_impossible_splits_are_clear_errors(n: int, y: np.ndarray | None, message: str) -> None:
    with pytest.raises(DataError) as info:
        split_indices(n, y, SplitSpec(), seed=0, has_test=False)
    assert message in str(info.value)


def test_image_scaling_is_per_channel_from_train() -> None:
    x = np.stack([np.full((2, 2), 10.0), np.full((2, 2), 200.0)])[None].repeat(4, 0)
    x[:, 0] += np.arange(4).reshape(4, 1, 1)  # channel 0: 10..13
    data = Dataset(
        x=x.astype(np.float32),
        y=np.zeros(4, np.int64),
        kind="image",
        feature_names=[],
        pixel_max=255.0,
    )
    state = fit_preprocess(data, PreprocessSpec(scale="minmax"))
    assert state["shift"] == [10.0, 200.0] and state["scale"] == [3.0, 1.0]
    out, _ = apply_preprocess(state, data)
    assert out[:, 0].min() == 0.0 and out[:, 0].max() == 1.0


def test_dedupe_removes_repeated_rows_before_the_split() -> None:
    spec = load_spec(tiny_spec(data={"source": "sklearn:iris", "preprocess": {"dedupe": True}}))
    data, _ = prepare(spec, get_task(spec))
    assert data.info["duplicates_removed"] == 1  # iris has one exact duplicate row
    assert len(data.train) + len(data.val) + len(data.test) == 149


def test_string_labels_sort_numerically_then_alphabetically() -> None:
    data = Dataset(
        x=np.zeros((4, 1)),
        y=np.array(["10", "2", "b", "a"], dtype=object),
        kind="tabular",
        feature_names=["f"],
    )
    out = get_task("classification").encode_targets(data)
    assert out.label_names == ["2", "10", "a", "b"]
    assert out.y.tolist() == [1, 0, 3, 2]


def test_continuous_target_for_classification_is_an_error() -> None:
    data = Dataset(x=np.zeros((2, 1)), y=np.array([0.5, 1.2]), kind="tabular", feature_names=["f"])
    with pytest.raises(DataError, match="task: the target is continuous"):
        get_task("classification").encode_targets(data)


def test_regression_target_must_be_numbers() -> None:
    data = Dataset(
        x=np.zeros((2, 1)),
        y=np.array(["1.5", "high"], dtype=object),
        kind="tabular",
        feature_names=["f"],
    )
    with pytest.raises(DataError, match="data.target: target value 'high' is not a number"):
        get_task("regression").encode_targets(data)


def test_shift_moves_pixels_by_whole_steps_and_fills_background() -> None:
    x = torch.zeros(64, 1, 5, 5)
    x[:, 0, 2, 2] = 1.0
    aug = make_augment(AugmentSpec(shift=1), torch.tensor([-0.5]), torch.Generator().manual_seed(0))
    out = aug(x - 0.5)  # background is -0.5 after "preprocessing"
    assert set(out.unique().tolist()) == {-0.5, 0.5}
    centres = {tuple(torch.nonzero(o[0] == 0.5)[0].tolist()) for o in out}
    assert centres <= {(r, c) for r in (1, 2, 3) for c in (1, 2, 3)} and len(centres) > 3


def test_augment_is_seeded_and_noise_flip_rotate_change_batches() -> None:
    x = torch.rand(8, 3, 6, 6)
    spec = AugmentSpec(rotate=15, noise=0.1, flip=True)
    a = make_augment(spec, torch.zeros(3), torch.Generator().manual_seed(1))(x)
    b = make_augment(spec, torch.zeros(3), torch.Generator().manual_seed(1))(x)
    assert torch.equal(a, b) and not torch.equal(a, x) and a.shape == x.shape


def test_regression_target_is_standardised_and_mapped_back() -> None:
    spec = load_spec(tiny_spec(task="regression", data={"source": "sklearn:diabetes"}))
    data, _ = prepare(spec, get_task(spec))
    assert abs(float(data.train.y.mean())) < 1e-5 and abs(float(data.train.y.std()) - 1) < 1e-4
    raw = unscale(data.test.y, data.preprocess["target"])
    assert 25 <= raw.min() and raw.max() <= 346  # diabetes targets in their own units
    assert data.preprocess["target"]["scale"] > 1
