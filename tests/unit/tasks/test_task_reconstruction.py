"""The reconstruction task's parts: targets and anomaly rows, the steps' losses and KL
warm-up, metrics and interval, the spec's defaults and rules, the package signature."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from canonml.data.dataset import Dataset
from canonml.errors import SpecError
from canonml.evaluate.evaluate import bootstrap
from canonml.model_io import ModelIO
from canonml.models import build_model
from canonml.models.vae import kl_divergence
from canonml.package.writer import extra_signature
from canonml.spec import load_spec
from canonml.spec.model import AutoencoderSpec, VAESpec
from canonml.spec.train import TrainSpec
from canonml.tasks import get_task
from canonml.tasks.autoencoding import AutoencoderStep, KLWarmup, VAEStep
from canonml.tasks.base import Predictions
from canonml.train.loop import TrainState


def spec(**sections: Any) -> Any:
    raw: dict[str, Any] = {
        "name": "rec",
        "task": "reconstruction",
        "data": {"source": "sklearn:digits"},
        "model": {"arch": "autoencoder"},
        "track": False,
    }
    raw.update(sections)
    return load_spec(raw)


def images(labels: list[str] | None, y: list[Any]) -> Dataset:
    x = np.zeros((len(y), 1, 2, 2), dtype=np.float32)
    return Dataset(x=x, y=np.array(y), kind="image", feature_names=[], label_names=labels)


# ---- data


def test_labels_are_kept_and_a_source_without_them_gives_none() -> None:
    task = get_task("reconstruction")
    data = task.encode_targets(images(["a", "b"], [1, 0, 1]))
    assert data.y.tolist() == [1, 0, 1] and data.label_names == ["a", "b"]
    assert task.strata(data.y) is not None
    rows = Dataset(x=np.zeros((3, 2)), y=np.zeros(3), kind="tabular", feature_names=["p", "q"])
    data = task.encode_targets(rows)  # a csv without data.target
    assert data.label_names is None and data.y.tolist() == [-1, -1, -1]
    assert task.strata(data.y) is None  # a plain split
    texts = Dataset(
        x=np.zeros((3, 2)), y=np.array(["x", "y", "x"]), kind="tabular", feature_names=["p", "q"]
    )
    assert task.encode_targets(texts).label_names == ["x", "y"]  # a csv target: classes


def test_only_the_normal_classes_train_by_index_or_by_name() -> None:
    task = get_task("reconstruction")
    y = task.encode_targets(images(["cat", "dog", "emu"], [0, 1, 2, 1, 0])).y
    by_index = spec(evaluate={"anomaly": {"normal_classes": [0, 2]}})
    assert task.train_rows(by_index, y).tolist() == [True, False, True, False, True]
    by_name = spec(evaluate={"anomaly": {"normal_classes": ["dog"]}})
    assert task.train_rows(by_name, y).tolist() == [False, True, False, True, False]
    assert task.train_rows(spec(), y) is None


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        ([0, 3], r"evaluate.anomaly.normal_classes\[1\]: class index 3 is not in the data"),
        (["dog", "yak"], r"evaluate.anomaly.normal_classes\[1\]: 'yak' is not a class"),
        ([0, "dog", "emu"], r"evaluate.anomaly.normal_classes: lists all 3 classes"),
    ],
)
def test_a_normal_class_the_data_lacks_names_the_entry(classes: list[Any], message: str) -> None:
    task = get_task("reconstruction")
    y = task.encode_targets(images(["cat", "dog", "emu"], [0, 1, 2])).y
    with pytest.raises(SpecError, match=message):
        task.train_rows(spec(evaluate={"anomaly": {"normal_classes": classes}}), y)


def test_anomaly_detection_needs_labels() -> None:
    task = get_task("reconstruction")
    rows = Dataset(x=np.zeros((3, 2)), y=np.zeros(3), kind="tabular", feature_names=["p", "q"])
    y = task.encode_targets(rows).y
    with pytest.raises(SpecError, match=r"^evaluate.anomaly: .* has no class labels"):
        task.train_rows(spec(evaluate={"anomaly": {"normal_classes": [0]}}), y)


def test_prepared_digits_leave_the_anomalous_class_out_of_train_and_val() -> None:
    from canonml.data.prepare import prepare

    s = spec(evaluate={"anomaly": {"normal_classes": [0, 1, 2, 3, 4, 5, 6, 7, 8]}})
    data, _ = prepare(s, get_task(s))
    assert 9 not in data.train.y and 9 not in data.val.y
    assert (data.test.y == 9).sum() == 36  # the stratified test split keeps every class
    assert 0.0 <= data.train.x.min() and data.train.x.max() == 1.0  # minmax by default


# ---- the spec


def test_the_task_defaults_to_minmax_and_checks_the_decoder_output() -> None:
    assert spec().data.preprocess.scale == "minmax"
    linear = {"arch": "autoencoder", "output": "linear"}
    assert spec(
        model=linear, data={"source": "sklearn:digits", "preprocess": {"scale": "standard"}}
    )
    with pytest.raises(SpecError, match=r"^data.preprocess.scale: standard takes inputs outside"):
        spec(data={"source": "sklearn:digits", "preprocess": {"scale": "standard"}})
    with pytest.raises(SpecError, match=r"^train.loss: bce needs outputs in \[0, 1\]"):
        spec(model=linear, train={"loss": "bce"})
    classification = load_spec({"name": "c", "data": {"source": "sklearn:iris"}, "track": False})
    assert classification.data.preprocess.scale == "standard"  # other tasks: unchanged


# ---- steps


def test_the_autoencoder_loss_is_the_mean_over_values() -> None:
    torch.manual_seed(0)
    model = build_model(AutoencoderSpec(hidden=[8], latent=2), ModelIO((1, 4, 4)))
    x = torch.rand(5, 1, 4, 4)
    for loss in ("auto", "mse", "bce"):
        step = AutoencoderStep(model, TrainSpec(loss=loss))  # type: ignore[arg-type]
        x_hat = model(x)
        want = (
            torch.nn.functional.binary_cross_entropy(x_hat, x)
            if loss == "bce"
            else torch.nn.functional.mse_loss(x_hat, x)
        )
        assert torch.allclose(step.loss(x_hat, x), want)
    logs = AutoencoderStep(model, TrainSpec()).evaluate(x)
    assert logs["mse"] == pytest.approx(logs["loss"], rel=1e-5)


def test_the_vae_loss_sums_pixels_and_weighs_the_kl() -> None:
    torch.manual_seed(0)
    vae = VAESpec(hidden=[8], latent=2, kl_weight=0.5)
    model = build_model(vae, ModelIO((1, 4, 4))).eval()
    x = torch.rand(5, 1, 4, 4)
    out = model(x)
    x_hat, mu, logvar = out
    for loss, pixel in (
        ("auto", torch.nn.functional.binary_cross_entropy(x_hat, x, reduction="none")),
        ("mse", (x_hat - x) ** 2),
    ):
        step = VAEStep(model, TrainSpec(loss=loss), vae)  # type: ignore[arg-type]
        want = (pixel.flatten(1).sum(1) + 0.5 * kl_divergence(mu, logvar)).mean()
        assert torch.allclose(step.loss(out, x), want)


def test_the_kl_warmup_depends_only_on_the_epoch_number() -> None:
    vae = VAESpec(hidden=[8], latent=2, kl_weight=0.3, kl_warmup=3)
    model = build_model(vae, ModelIO((1, 4, 4)))
    step = VAEStep(model, TrainSpec(), vae)
    warmup = KLWarmup(step)
    weights = []
    for epoch in (0, 1, 2, 3, 7, 1):  # any order: a resumed run starts at its epoch
        warmup.on_epoch_begin(TrainState(epoch=epoch))
        weights.append(step.kl_weight)
    assert weights == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.3, 0.1])
    assert warmup.key == ""  # nothing to checkpoint


def test_the_vae_step_logs_the_epochs_terms() -> None:
    torch.manual_seed(0)
    vae = VAESpec(hidden=[8], latent=2)
    step = VAEStep(build_model(vae, ModelIO((1, 4, 4))), TrainSpec(), vae)
    x = torch.rand(6, 1, 4, 4)
    step.model.train()
    step.train_batch(x[:4])
    step.train_batch(x[4:])
    logs = step.epoch_logs()
    assert set(logs) == {"reconstruction", "kl", "kl_weight"} and logs["kl"] > 0
    assert step.epoch_logs() == {}  # reset for the next epoch


# ---- metrics


def predictions(errors: list[float], y: list[int], normal: list[bool] | None) -> Predictions:
    e = np.array(errors)
    mask = None if normal is None else np.array(normal)
    extra = {
        "errors": e,
        "normal": mask,
        "scored": mask if mask is not None else np.ones(len(e), dtype=bool),
        "pca": e * 2,
        "elbo": None,
    }
    return Predictions(np.array(y), e, None, extra)


def test_metrics_score_the_normal_examples_and_leave_out_what_does_not_apply() -> None:
    task = get_task("reconstruction")
    names = task.spec_class.metrics
    p = predictions([0.1, 0.2, 0.5, 0.4], [0, 0, 1, 1], [True, True, False, False])
    m = task.score(names, p)
    assert m == {
        "reconstruction_mse": pytest.approx(0.15),
        "anomaly_roc_auc": 1.0,
        "pca_mse": pytest.approx(0.3),
    }
    plain = task.score(names, predictions([0.1, 0.3], [0, 1], None))
    assert set(plain) == {"reconstruction_mse", "pca_mse"}  # no elbo, no anomalies
    assert task.score(("pca_mse",), p) == {"pca_mse": pytest.approx(0.3)}


def test_the_interval_is_the_bootstrap_of_the_mean_error() -> None:
    task = get_task("reconstruction")
    errors = np.random.default_rng(0).random(50)
    p = predictions(errors.tolist(), [0] * 50, None)
    got = task.interval("reconstruction_mse", p, 200, seed=3)
    # evaluate.bootstrap of MSE between sqrt(errors) and 0 resamples the same rows
    want = bootstrap("mse", np.sqrt(errors), np.zeros(50), None, 200, 3)
    assert got == pytest.approx(want)
    assert task.interval("reconstruction_mse", p, 0, seed=3) is None


def test_the_elbo_is_the_bernoulli_bound_at_weight_one() -> None:
    from canonml.tasks.autoencoding import negative_elbo

    torch.manual_seed(0)
    model = build_model(VAESpec(hidden=[8], latent=2), ModelIO((1, 4, 4))).eval()
    x = np.random.default_rng(0).random((6, 1, 4, 4)).astype(np.float32)
    got = negative_elbo(model, x, samples=2000)
    with torch.no_grad():
        mu, logvar = model.encode(torch.from_numpy(x))
        bce = torch.nn.functional.binary_cross_entropy(
            model.decode(mu), torch.from_numpy(x), reduction="none"
        )
        at_mean = (bce.flatten(1).sum(1) + kl_divergence(mu, logvar)).numpy()
    # E_q[−log p(x|z)] ≥ −log p(x|E z) is not guaranteed, but the two are close for a
    # random decoder; the bound is positive and finite, in nats per example
    assert got.shape == (6,) and np.all(np.isfinite(got)) and np.all(got > 0)
    assert np.abs(got - at_mean).max() < 0.1 * math.log(2) * 16
    assert np.array_equal(negative_elbo(model, x), negative_elbo(model, x))  # seeded


# ---- the package


def test_only_a_vae_gets_a_sampler() -> None:
    sig = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 4, 4]}],
        "kind": "image",
        "preprocessing": {"kind": "image", "shift": [0.0], "scale": [16.0]},
    }
    task = get_task("reconstruction")
    for vae, arch in (
        (False, AutoencoderSpec(hidden=[8], latent=3)),
        (True, VAESpec(hidden=[8], latent=3)),
    ):
        graphs = task.extra_graphs(build_model(arch, ModelIO((1, 4, 4))).eval(), sig)
        assert sorted(graphs) == ["decoder.onnx", "encoder.onnx"]
        entry = extra_signature(graphs)
        assert sorted(entry["graphs"]) == ["decoder.onnx", "encoder.onnx"]
        assert ("sampler" in entry) == vae
        with torch.no_grad():
            decoded = graphs["decoder.onnx"].module(torch.zeros(2, 3))
        assert (
            decoded.shape == (2, 1, 4, 4)
            and 0 <= float(decoded.min())
            and float(decoded.max()) <= 16
        )
    assert extra_signature({}) == {}
