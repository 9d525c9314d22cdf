"""The model package from real short runs: manifest, in-graph preprocessing, verify, predict.

Each package comes from a real run; ONNX Runtime on *raw* inputs must match the PyTorch
model on inputs preprocessed by the training code, which shows the preprocessing is in the
graph. Predicting must work where ``import torch`` fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from PIL import Image

import canonml
from canonml.data.preprocess import apply_preprocess
from canonml.data.sources import load_source
from canonml.io import sha256_file
from canonml.package import (
    PackageError,
    open_package,
    predict_inputs,
    verify_package,
    write_package,
)
from canonml.package.rebuild import rebuild_model
from canonml.package.signature import to_graph_input

FILES = {"model.onnx", "weights.safetensors", "spec.yaml", "MODEL_CARD.md"}
RUNS: dict[str, tuple[Any, list[str]]] = {
    "digits": ("template:digits-mlp", ["train.epochs=2"]),
    "digits-cnn": ("template:digits-cnn", ["train.epochs=1", "model.channels=[8]"]),
    "iris": ("template:iris", ["train.epochs=3", "model.batch_norm=true"]),
    "diabetes": ("template:diabetes-regression", ["train.epochs=3"]),
    "patients": (None, []),  # a csv with categorical columns and missing cells
}


def _patients_csv(path: Path) -> Path:
    rng = np.random.default_rng(0)
    lines = ["age,city,smoker,bmi,outcome"]
    for i in range(120):
        age, bmi = rng.integers(20, 80), rng.normal(26, 4)
        city = ["Paris", "Lyon", "Nice"][i % 3] if i % 11 else "NA"
        smoker = "yes" if rng.random() < 0.4 else "no"
        sick = "sick" if age + 20 * (smoker == "yes") + rng.normal(0, 10) > 60 else "healthy"
        age_cell = "" if i % 13 == 0 else str(age)
        lines.append(f"{age_cell},{city},{smoker},{bmi:.1f},{sick}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run directories with their package written, by name (trained lazily, once)."""
    root = tmp_path_factory.mktemp("runs")

    class Lazy(dict[str, Path]):
        def __missing__(self, key: str) -> Path:
            spec, overrides = RUNS[key]
            if spec is None:
                csv = _patients_csv(root / "patients.csv")
                spec = {
                    "name": "patients",
                    "data": {"source": f"csv:{csv}", "target": "outcome"},
                    "model": {"arch": "mlp", "hidden": [8]},
                    "train": {"epochs": 3, "batch_size": 16},
                }
            run_dir = canonml.run(spec, root, overrides=[*overrides, "track=false"]).run_dir
            write_package(run_dir)
            self[key] = run_dir
            return run_dir

    return Lazy()


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_manifest_describes_the_run(runs: dict[str, Path]) -> None:
    run = runs["digits"]
    pkg = run / "package"
    m = _json(pkg / "canon.json")
    assert (m["format"], m["format_version"], m["name"], m["task"]) == (
        "canonml-package",
        1,
        "digits-mlp",
        "classification",
    )
    assert m["version"] == m["lineage"]["run_id"] == run.name
    assert m["created"].endswith("Z") and m["versions"]["opset"] == 17
    assert m["versions"]["torch"].startswith("2.13") and m["versions"]["canonml"]
    sig = m["signature"]
    assert sig["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert [o["name"] for o in sig["outputs"]] == ["probabilities", "label"]
    assert sig["labels"] == [str(i) for i in range(10)] and len(sig["features"]) == 64
    assert sig["kind"] == "image" and sig["image_shape"] == [1, 8, 8]
    assert sig["preprocessing"] == {**_json(run / "preprocess.json"), "in_graph": True}
    assert m["metrics"] == _json(run / "metrics.json")
    assert m["interval"] == _json(run / "evaluation.json")["interval"]
    data = _json(run / "data.json")
    assert m["data"] == {k: data[k] for k in ("fingerprint", "source", "sizes")}
    assert m["lineage"]["spec_sha256"] == sha256_file(run / "spec.yaml")
    assert m["privacy"] is None
    assert set(m["files"]) == FILES == {p.name for p in pkg.iterdir()} - {"canon.json"}
    assert all(sha256_file(pkg / n) == h for n, h in m["files"].items())
    assert (pkg / "spec.yaml").read_bytes() == (run / "spec.yaml").read_bytes()
    assert (pkg / "weights.safetensors").read_bytes() == (run / "model.safetensors").read_bytes()


def _raw_and_prepared(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """The whole source as raw graph input and as the training code preprocesses it."""
    spec = canonml.load_spec(run / "spec.yaml")
    state = _json(run / "preprocess.json")
    raw = load_source(spec.data)
    prepared, keep = apply_preprocess(state, raw)
    if raw.kind == "image":
        return raw.x.astype(np.float32), prepared
    assert keep.all()
    return to_graph_input(state, raw.x, raw.categorical), prepared


@pytest.mark.parametrize("name", list(RUNS))
def test_onnx_on_raw_inputs_equals_pytorch_on_preprocessed_inputs(
    runs: dict[str, Path], name: str
) -> None:
    import torch

    run = runs[name]
    pkg = open_package(run / "package")
    graph = onnx.load(str(run / "package" / "model.onnx"))
    assert graph.opset_import[0].version == 17
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    raw, prepared = _raw_and_prepared(run)
    if pkg.signature["kind"] == "tabular":
        assert np.isnan(raw).any() == (name == "patients")  # the graph imputes the gaps
    model = rebuild_model(
        (run / "spec.yaml").read_text(), (run / "model.safetensors").read_bytes(), pkg.signature
    )
    with torch.no_grad():
        out = model(torch.from_numpy(prepared)).double().numpy()
    got = pkg.session().run(None, {"input": raw})
    if pkg.task == "classification":
        proba = np.exp(out - out.max(axis=1, keepdims=True))
        proba /= proba.sum(axis=1, keepdims=True)
        assert np.abs(got[0] - proba).max() <= 1e-4
        assert (got[1] == out.argmax(axis=1)).mean() > 0.99
    else:
        target = pkg.signature["preprocessing"]["target"]
        want = out[:, 0] * target["scale"] + target["shift"]  # the data's units
        # float32 holds large values to a relative, not an absolute, 1e-4 (as verify checks)
        assert np.all(np.abs(got[0] - want) <= 1e-4 * np.maximum(1.0, np.abs(want)))
    assert verify_package(run / "package") == []


@pytest.mark.parametrize(
    "name", ["weights.safetensors", "model.onnx", "MODEL_CARD.md", "spec.yaml"]
)
def test_flipping_one_byte_fails_verify_naming_the_file(
    runs: dict[str, Path], tmp_path: Path, name: str
) -> None:
    pkg = shutil.copytree(runs["digits"] / "package", tmp_path / "pkg")
    data = bytearray((pkg / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (pkg / name).write_bytes(bytes(data))
    problems = verify_package(pkg)
    assert problems and any(p.startswith(f"{name}: sha256 mismatch") for p in problems)
    assert all("\n" not in p for p in problems)
    with pytest.raises(PackageError, match=name):
        open_package(pkg)


def test_a_broken_graph_or_manifest_is_reported(runs: dict[str, Path], tmp_path: Path) -> None:
    pkg = shutil.copytree(runs["digits"] / "package", tmp_path / "pkg")
    (pkg / "model.onnx").write_bytes(b"not a protobuf")
    problems = verify_package(pkg)
    assert any(p.startswith("model.onnx: fails the ONNX checker") for p in problems)
    (pkg / "canon.json").write_text("{", encoding="utf-8")
    assert [p for p in verify_package(pkg) if "canon.json: not valid JSON" in p]


def test_zip_round_trip(runs: dict[str, Path], tmp_path: Path) -> None:
    run = runs["iris"]
    out = write_package(run, tmp_path / "dist" / "iris.zip", as_zip=True)
    assert out == tmp_path / "dist" / "iris.zip" and zipfile.is_zipfile(out)
    assert verify_package(out) == []
    pkg = open_package(out)
    assert pkg.onnx_path is None
    assert pkg.read("weights.safetensors") == (run / "model.safetensors").read_bytes()
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    with zipfile.ZipFile(out) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["model.onnx"] = members["model.onnx"][:-1] + bytes([members["model.onnx"][-1] ^ 1])
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    assert any(p.startswith("model.onnx: sha256 mismatch") for p in verify_package(bad))


def test_write_package_replaces_a_package_but_never_other_files(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    run = runs["iris"]
    target = tmp_path / "out"
    assert write_package(run, target) == target
    first = (target / "model.onnx").read_bytes()
    assert write_package(run, target) == target  # again, over the old package
    assert (target / "model.onnx").read_bytes() == first  # the export is deterministic
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp dirs left
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(PackageError, match="not a model package"):
        write_package(run, mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    with pytest.raises(PackageError, match="not a finished run directory"):
        write_package(tmp_path / "mine")


def test_predict_csv_json_npy_and_png(runs: dict[str, Path], tmp_path: Path) -> None:
    patients = runs["patients"]
    csv = patients.parent.parent / "patients.csv"
    rows = predict_inputs(patients / "package", [str(csv)])
    assert len(rows) == 120 and rows[0]["input"] == "patients.csv row 2"
    assert {r["label"] for r in rows} <= {"healthy", "sick"}
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in rows)
    assert rows[0]["probability"] == rows[0]["probabilities"][rows[0]["label"]]

    iris = runs["iris"] / "package"
    names = open_package(iris).signature["features"]
    (tmp_path / "rows.json").write_text(json.dumps({"inputs": [dict.fromkeys(names, 5.0)]}))
    assert predict_inputs(iris, [str(tmp_path / "rows.json")])[0]["input"] == "rows.json[0]"

    digits = runs["digits"] / "package"
    images = load_source(canonml.load_spec(runs["digits"] / "spec.yaml").data)
    np.save(tmp_path / "x.npy", images.x[:20])
    rows = predict_inputs(digits, [str(tmp_path / "x.npy")])
    assert np.mean([r["label"] == str(y) for r, y in zip(rows, images.y[:20], strict=True)]) > 0.7
    # One digit as an 8-bit PNG: 0..16 grey levels scaled to 0..255 and back.
    Image.fromarray((images.x[0, 0] * 255 / 16).astype(np.uint8)).save(tmp_path / "d.png")
    png = predict_inputs(digits, [str(tmp_path / "d.png")])[0]
    assert png["input"] == "d.png" and png["label"] == rows[0]["label"]

    dia = _npy(tmp_path / "dia.npy", np.zeros((2, 10)))  # sklearn's diabetes features centre on 0
    rows = predict_inputs(runs["diabetes"] / "package", [str(dia)])
    assert len(rows) == 2 and 50 < rows[0]["prediction"] < 300  # in the data's units


def _npy(path: Path, arr: np.ndarray) -> Path:
    np.save(path, arr)
    return path


TORCH_FREE = """
import importlib.abc, json, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed here")

sys.meta_path.insert(0, NoTorch())
try:
    import torch  # noqa: F401
    sys.exit("import torch should fail")
except ImportError:
    pass
from canonml.package import open_package, predict_inputs
from canonml.package.reader import open_package as open_again
pkg = open_again(sys.argv[1])
rows = predict_inputs(sys.argv[1], sys.argv[2:])
assert not [m for m in sys.modules if m == "torch" or m.startswith("torch.")]
print(json.dumps({"name": pkg.name, "labels": [r["label"] for r in rows]}))
"""


def test_open_and_predict_work_where_torch_cannot_be_imported(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    digits = runs["digits"] / "package"
    zipped = write_package(runs["digits"], tmp_path / "digits.zip", as_zip=True)
    np.save(tmp_path / "x.npy", np.zeros((3, 1, 8, 8)))
    Image.new("L", (16, 16), 0).save(tmp_path / "blank.png")
    for pkg in (digits, zipped):
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                TORCH_FREE,
                str(pkg),
                str(tmp_path / "x.npy"),
                str(tmp_path / "blank.png"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONWARNINGS": "error"},
        )
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out["name"] == "digits-mlp" and len(out["labels"]) == 4


@pytest.mark.parametrize("name", ["digits", "digits-cnn", "patients", "diabetes"])
def test_triton_repository_matches_the_package_signature(
    runs: dict[str, Path], tmp_path: Path, name: str
) -> None:
    from canonml.package.convert import export_as
    from tests.unit.package.checks import check_against_signature, parse_triton_config

    pkg = open_package(runs[name] / "package")
    model = export_as(runs[name], "triton", tmp_path / "repo", max_batch_size=32)
    assert model == tmp_path / "repo" / pkg.name
    config = parse_triton_config((model / "config.pbtxt").read_text(encoding="utf-8"))
    assert config.name == pkg.name
    check_against_signature(config, pkg.signature, 32)
    assert (model / "1" / "model.onnx").read_bytes() == pkg.onnx_bytes
    labels = pkg.signature["labels"]
    if labels:
        assert (model / "labels.txt").read_text(encoding="utf-8").splitlines() == labels
    else:
        assert not (model / "labels.txt").exists()
    dims = list(config.input[0].dims)
    if name == "digits-cnn":
        assert dims == [1, 8, 8]
    if name == "patients":  # one-hot columns widen the input: city=..., smoker=...
        assert dims == [len(pkg.signature["features"])] and dims[0] > 4
        assert any(f.startswith("city=") for f in pkg.signature["features"])


@pytest.mark.parametrize("name", ["digits", "diabetes"])
def test_model_onnx_and_weights_describe_themselves(runs: dict[str, Path], name: str) -> None:
    from safetensors import safe_open

    run = runs[name]
    pkg = open_package(run / "package")
    meta = pkg.session().get_modelmeta()
    props = meta.custom_metadata_map
    assert json.loads(props["labels"]) == pkg.signature["labels"]
    assert json.loads(props["features"]) == pkg.signature["features"]
    assert (props["name"], props["version"], props["task"]) == (pkg.name, pkg.version, pkg.task)
    assert props["format"] == "canonml-package" and props["format_version"] == "1"
    assert meta.producer_name == "canonml" and pkg.name in meta.description
    spec_sha = pkg.manifest["lineage"]["spec_sha256"]
    arch = canonml.load_spec(run / "spec.yaml").model.arch
    for path in (
        run / "model.safetensors",
        run / "checkpoints" / "best.safetensors",
        run / "package" / "weights.safetensors",
    ):
        with safe_open(str(path), "pt") as f:
            assert f.metadata() == {
                "format": "pt",
                "architecture": arch,
                "spec_sha256": spec_sha,
                "canonml_version": canonml.__version__,
            }, path
