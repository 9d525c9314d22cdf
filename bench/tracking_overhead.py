"""What MLflow tracking adds to ``canon run --template digits-mlp``, first and later runs.

Each round runs the template three times as fresh processes, as a user would: with
``track: false``, then tracked into a new SQLite store (which the run creates: MLflow's
schema migrations), then tracked into that existing store. Rounds repeat (``--repeats``) so
drift in machine load hits every case alike. The last lines are
``extra_seconds_first=<median first - median untracked>`` and ``extra_seconds_existing=...``.
Targets (the tracking issue): first ≤ 3 s, existing ≤ 2 s.

``--worker`` also times the tracking worker alone: start → ready (importing MLflow, opening
or creating the store, creating the run) and ``finish`` (logging 30 epochs, artefacts).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIRST_BUDGET, EXISTING_BUDGET = 3.0, 2.0


def canon_run(out: Path, *overrides: str) -> float:
    """Wall seconds of one ``canon run`` process; exits if the run fails."""
    sets = [a for o in overrides for a in ("--set", o)]
    cmd = [sys.executable, "-m", "canonml", "run", "--template", "digits-mlp", "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(cmd + sets, cwd=out, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"canon run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    for line in (done.stdout + done.stderr).splitlines():
        if line.startswith("tracking:"):
            print(f"  warning from the run: {line}")
    return seconds


def rounds(repeats: int) -> tuple[list[float], list[float], list[float]]:
    off: list[float] = []
    first: list[float] = []
    existing: list[float] = []
    print(f"{'round':>5} {'untracked':>10} {'first':>8} {'existing':>9}")
    for r in range(1, repeats + 1):
        with tempfile.TemporaryDirectory(prefix="canon-track-bench-") as tmp:
            root = Path(tmp)
            uri = f"track.uri=sqlite:///{root / 'store' / 'mlflow.db'}"
            off.append(canon_run(root, "track=false"))
            first.append(canon_run(root, uri))
            if not (root / "store" / "mlflow.db").is_file():
                sys.exit("the tracked run created no database: is tracking wired into the run?")
            existing.append(canon_run(root, uri))
        print(f"{r:>5} {off[-1]:>10.2f} {first[-1]:>8.2f} {existing[-1]:>9.2f}")
    return off, first, existing


def worker_times(repeats: int) -> None:
    """Start → ready for a new and an existing store, and ``finish``, for the worker alone."""
    from canonml.spec.track import TrackSpec
    from canonml.track import MlflowTracker, run_record

    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1 / e, "val_accuracy": 0.9, "lr": 1e-3}
        for e in range(1, 31)
    ]
    print(f"{'worker':>8} {'store':>9} {'ready_s':>8} {'finish_s':>9}")
    for r in range(1, repeats + 1):
        with tempfile.TemporaryDirectory(prefix="canon-track-worker-") as tmp:
            root = Path(tmp)
            run_dir = root / "runs" / "bench" / "20260101-000000-0000"
            run_dir.mkdir(parents=True)
            (run_dir / "metrics.json").write_text('{"accuracy": 0.9}')
            for store in ("new", "existing"):
                tracker = MlflowTracker(TrackSpec(uri=f"sqlite:///{root}/mlflow.db"), cwd=root)
                start = time.perf_counter()
                tracker.start("bench")
                tracker.wait_ready(120)
                ready = time.perf_counter() - start
                record = run_record({"name": "bench"}, run_dir, history, {"accuracy": 0.9})
                start = time.perf_counter()
                warning = tracker.finish(record)
                finish = time.perf_counter() - start
                print(f"{r:>8} {store:>9} {ready:>8.2f} {finish:>9.2f}", warning or "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3, help="rounds of the three runs")
    p.add_argument("--worker", action="store_true", help="also time the worker alone")
    p.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = p.parse_args()
    if args.worker:
        worker_times(args.repeats)
    off, first, existing = rounds(args.repeats)
    base = statistics.median(off)
    extra_first = statistics.median(first) - base
    extra_existing = statistics.median(existing) - base
    print(f"{'median':>5} {base:>10.2f} {statistics.median(first):>8.2f}", end=" ")
    print(f"{statistics.median(existing):>9.2f}")
    print(f"extra_seconds_first={extra_first:.2f} (target <= {FIRST_BUDGET:g})")
    print(f"extra_seconds_existing={extra_existing:.2f} (target <= {EXISTING_BUDGET:g})")
    if args.check and (extra_first > FIRST_BUDGET or extra_existing > EXISTING_BUDGET):
        sys.exit(1)


if __name__ == "__main__":
    main()
