"""``task: reconstruction`` end to end: the two templates, anomaly detection, the package's
three graphs against PyTorch, ``canon verify``, ``canon serve``, bad inputs, exact resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import canonml
from canonml.package.reader import open_package
from canonml.package.verify import verify_package
from tests.conftest import interrupted_run, run_cli
from tests.unit.serve.live import running

SHORT = ["train.epochs=2", "track=false", "evaluate.ci=100"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("reconstruction")
    return {
        name: canonml.run(f"template:{name}", root, overrides=SHORT)
        for name in ("digits-autoencoder", "digits-vae")
    }


def digits(n: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().data[:n].reshape(n, 1, 8, 8).astype(np.float32)  # raw 0..16 pixels


@pytest.mark.parametrize("name", ["digits-autoencoder", "digits-vae"])
def test_a_short_run_of_each_template_reports_its_metrics(runs: dict[str, Any], name: str) -> None:
    result = runs[name]
    m = json.loads((result.run_dir / "metrics.json").read_text())
    assert m == result.metrics
    vae = name == "digits-vae"
    assert set(m) == {"reconstruction_mse", "pca_mse"} | ({"elbo"} if vae else set())
    assert 0.0 < m["reconstruction_mse"] < 0.12  # pixels in [0, 1]; 2 epochs
    assert 0.015 < m["pca_mse"] < 0.04  # PCA-8 on digits: about 0.024
    if vae:  # −ELBO in nats over 64 Bernoulli pixels: positive, below 64·ln 2 + KL
        assert 20.0 < m["elbo"] < 60.0
    low, high = json.loads((result.run_dir / "evaluation.json").read_text())["interval"]
    assert low <= m["reconstruction_mse"] <= high
    plots = {p.stem for p in (result.run_dir / "plots").glob("*.png")}
    assert {"reconstructions", "interpolation"} <= plots
    assert ("latent_map" in plots) == vae and "anomaly_errors" not in plots
    page = (result.run_dir / "report.html").read_text()
    assert "<h2>Reconstruction</h2>" in page and "PCA, 8 components" in page
    assert ("−ELBO (nats per example" in page) == vae
    spec = (result.run_dir / "spec.yaml").read_text()
    assert "scale: minmax" in spec


def test_anomaly_detection_trains_on_the_normal_classes_and_scores_the_rest(
    tmp_path: Path,
) -> None:
    normal = list(range(9))
    result = canonml.run(
        "template:digits-autoencoder",
        tmp_path,
        overrides=[*SHORT, "train.epochs=8", f"evaluate.anomaly.normal_classes={normal}"],
    )
    m = result.metrics
    assert 0.5 < m["anomaly_roc_auc"] <= 1.0  # 8 epochs already find most 9s
    described = json.loads((result.run_dir / "data.json").read_text())
    # 1,797 digits: train and val hold 9 of the 10 classes, the test split all of them
    assert described["sizes"]["test"] == 360
    assert described["sizes"]["train"] + described["sizes"]["val"] < 0.8 * 1797 * 0.95
    assert (result.run_dir / "plots" / "anomaly_errors.png").is_file()
    page = (result.run_dir / "report.html").read_text()
    assert "anomaly ROC-AUC" in page and "0, 1, 2, 3, 4, 5, 6, 7, 8" in page


def test_the_three_graphs_equal_pytorch(runs: dict[str, Any]) -> None:
    import onnxruntime as ort
    import torch

    from canonml.package.rebuild import rebuild_model

    for result in runs.values():
        pkg = open_package(result.run_dir / "package")
        sig = pkg.signature
        model = rebuild_model(pkg.read("spec.yaml").decode(), pkg.read("weights.safetensors"), sig)
        session = lambda name, pkg=pkg: ort.InferenceSession(pkg.read(name))  # noqa: E731
        raw = digits(7)
        x = torch.from_numpy(raw / 16.0)  # minmax on digits: shift 0, scale 16
        z = np.random.default_rng(1).standard_normal((7, 8)).astype(np.float32)
        with torch.no_grad():
            out = model(x)
            x_hat = out[0] if isinstance(out, tuple) else out
            code = model.encode(x)
            codes = code if isinstance(code, tuple) else (code,)
            decoded = model.decode(torch.from_numpy(z)) * 16.0
        score, recon = session("model.onnx").run(None, {"input": raw})
        want_score = (x_hat - x).pow(2).flatten(1).mean(dim=1).numpy()
        assert np.abs(score - want_score).max() <= 1e-5
        assert np.abs(recon - x_hat.numpy() * 16.0).max() <= 1e-5  # raw units, 0..16
        got_codes = session("encoder.onnx").run(None, {"input": raw})
        for got, want in zip(got_codes, codes, strict=True):
            assert np.abs(got - want.numpy()).max() <= 1e-5
        (got_decoded,) = session("decoder.onnx").run(None, {"code": z})
        assert got_decoded.shape == (7, 1, 8, 8)
        assert np.abs(got_decoded - decoded.numpy()).max() <= 1e-5  # raw units, 0..16


def test_the_manifest_lists_the_graphs_and_a_vae_sampler(runs: dict[str, Any]) -> None:
    ae = open_package(runs["digits-autoencoder"].run_dir / "package")
    vae = open_package(runs["digits-vae"].run_dir / "package")
    for pkg in (ae, vae):
        assert {"encoder.onnx", "decoder.onnx"} <= set(pkg.manifest["files"])
        assert [o["name"] for o in pkg.signature["outputs"]] == ["anomaly_score", "reconstruction"]
        assert pkg.signature["outputs"][1]["shape"] == [-1, 1, 8, 8]
    assert "sampler" not in ae.signature
    assert vae.signature["sampler"] == {
        "file": "decoder.onnx",
        "input": "code",
        "output": "image",
        "latent": 8,
        "prior": "normal",
        "conditional": False,
    }
    outputs = vae.signature["graphs"]["encoder.onnx"]["outputs"]
    assert [o["name"] for o in outputs] == ["mu", "logvar"]


def test_verify_passes_and_fails_on_a_changed_decoder(runs: dict[str, Any], tmp_path: Path) -> None:
    from canonml.io import sha256_bytes, stable_json

    source = runs["digits-vae"].run_dir / "package"
    ok = run_cli("verify", str(source))
    assert ok.code == 0, ok.stderr
    for fmt in ("zip", "hf"):  # the extra graphs travel with every export
        exported = canonml.export(source, fmt, tmp_path / f"export-{fmt}")
        assert verify_package(exported) == [], fmt
    changed = tmp_path / "changed"
    shutil.copytree(source, changed)
    other = open_package(runs["digits-autoencoder"].run_dir / "package").read("decoder.onnx")
    (changed / "decoder.onnx").write_bytes(other)  # same inputs and outputs, other weights
    problems = verify_package(changed)
    assert any(p.startswith("decoder.onnx: sha256 mismatch") for p in problems)
    # Re-hashed in canon.json, the file passes the hash check and fails the parity check.
    manifest = json.loads((changed / "canon.json").read_text())
    manifest["files"]["decoder.onnx"] = sha256_bytes(other)
    (changed / "canon.json").write_text(stable_json(manifest))
    problems = verify_package(changed)
    assert problems and all(p.startswith("decoder.onnx: output 'image' differs") for p in problems)
    bad = run_cli("verify", str(changed))
    assert bad.code != 0 and "decoder.onnx" in bad.stdout + bad.stderr


@pytest.mark.serve
def test_serve_returns_the_reconstruction_and_the_anomaly_score(runs: dict[str, Any]) -> None:
    from canonml.serve import build_app

    package = runs["digits-autoencoder"].run_dir / "package"
    raw = digits(3)
    expected = open_package(package).session().run(None, {"input": raw})
    with running(build_app([package])) as url:
        meta = httpx.get(f"{url}/v2/models/digits-autoencoder", timeout=10).json()
        assert [o["name"] for o in meta["outputs"]] == ["anomaly_score", "reconstruction"]
        body = {
            "inputs": [
                {
                    "name": "input",
                    "shape": [3, 1, 8, 8],
                    "datatype": "FP32",
                    "data": raw.ravel().tolist(),
                }
            ]
        }
        reply = httpx.post(f"{url}/v2/models/digits-autoencoder/infer", json=body, timeout=10)
    assert reply.status_code == 200, reply.text
    outputs = {o["name"]: o for o in reply.json()["outputs"]}
    assert outputs["reconstruction"]["shape"] == [3, 1, 8, 8]
    assert np.allclose(outputs["anomaly_score"]["data"], expected[0], atol=1e-6)
    recon = np.array(outputs["reconstruction"]["data"]).reshape(3, 1, 8, 8)
    assert np.allclose(recon, expected[1], atol=1e-5)
    assert 0.0 <= recon.min() and recon.max() <= 16.0  # raw pixel units


def test_predict_prints_the_score_and_json_adds_the_reconstruction(
    runs: dict[str, Any], tmp_path: Path
) -> None:
    np.save(tmp_path / "x.npy", digits(2))
    package = str(runs["digits-autoencoder"].run_dir / "package")
    table = run_cli("predict", package, str(tmp_path / "x.npy"))
    assert table.code == 0, table.stderr
    assert "anomaly_score" in table.stdout and "reconstruction" not in table.stdout
    rows = json.loads(run_cli("predict", package, str(tmp_path / "x.npy"), "--json").stdout)
    assert [sorted(r) for r in rows] == [["anomaly_score", "input", "reconstruction"]] * 2
    assert np.array(rows[0]["reconstruction"]).shape == (1, 8, 8)


def _csv_without_labels(path: Path) -> Path:
    rows = ["a,b,c"] + [f"{i},{i % 3},{i * 2}" for i in range(30)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(
    ("sets", "fragment"),
    [
        (["model.latent=0"], "model.latent: must be > 0"),
        (["evaluate.anomaly.normal_classes=[12]"], "evaluate.anomaly.normal_classes[0]: class"),
        (["evaluate.anomaly.normal_classes=[0, cat]"], "evaluate.anomaly.normal_classes[1]: 'cat'"),
        (["evaluate.anomaly.normal_classes=[0,1,2,3,4,5,6,7,8,9]"], "lists all 10 classes"),
        (["data.source=csv:{csv}", "evaluate.anomaly.normal_classes=[0]"], "evaluate.anomaly: "),
        (["data.preprocess.scale=standard"], "data.preprocess.scale: standard"),
        (["train.loss=bce", "model.output=linear"], "train.loss: bce needs outputs in [0, 1]"),
    ],
    ids=["latent", "index", "name", "every-class", "no-labels", "scale", "bce-linear"],
)
def test_bad_input_exits_2_naming_the_key(sets: list[str], fragment: str, tmp_path: Path) -> None:
    csv = _csv_without_labels(tmp_path / "rows.csv")
    args = [a for s in sets for a in ("--set", s.format(csv=csv))]
    result = run_cli(
        "run",
        "--template",
        "digits-autoencoder",
        "--set",
        "track=false",
        *args,
        "--out",
        str(tmp_path),
    )
    assert result.code == 2, result.stdout + result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "digits-autoencoder").exists()  # nothing half-written


def test_a_resumed_vae_ends_as_an_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4 epochs, warm-up over 3: the run stops mid-warm-up, after epoch 2's checkpoint.
    sets = [*SHORT, "train.epochs=4", "model.kl_warmup=3"]
    whole = canonml.run("template:digits-vae", tmp_path / "whole", overrides=sets)
    run_dir = interrupted_run("template:digits-vae", tmp_path / "cut", sets, monkeypatch)
    assert not (run_dir / "metrics.json").exists()
    resumed = canonml.run(None, resume=run_dir)
    assert (run_dir / "metrics.json").read_bytes() == (whole.run_dir / "metrics.json").read_bytes()
    for key in ("val_loss", "train_kl", "train_kl_weight"):
        assert [r[key] for r in resumed.history] == [r[key] for r in whole.history]
    assert [r["train_kl_weight"] for r in whole.history] == pytest.approx(
        [0.0, 0.25 / 3, 0.5 / 3, 0.25]
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "ceiling"), [("digits-autoencoder", 0.022), ("digits-vae", 0.025)]
)
def test_the_templates_reach_their_reconstruction_error(
    tmp_path: Path, name: str, ceiling: float
) -> None:
    m = canonml.run(f"template:{name}", tmp_path, overrides=["track=false"]).metrics
    assert m["reconstruction_mse"] <= ceiling, m
    assert m["reconstruction_mse"] < m["pca_mse"], m  # better than PCA with the same code size
