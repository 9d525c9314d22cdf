"""`train.device: cuda` against `cpu` on a GPU machine: samples/s and the same-seed accuracy.

Trains two workloads with `canonml.run` on CUDA and on the CPU, same spec and seed:

- `digits-cnn` (the template, unchanged);
- the MNIST-shaped MLP of `bench/ddp.py` (60,000 28×28 IDX images written to a temporary
  folder, an MLP 784 → 256 → 128 → 10 at batch 256).

Prints, per workload and device, training samples per second (training rows × epochs over
the seconds the epochs took, from `history.csv`), the test accuracy, and the ratio of the
samples/s. On a machine without CUDA it says so and exits 1 (there is nothing to compare).
Also runs fp32 and bf16 autocast on CUDA for the MLP.

    python bench/gpu.py [--epochs N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from ddp import spec as mlp_spec  # noqa: E402
from ddp import write_idx  # noqa: E402


def measure(source: Any, out: Path, sets: list[str]) -> dict[str, float]:
    import canonml

    run = canonml.run(source, out, overrides=["track=false", "evaluate.ci=0", *sets])
    train_rows = _train_rows(run.run_dir)
    seconds = sum(h["seconds"] for h in run.history)
    return {
        "samples_per_s": train_rows * len(run.history) / seconds,
        "accuracy": run.metrics["accuracy"],
        "seconds": seconds,
    }


def _train_rows(run_dir: Path) -> int:
    import json

    data = json.loads((run_dir / "data.json").read_text("utf-8"))
    return int(data["sizes"]["train"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=None, help="train.epochs (default: spec's)")
    args = p.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device on this machine: nothing to compare (run it where one is)")
        sys.exit(1)
    print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    epochs = [f"train.epochs={args.epochs}"] if args.epochs else []
    with tempfile.TemporaryDirectory(prefix="canon-gpu-") as tmp:
        root = Path(tmp)
        data = root / "idx"
        data.mkdir()
        write_idx(data, 60_000, 10_000, seed=0)
        spec_file = root / "mlp.yaml"
        spec_file.write_text(mlp_spec(data, args.epochs or 5), encoding="utf-8")
        cases = [
            ("digits-cnn", "template:digits-cnn", []),
            ("mnist-mlp", str(spec_file), []),
            ("mnist-mlp bf16", str(spec_file), ["train.precision=bf16"]),
        ]
        print(f"{'workload':<16}{'device':<7}{'samples/s':>12}{'test acc':>10}{'train s':>9}")
        for name, source, sets in cases:
            found = {}
            for device in ("cuda", "cpu"):
                if "bf16" in name and device == "cpu":
                    continue
                r = measure(
                    source, root / name / device, [f"train.device={device}", *epochs, *sets]
                )
                found[device] = r
                print(
                    f"{name:<16}{device:<7}{r['samples_per_s']:>12.0f}{r['accuracy']:>10.4f}"
                    f"{r['seconds']:>9.1f}"
                )
            if "cpu" in found:
                ratio = found["cuda"]["samples_per_s"] / found["cpu"]["samples_per_s"]
                diff = abs(found["cuda"]["accuracy"] - found["cpu"]["accuracy"]) * 100
                print(
                    f"  cuda / cpu: {ratio:.1f}× samples/s; accuracy differs by {diff:.2f} points"
                )


if __name__ == "__main__":
    main()
