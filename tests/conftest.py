"""Shared fixtures: a CLI runner, tiny specs, and files in real formats."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# One intra-op thread: tests share 2 cores with each other and with servers they start.
os.environ.setdefault("OMP_NUM_THREADS", "1")


# The templates the foundation issue promises (others may be added).
REQUIRED_TEMPLATES = (
    "digits-mlp",
    "digits-cnn",
    "breast-cancer",
    "diabetes-regression",
    "wine",
    "iris",
)


class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 240) -> CliResult:
    """Run ``canon ARGS`` in a fresh process, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "canonml", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "120"},
    )
    return CliResult(proc)


def start_template_run(template: str, sets: list[str], out: Path) -> subprocess.Popen[bytes]:
    """``canon run --template TEMPLATE --set ... --out OUT`` in the background (to kill it)."""
    args = [a for s in sets for a in ("--set", s)]
    return subprocess.Popen(
        [sys.executable, "-m", "canonml", "run", "--template", template, *args, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_process(proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    """Stop a server a test started: terminate, wait, and kill it if it does not go."""
    proc.terminate()
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's headless Chromium through selenium, one per test module."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tmp_path_factory.mktemp("chromium")
    for arg in (
        "--headless=new --no-sandbox --disable-gpu --no-first-run --disable-sync "
        "--disable-background-networking --disable-component-update --window-size=1280,2000"
    ).split() + [f"--user-data-dir={profile}"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


@pytest.fixture
def cli() -> Any:
    return run_cli


def tiny_spec(**sections: Any) -> dict[str, Any]:
    """A fast spec (iris, 2 epochs) with sections replaced by ``sections``."""
    spec: dict[str, Any] = {
        "name": "tiny",
        "task": "classification",
        "seed": 0,
        "data": {"source": "sklearn:iris"},
        "model": {"arch": "mlp", "hidden": [8]},
        "train": {"epochs": 2, "batch_size": 16},
        "track": False,  # tracking has its own tests; a worker per run would slow the suite
    }
    spec.update(sections)
    return spec


@pytest.fixture
def write_spec(tmp_path: Path) -> Any:
    import yaml

    def write(spec: dict[str, Any], name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(spec), encoding="utf-8")
        return path

    return write


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test in its own directory: the default tracking store is ./mlflow.db.

    MLflow's own variables would send runs elsewhere; a test that wants them sets them.
    """
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)


def tiny_lm_run(root: Path, name: str) -> Path:
    """A tiny finished language-model run called ``name`` under ``root/runs`` (for specs that
    fine-tune ``checkpoint: run:NAME``), trained on a few Chinese review-like sentences."""
    import canonml

    lines = [
        f"{s}第{i % 10}次"
        for i in range(40)
        for s in ("这家店的菜很好吃，服务也很好。", "太差了，再也不来了，非常失望。")
    ]
    corpus = root / f"{name}.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = {
        "name": name,
        "task": "language-modeling",
        "data": {"source": f"corpus:{corpus}"},
        "model": {"arch": "gpt", "layers": 1, "heads": 2, "dim": 16, "context": 128},
        "train": {"epochs": 1, "batch_size": 16},
        "evaluate": {"ci": 0},
        "track": False,
    }
    return canonml.run(spec, out=root / "runs").run_dir


def template_checkpoint_run(name: str) -> str | None:
    """The NAME of a template's ``model.checkpoint: run:NAME``, if it has one."""
    from importlib import resources

    import yaml

    text = (resources.files("canonml.spec") / "templates" / f"{name}.yaml").read_text("utf-8")
    checkpoint = str((yaml.safe_load(text).get("model") or {}).get("checkpoint") or "")
    return checkpoint.removeprefix("run:") if checkpoint.startswith("run:") else None


@pytest.fixture
def template_cwd(tmp_path: Path) -> Any:
    """``use(name)``: for a template that fine-tunes ``run:NAME``, a tiny such run in the
    test's directory (its working directory), so the template finds it."""

    def use(name: str) -> None:
        wanted = template_checkpoint_run(name)
        if wanted is not None:
            tiny_lm_run(tmp_path, wanted)

    return use


def data_only_spec(data: dict[str, Any]) -> Any:
    """A ``Spec`` for tests of the data layer alone: ``data`` validated as its section, the
    other sections defaults (unchecked across sections: a text classifier's spec needs a
    pretrained checkpoint to validate whole, which these tests do not need)."""
    from canonml.spec.data import DataSpec
    from canonml.spec.evaluate import EvaluateSpec
    from canonml.spec.model import MLPSpec
    from canonml.spec.root import Spec
    from canonml.spec.task import ClassificationTask
    from canonml.spec.train import TrainSpec

    return Spec.model_construct(
        name="t",
        task=ClassificationTask(),
        seed=0,
        license=None,
        data=DataSpec.model_validate(data),
        model=MLPSpec(),
        train=TrainSpec(),
        evaluate=EvaluateSpec(),
        track=False,
    )


@contextlib.contextmanager
def served(package: Path, *args: str) -> Iterator[str]:
    """``canon serve PACKAGE ARGS`` on a free port of 127.0.0.1 until ready; its URL; stopped
    when the block ends."""
    import socket
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "canonml", "serve", str(package), "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "canon serve did not come up in 60 s"
                time.sleep(0.1)
        yield url
    finally:
        stop_process(proc)


def interrupted_run(
    spec: str, out: Path, overrides: list[str], monkeypatch: Any, after: int = 2
) -> Path:
    """The run directory of ``spec`` stopped by Ctrl-C right after epoch ``after``'s
    checkpoint (to ``--resume``)."""
    import canonml
    from canonml.train import checkpoint

    save = checkpoint.Checkpointer.on_epoch_end

    def stop(self: Any, state: Any, logs: dict[str, Any]) -> None:
        save(self, state, logs)
        if state.epoch == after:
            if self.saved_epoch != state.epoch:
                self.save(state)  # the checkpoint of this epoch, whatever the interval
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.Checkpointer, "on_epoch_end", stop)
    try:
        canonml.run(spec, out, overrides=overrides)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError(f"the run did not stop after epoch {after}")
    finally:
        monkeypatch.setattr(checkpoint.Checkpointer, "on_epoch_end", save)
    (run_dir,) = (p for p in out.glob("*/*") if p.is_dir())
    return run_dir
