"""``canon run --nproc N``: DDP through torchrun (gloo on CPU). Two processes at the same
global batch and seed track the one-process run; only rank 0 writes and tracks; a killed
rank ends the run with a message naming it, and ``--resume`` finishes it exactly."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform != "linux", reason="/proc")]

EPOCHS = 14
# Without dropout the processes draw no random numbers of their own (with it, each has its
# own masks: the runs differ as two dropout streams do, about a test example on digits).
SETS = ["--set", f"train.epochs={EPOCHS}", "--set", "evaluate.ci=0", "--set", "model.dropout=0"]
SETS += ["--set", "train.checkpoint_interval=0"]  # a checkpoint to kill after


def run_dirs(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.glob("*/*/spec.yaml"))


def history(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "history.csv").open(encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]


def metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The digits-mlp template in 1 and in 2 processes, tracked in one SQLite store."""
    root = tmp_path_factory.mktemp("ddp")
    store = f"sqlite:///{root / 'mlflow.db'}"
    track = ["--set", f"track={{uri: '{store}', experiment: ddp}}"]
    runs = {}
    for n in (1, 2):
        result = run_cli(
            "run", "--template", "digits-mlp", "--nproc", str(n), *SETS, *track,
            "--out", str(root / f"n{n}"),
        )  # fmt: skip
        assert result.code == 0, result.stderr[-2000:]
        runs[n] = result
    return {"root": root, "store": store, "runs": runs}


def test_two_processes_track_one_process(pair: dict[str, Any]) -> None:
    root = pair["root"]
    (one,), (two,) = run_dirs(root / "n1"), run_dirs(root / "n2")
    # The same batches, split between the processes, and averaged gradients: the test metric
    # within half a point and the loss curve on the 1-process one.
    assert abs(metrics(two)["accuracy"] - metrics(one)["accuracy"]) <= 0.005 + 1e-9
    h1, h2 = history(one), history(two)
    assert len(h1) == len(h2) == EPOCHS
    for a, b in zip(h1, h2, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.05, abs=1e-3)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=0.02)
    # Rank 0 wrote one complete run; the other rank printed nothing.
    assert (two / "package" / "canon.json").is_file() and (two / "report.html").is_file()
    out = pair["runs"][2].stdout
    assert out.count("run directory:") == 1 and "[rank1]" not in out + pair["runs"][2].stderr


def test_only_rank_zero_tracks(pair: dict[str, Any]) -> None:
    import mlflow

    from canonml.track.store import mlflow_warnings_ignored

    with mlflow_warnings_ignored():
        client = mlflow.MlflowClient(pair["store"])
        exp = client.get_experiment_by_name("ddp")
        found = client.search_runs([exp.experiment_id])
    assert len(found) == 2  # one per canon run, not one per process
    assert {r.info.status for r in found} == {"FINISHED"}


def _rank_pids(rank: int, marker: str) -> list[int]:
    """Processes whose environment says RANK=rank and holds ``marker`` (this test's run)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and f"CANON_TEST_MARK={marker}".encode() in env:
            pids.append(int(entry))
    return pids


def test_a_killed_rank_is_named_and_resume_finishes_exactly(
    pair: dict[str, Any], tmp_path: Path
) -> None:
    marker = str(os.getpid())
    cmd = [sys.executable, "-m", "canonml", "run", "--template", "digits-mlp", "--nproc", "2"]
    proc = subprocess.Popen(
        [*cmd, *SETS, "--set", "track=false", "--out", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CANON_TEST_MARK": marker},
    )
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("*/*/checkpoints/last.pt")):
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.1)
        victims = _rank_pids(1, marker)
        assert victims, "rank 1 not found"
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1
    (run_dir,) = run_dirs(tmp_path)
    lines = [ln for ln in err.splitlines() if ln.startswith("error: rank 1 ")]
    assert lines and "SIGKILL" in lines[0], err[-2000:]
    assert f"canon run --resume {run_dir} --nproc 2" in lines[0]
    assert not (run_dir / "metrics.json").exists()
    assert len(history(run_dir)) < EPOCHS
    assert not _rank_pids(0, marker) and not _rank_pids(1, marker)  # nothing left running

    resumed = run_cli("run", "--resume", str(run_dir), "--nproc", "2")
    assert resumed.code == 0, resumed.stderr[-2000:]
    (uninterrupted,) = run_dirs(pair["root"] / "n2")
    assert metrics(run_dir) == metrics(uninterrupted)
    assert [h["val_loss"] for h in history(run_dir)] == pytest.approx(
        [h["val_loss"] for h in history(uninterrupted)], rel=1e-6
    )


def test_grad_accum_and_bf16_train_under_ddp(tmp_path: Path) -> None:
    result = run_cli(
        "run", "--template", "digits-mlp", "--nproc", "2", "--set", "train.epochs=3",
        "--set", "train.grad_accum=2", "--set", "train.precision=bf16",
        "--set", "track=false", "--set", "evaluate.ci=0", "--out", str(tmp_path),
    )  # fmt: skip
    assert result.code == 0, result.stderr[-2000:]
    (run_dir,) = run_dirs(tmp_path)
    assert metrics(run_dir)["accuracy"] > 0.85


def test_a_task_that_cannot_distribute_exits_2_naming_the_option(tmp_path: Path) -> None:
    result = run_cli(
        "run", "--template", "digits-gan", "--nproc", "2", "--set", "track=false",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert result.code == 2
    assert "error: --nproc: task generation" in result.stderr
    assert not run_dirs(tmp_path)


@pytest.mark.parametrize("n", ["0", "-1"])
def test_nproc_below_one_exits_2(n: str, tmp_path: Path) -> None:
    result = run_cli("run", "--template", "digits-mlp", "--nproc", n, "--out", str(tmp_path))
    assert result.code == 2
    assert f"error: --nproc: must be at least 1, got {n}" in result.stderr
