"""The reference Fréchet distances on digits: floor, fitted-Gaussian baseline, noise ceiling.

For each seed (canonml's seeded 70/10/20 split of ``sklearn:digits``, stratified by class
unless ``--unstratified``, and the reference classifier's training seed) this trains the
reference classifier into a fresh cache folder, times it, and prints its held-out accuracy,
its sha256, N and the three FDs (``canonml.evaluate.fidelity.fd_baselines``). The anchors
from another implementation are 3.1 / 48 / 216.6 (issue 9); the ratios Gaussian/floor and
noise/Gaussian matter most.

Run: ``.venv/bin/python bench/fd_reference.py --seeds 0,1,2,3,4`` (about 5 s a seed).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
from sklearn.datasets import load_digits

from canonml.data.split import split_indices
from canonml.evaluate.fidelity import fd_baselines
from canonml.evaluate.reference import REFERENCE_VERSION, reference_classifier
from canonml.io import sha256_bytes
from canonml.spec.data import SplitSpec

ANCHORS = {"floor": 3.1, "gaussian": 48.0, "noise": 216.6}


def one_seed(seed: int, stratify: bool) -> dict[str, float]:
    data = load_digits()
    x = data.data.reshape(-1, 1, 8, 8).astype(np.float32)  # raw grey levels 0..16
    y = data.target.astype(np.int64)
    split = SplitSpec(val=0.1, test=0.2, stratify=stratify)
    train, _, test = split_indices(len(x), y, split, seed, has_test=False)
    # Prepared.fingerprint of image data: sha256 of the raw training pixels, then labels.
    fingerprint = sha256_bytes(x[train].tobytes(), y[train].tobytes())
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        ref = reference_classifier(
            x[train],
            y[train],
            fingerprint,
            pixel_max=16.0,
            x_check=x[test],
            y_check=y[test],
            cache_dir=cache,
            seed=seed,
        )
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        fd = fd_baselines(ref, x[train], x[test], seed=seed)
        fd_seconds = time.perf_counter() - start
    print(
        f"seed={seed} accuracy={ref.accuracy:.4f} ({ref.checked_on}) "
        f"train_s={seconds:.2f} fd_s={fd_seconds:.2f} n={fd['n']} n_test={fd['n_test']} "
        f"floor={fd['floor']:.2f} gaussian={fd['gaussian']:.2f} noise={fd['noise']:.2f} "
        f"gaussian/floor={fd['gaussian'] / fd['floor']:.1f} "
        f"noise/gaussian={fd['noise'] / fd['gaussian']:.2f} sha256={ref.sha256[:16]}…",
        flush=True,
    )
    return {"train_s": seconds, **{k: fd[k] for k in ANCHORS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    parser.add_argument(
        "--unstratified", action="store_true", help="split without keeping class shares"
    )
    args = parser.parse_args()
    print(
        f"reference_version={REFERENCE_VERSION} floor_split=train vs_split=test "
        f"stratified={not args.unstratified}"
    )
    rows = [one_seed(int(s), not args.unstratified) for s in args.seeds.split(",")]
    for key in ("train_s", *ANCHORS):
        values = [r[key] for r in rows]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        anchor = f" (anchor {ANCHORS[key]})" if key in ANCHORS else ""
        print(f"{key}_mean={statistics.mean(values):.2f} ±{spread:.2f}{anchor}")


if __name__ == "__main__":
    main()
