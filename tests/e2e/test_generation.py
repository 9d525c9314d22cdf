"""``task: generation`` end to end: each GAN template's short run, its metrics, plots and
report; the generator's package (ONNX parity, ``canon verify``, ``canon sample`` without
torch, ``canon serve`` with Triton's client and the page's Generate button); bad inputs;
divergence; kill -9 and ``--resume``."""

from __future__ import annotations

import csv
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import canonml
from canonml.cli import app
from canonml.spec.task import GENERATION_METRICS
from tests.conftest import start_template_run, tiny_spec

TEMPLATES = ("digits-gan", "digits-dcgan", "digits-cgan")
SHORT = ["train.epochs=2", "track=false"]
runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("gan-runs")
    return {t: canonml.run(f"template:{t}", out, overrides=SHORT).run_dir for t in TEMPLATES}


@pytest.mark.parametrize("name", TEMPLATES)
def test_a_short_run_writes_the_metrics_plots_and_report(runs: dict[str, Path], name: str) -> None:
    import torch

    d = runs[name]
    metrics = json.loads((d / "metrics.json").read_text())
    conditional = name == "digits-cgan"
    expected = set(GENERATION_METRICS) - (set() if conditional else {"conditional_accuracy"})
    assert set(metrics) == expected  # conditional accuracy only where a class is asked for
    assert metrics["fd_ratio"] == pytest.approx(metrics["fd"] / metrics["fd_noise"])
    assert metrics["fd_floor"] < metrics["fd_gaussian"] < metrics["fd_noise"]
    assert 0 <= metrics["coverage"] <= 1 and 0.1 <= metrics["confidence"] <= 1
    details = json.loads((d / "evaluation.json").read_text())["details"]
    assert len(details["reference"]["sha256"]) == 64 and details["reference"]["version"] == 1
    assert details["fd"] | {"seed": 0} == {
        "n": 1257,
        "model_samples": 1257,
        "vs_split": "test",
        "n_vs": 360,
        "floor_split": "train",
        "seed": 0,
    }
    assert details["coverage"]["samples"] == 10_000
    plots = {p.name for p in (d / "plots").iterdir()}
    assert {
        "samples.png",
        "class_shares.png",
        "gan_training.png",
        "samples_over_epochs.png",
    } <= plots
    assert {"samples_epoch_001.png", "samples_epoch_002.png"} <= plots
    with open(d / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"train_loss", "train_g_loss", "val_loss", "val_fd", "lr", "lr_discriminator"} <= set(
        rows[0]
    )
    report = (d / "report.html").read_text()
    assert "fitted-Gaussian baseline" in report and details["reference"]["sha256"] in report
    assert "generator.net.0 (" in report
    assert "discriminator.net.0 (" in report  # the model table lists G and D
    payload = torch.load(d / "checkpoints" / "last.pt", weights_only=True)
    assert set(payload["optimizers"]) == {"generator", "discriminator"}


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_generator_graph_equals_pytorch_and_verifies(runs: dict[str, Path], name: str) -> None:
    import onnx
    import torch

    from canonml.package.rebuild import rebuild_model
    from canonml.tasks.generation import from_tanh

    pkg = canonml.open_package(runs[name] / "package")
    sig = pkg.signature
    assert sorted(p.name for p in pkg.path.iterdir()) == [
        "MODEL_CARD.md",
        "canon.json",
        "model.onnx",
        "spec.yaml",
        "weights.safetensors",
    ]  # the weights are inside model.onnx: no external data file
    graph = onnx.load_from_string(pkg.onnx_bytes)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in graph.graph.initializer)
    model = rebuild_model(pkg.read("spec.yaml").decode(), pkg.read("weights.safetensors"), sig)
    z = np.random.default_rng(5).standard_normal((7, sig["sampler"]["latent"])).astype(np.float32)
    feeds = {"noise": z}
    labels = None
    if sig["sampler"]["conditional"]:
        feeds["label"] = labels = np.array([0, 3, 9, 9, 1, 2, 5], dtype=np.int64)
    (got,) = pkg.session().run(["images"], feeds)
    with torch.no_grad():
        g = model.generator(
            torch.from_numpy(z), None if labels is None else torch.from_numpy(labels)
        )
    want = from_tanh(g.numpy(), sig["preprocessing"])  # raw pixel units, 0..16
    assert got.shape == (7, 1, 8, 8)
    assert np.abs(got - want).max() <= 1e-5
    assert canonml.verify_package(pkg.path) == []


def test_canon_sample_works_without_torch(runs: dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image

    from canonml.package.sample import sample_package

    png, npy = tmp_path / "threes.png", tmp_path / "threes.npy"
    code = (
        "import sys\nsys.modules['torch'] = None  # any 'import torch' now fails\n"
        "from canonml.cli import main\n"
        f"main(['sample', {str(runs['digits-cgan'])!r}, '-n', '12', '--class', '3', '--seed', "
        f"'4', '-o', {str(png)!r}, '--npy', {str(npy)!r}])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    images = np.load(npy)
    assert images.shape == (12, 1, 8, 8) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 16  # raw pixel units
    # The same seed gives the same images; another class, other images.
    again = sample_package(runs["digits-cgan"] / "package", 12, "3", seed=4)
    assert np.array_equal(images, again)
    assert not np.allclose(images, sample_package(runs["digits-cgan"], 12, 4, seed=4))
    with Image.open(png) as grid:
        assert grid.width > 8 * 4 and grid.height > 8 * 3


SAMPLE_ERRORS = [
    ("digits-cgan", ["--class", "12"], "--class: 12 is out of range: model 'digits-cgan' has 10"),
    ("digits-cgan", ["--class", "seven"], "--class: 'seven' is not a class of this model"),
    ("digits-gan", ["--class", "3"], "--class: model 'digits-gan' is unconditional"),
    ("digits-dcgan", ["-n", "0"], "-n: must be at least 1, got 0"),
]


@pytest.mark.parametrize(("name", "args", "message"), SAMPLE_ERRORS, ids=lambda v: str(v))
def test_bad_sample_requests_exit_2_naming_the_option(
    runs: dict[str, Path], tmp_path: Path, name: str, args: list[str], message: str
) -> None:
    result = invoke("sample", str(runs[name]), *args, "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "x.png").exists()


def test_predict_on_a_generator_points_to_sample(runs: dict[str, Path], tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 8, 8), np.float32))
    result = invoke("predict", str(runs["digits-gan"] / "package"), str(tmp_path / "x.npy"))
    assert result.exit_code == 2 and "canon sample" in result.output


def one_class_idx(d: Path) -> str:
    """An IDX directory of 8×8 images that all have label 0: nothing to condition on."""
    n = 20
    pixels = np.random.default_rng(0).integers(0, 255, (n, 8, 8), dtype=np.uint8)
    (d / "train-images-idx3-ubyte").write_bytes(
        b"\0\0\x08\x03" + struct.pack(">III", n, 8, 8) + pixels.tobytes()
    )
    (d / "train-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01" + struct.pack(">I", n) + bytes(n))
    return f"idx:{d}"


GAN = {"arch": "gan", "latent": 4, "g_hidden": [8], "d_hidden": [8]}
BAD_SPECS = [
    (
        "tabular source",
        {"data": {"source": "sklearn:iris"}},
        "data.source: task generation makes images",
    ),
    (
        "conditional without labels",
        {"data": one_class_idx, "model": GAN | {"conditional": True}},
        "model.conditional: needs class labels",
    ),
    ("latent 0", {"model": GAN | {"latent": 0}}, "model.latent: must be > 0, got 0"),
    ("dcgan latent -3", {"model": {"arch": "dcgan", "latent": -3}}, "model.latent: must be > 0"),
]


@pytest.mark.parametrize(("case", "change", "message"), BAD_SPECS, ids=[r[0] for r in BAD_SPECS])
def test_bad_gan_specs_exit_2_naming_the_key(
    tmp_path: Path, write_spec: Any, case: str, change: dict[str, Any], message: str
) -> None:
    spec = tiny_spec(task="generation", data={"source": "sklearn:digits"}, model=GAN)
    for key, value in change.items():
        spec[key] = {"source": value(tmp_path)} if callable(value) else value
    result = invoke("run", str(write_spec(spec)), "--out", str(tmp_path / "runs"))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists(), "a failed run must leave no run directory"


@pytest.mark.parametrize(
    ("lr", "later"),
    [
        ("1000", False),  # at once: no checkpoint before it
        ("0.1", True),  # some epochs later (which one depends on the CPU's kernels)
    ],
)
def test_an_absurd_learning_rate_stops_the_run_and_packages_nothing(
    tmp_path: Path, lr: str, later: bool
) -> None:
    import re

    import torch

    sets = ["train.epochs=40", "track=false", f"train.optimizer.lr={lr}"]
    sets.append("train.checkpoint_interval=0")  # a checkpoint after every epoch
    args = [a for s in sets for a in ("--set", s)]
    result = invoke("run", "--template", "digits-gan", *args, "--out", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = result.output.strip().splitlines()[-1]  # after the epochs' progress lines
    assert line.startswith("error: train: ")
    assert "the generator's gradient was exactly 0" in line and "no package was written" in line
    assert f"train.optimizer.lr, got {lr}" in line
    found = re.search(r"collapsed since epoch (\d+): ", line)
    assert found, line
    epoch = int(found.group(1))
    (run_dir,) = (tmp_path / "digits-gan").iterdir()
    assert not (run_dir / "package").exists() and not (run_dir / "metrics.json").exists()
    last = run_dir / "checkpoints" / "last.pt"
    if not later:
        assert epoch == 1
        assert "no checkpoint was written" in line and not last.exists()
    else:
        kept = re.search(
            r"last\.pt is kept: epoch (\d+), (before the collapse|after it began)", line
        )
        assert epoch > 1 and kept, line
        # The checkpoint before the collapse's first epoch, or a later one when the collapse
        # is only recognised in a later epoch (it spans 32 steps): the message says which.
        saved = int(kept.group(1))
        assert saved == epoch - 1 if kept.group(2) == "before the collapse" else saved >= epoch
        assert torch.load(last, weights_only=True)["epoch"] == saved


@pytest.mark.slow
def test_kill_9_and_resume_give_the_metrics_of_an_uninterrupted_run(tmp_path: Path) -> None:
    sets = ["train.epochs=12", "track=false", "train.checkpoint_interval=0"]
    whole = canonml.run("template:digits-cgan", tmp_path / "whole", overrides=sets)
    proc = start_template_run("digits-cgan", sets, tmp_path / "killed")
    run_dir = _after_epochs(tmp_path / "killed", proc, 3)
    time.sleep(0.05)  # inside the next epoch
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (run_dir / "metrics.json").exists(), "killed before the end"
    resumed = canonml.run(None, resume=run_dir)
    assert (run_dir / "metrics.json").read_bytes() == (whole.run_dir / "metrics.json").read_bytes()
    same = ("val_loss", "train_g_loss", "val_fd", "lr_discriminator")
    assert [[r.get(k) for k in same] for r in resumed.history] == [
        [r.get(k) for k in same] for r in whole.history
    ]


def _after_epochs(root: Path, proc: subprocess.Popen[bytes], epochs: int) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list(root.glob("*/*/checkpoints/last.pt"))
        history = list(root.glob("*/*/history.csv"))
        if found and history and len(history[0].read_text().splitlines()) > epochs:
            return found[0].parent.parent
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("no checkpoint appeared")


@pytest.fixture(scope="module")
def server(runs: dict[str, Path]) -> Iterator[str]:
    from canonml.serve import build_app
    from tests.unit.serve.live import running

    with running(
        build_app([runs["digits-cgan"] / "package", runs["digits-gan"] / "package"])
    ) as url:
        yield url


@pytest.mark.serve
def test_canon_serve_generates_over_the_v2_protocol(runs: dict[str, Path], server: str) -> None:
    import httpx
    import tritonclient.http as triton

    client = triton.InferenceServerClient(server.removeprefix("http://"))
    meta = client.get_model_metadata("digits-cgan")
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("noise", "FP32"),
        ("label", "INT64"),
    ]
    z = np.random.default_rng(1).standard_normal((4, 100)).astype(np.float32)
    labels = np.array([7, 7, 2, 0], dtype=np.int64)
    inputs = [
        triton.InferInput("noise", [4, 100], "FP32"),
        triton.InferInput("label", [4], "INT64"),
    ]
    inputs[0].set_data_from_numpy(z)
    inputs[1].set_data_from_numpy(labels)
    images = client.infer("digits-cgan", inputs).as_numpy("images")
    local = canonml.open_package(runs["digits-cgan"] / "package").session()
    (want,) = local.run(["images"], {"noise": z, "label": labels})
    assert images.shape == (4, 1, 8, 8) and np.allclose(images, want, atol=1e-6)
    bad = {
        "inputs": [
            {"name": "noise", "datatype": "FP32", "shape": [1, 100], "data": [0.0] * 100},
            {"name": "label", "datatype": "INT64", "shape": [1], "data": [12]},
        ]
    }
    r = httpx.post(f"{server}/v2/models/digits-cgan/infer", json=bad)
    assert (
        r.status_code == 400
        and "input 'label': values must be in 0..9, got 12" in r.json()["error"]
    )


@pytest.mark.browser
def test_the_page_generates_images_of_the_chosen_class(server: str, browser: Any) -> None:
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(server + "/")
    cgan = browser.find_element("css selector", 'section[data-model="digits-cgan"]')
    picker = Select(cgan.find_element("css selector", "select.class"))
    assert [o.text for o in picker.options] == ["every class", *map(str, range(10))]
    picker.select_by_visible_text("3")
    count = cgan.find_element("css selector", "input.count")
    count.clear()
    count.send_keys("6")
    cgan.find_element("css selector", "button.generate").click()
    WebDriverWait(browser, 10).until(
        lambda _: cgan.find_element("css selector", ".result").get_attribute("data-images")
    )
    canvas = cgan.find_element("css selector", ".result canvas.samples")
    assert int(canvas.get_attribute("width")) > 0
    sent = json.loads(cgan.get_attribute("data-request"))["inputs"]
    assert sent[0]["shape"] == [6, 100] and sent[1]["data"] == [3] * 6
    plain = browser.find_element("css selector", 'section[data-model="digits-gan"]')
    assert not plain.find_elements("css selector", "select.class")  # unconditional: no picker
    plain.find_element("css selector", "button.generate").click()
    WebDriverWait(browser, 10).until(
        lambda _: plain.find_element("css selector", ".result").get_attribute("data-images") == "20"
    )
