"""DDP on this machine: `canon run --nproc 1` vs `--nproc 2` at the same global batch.

Writes MNIST-shaped IDX files (60,000 + 10,000 28×28 uint8 images of 10 classes, a noisy
class prototype each, close enough to each other that accuracy is not 1) and trains the
same MLP spec (dropout 0.2) with `canon run` in 1 and in 2 processes (torchrun, gloo, one
torch thread each) at global batch 256 with the same seed. Prints seconds per epoch (the
median over the epochs after the first), the test accuracy of each, and the largest gap
between their validation-loss curves.

On 2 cores two processes are not faster: each process's share of a batch is half as big,
the all-reduce of the gradients is added to every step, and both processes evaluate the
whole validation split. DDP here is about correctness (the same model as one process
trains); the speed comes with more cores or GPUs.

    python bench/ddp.py [--epochs 6] [--rows 60000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BATCH = 256


def write_idx(folder: Path, rows: int, test_rows: int, seed: int) -> None:
    """``train-*`` and ``t10k-*`` IDX pairs of noisy prototypes of 10 classes."""
    rng = np.random.default_rng(seed)
    # Prototypes close to each other under heavy noise: a task a model does not ace.
    prototypes = 128 + rng.normal(0, 6, (10, 28, 28))
    for part, n in (("train", rows), ("t10k", test_rows)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        noise = rng.normal(0, 60, (n, 28, 28))
        images = np.clip(prototypes[labels] + noise, 0, 255).astype(np.uint8)
        (folder / f"{part}-images-idx3-ubyte").write_bytes(
            b"\0\0\x08\x03" + struct.pack(">III", n, 28, 28) + images.tobytes()
        )
        (folder / f"{part}-labels-idx1-ubyte").write_bytes(
            b"\0\0\x08\x01" + struct.pack(">I", n) + labels.tobytes()
        )


def spec(data: Path, epochs: int) -> str:
    return f"""name: ddp-bench
task: classification
seed: 0
data:
  source: idx:{data}
  split: {{val: 0.05}}
  preprocess: {{scale: minmax}}
model: {{arch: mlp, hidden: [256, 128], dropout: 0.2}}
train:
  epochs: {epochs}
  batch_size: {BATCH}
  optimizer: {{name: adam, lr: 1.0e-3}}
  threads: 1
evaluate: {{ci: 0}}
track: false
"""


def run(spec_file: Path, nproc: int, out: Path) -> Path:
    cmd = [sys.executable, "-m", "canonml", "run", str(spec_file), "--nproc", str(nproc)]
    done = subprocess.run(
        [*cmd, "--out", str(out / f"n{nproc}")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"canon run --nproc {nproc} failed:\n{done.stderr[-3000:]}")
    (run_dir,) = sorted(p.parent for p in (out / f"n{nproc}").glob("*/*/spec.yaml"))
    return run_dir


def history(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "history.csv").open(encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--rows", type=int, default=60_000)
    p.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="canon-ddp-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        data = root / "data"
        data.mkdir(exist_ok=True)
        write_idx(data, args.rows, args.rows // 6, seed=0)
        spec_file = root / "spec.yaml"
        spec_file.write_text(spec(data, args.epochs), encoding="utf-8")
        results = {}
        for n in (1, 2):
            run_dir = run(spec_file, n, root)
            h = history(run_dir)
            later = [row["seconds"] for row in h[1:]] or [h[0]["seconds"]]
            acc = json.loads((run_dir / "metrics.json").read_text("utf-8"))["accuracy"]
            results[n] = {"seconds": statistics.median(later), "accuracy": acc, "history": h}
    one, two = results[1], results[2]
    gap = max(
        abs(a["val_loss"] - b["val_loss"]) / a["val_loss"]
        for a, b in zip(one["history"], two["history"], strict=True)
    )
    print(f"cores: {os.cpu_count()}  global batch {BATCH}  {args.rows} training rows")
    print(f"{'processes':<10} {'s/epoch':>9} {'test accuracy':>14}")
    for n, r in results.items():
        print(f"{n:<10} {r['seconds']:>9.3f} {r['accuracy']:>14.4f}")
    print(f"2 processes / 1: {two['seconds'] / one['seconds']:.2f}× the time per epoch")
    diff = abs(two["accuracy"] - one["accuracy"]) * 100
    print(f"test accuracy difference: {diff:.2f} points; val-loss curves within {gap:.1%}")
    verdict = "PASS" if diff <= 0.5 else "FAIL"
    print(f"{verdict} 2-process test accuracy within 0.5 points of 1-process: {diff:.2f}")


if __name__ == "__main__":
    main()
