"""The GAN templates' figures (issue 9): per template and seed, FD, FD / FD(noise), whether it
is below the fitted-Gaussian baseline, class coverage, confidence, conditional accuracy and
the wall seconds of the whole ``canon run`` (a fresh process each, untracked).

Targets: digits-gan fd_ratio ≤ 0.15, digits-dcgan and digits-cgan ≤ 0.10, all three below
the Gaussian baseline with coverage 1.0 (10/10 classes); digits-cgan conditional accuracy
≥ 0.95; each run ≤ 120 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATES = {"digits-gan": 0.15, "digits-dcgan": 0.10, "digits-cgan": 0.10}


def run(template: str, seed: int, out: Path) -> tuple[dict[str, float], float]:
    """One ``canon run --template`` in a fresh process; its metrics and wall seconds."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "canonml", "run", "--template", template]
    command += ["--seed", str(seed), "--set", "track=false", "--out", str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{template} seed {seed} failed:\n{proc.stderr}")
    run_dir = Path(proc.stdout.split("run directory:")[1].split()[0])
    return json.loads((run_dir / "metrics.json").read_text()), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--templates", nargs="+", default=list(TEMPLATES))
    args = parser.parse_args()
    print(
        f"{'template':<13} {'seed':>4} {'fd':>7} {'floor':>6} {'gauss':>6} {'noise':>6} "
        f"{'ratio':>6} {'target':>6} {'cover':>5} {'conf':>5} {'c_acc':>5} {'wall s':>6}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for template in args.templates:
            for seed in args.seeds:
                m, seconds = run(template, seed, Path(tmp))
                ok = m["fd_ratio"] <= TEMPLATES[template] and m["fd"] < m["fd_gaussian"]
                acc = m.get("conditional_accuracy")
                shown = "–" if acc is None else f"{acc:.3f}"
                print(
                    f"{template:<13} {seed:>4} {m['fd']:>7.2f} {m['fd_floor']:>6.2f} "
                    f"{m['fd_gaussian']:>6.1f} {m['fd_noise']:>6.1f} {m['fd_ratio']:>6.3f} "
                    f"{'ok' if ok else 'MISS':>6} {m['coverage']:>5.2f} {m['confidence']:>5.3f} "
                    f"{shown:>5} {seconds:>6.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
