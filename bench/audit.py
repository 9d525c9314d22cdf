"""Membership inference on ``digits-mlp`` with and without DP-SGD, over seeds.

For each of ``--seeds`` (5) seeds: the template trained plainly and at ε = ``--epsilon`` (3),
each audited (``audit: {shadows: 4}``): the loss attack's and the LiRA-style attack's ROC-AUC.
Prints the medians. **Targets (issue 11): the DP model's median loss-attack AUC at least
0.01 below the non-DP model's and ≤ 0.54 [non-DP 0.546, DP 0.530]; LiRA's AUC on the non-DP
model ≥ the loss attack's.**
Run: ``.venv/bin/python bench/audit.py`` (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import canonml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, default=3.0)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--template", default="digits-mlp")
    args = parser.parse_args()
    found: dict[str, dict[str, list[float]]] = {"no DP": {}, f"DP ε={args.epsilon:g}": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for name, extra in (
                ("no DP", []),
                (f"DP ε={args.epsilon:g}", [f"privacy.dp.epsilon={args.epsilon}"]),
            ):
                sets = [f"seed={seed}", "track=false", "audit.shadows=4", *extra]
                result = canonml.run(f"template:{args.template}", Path(tmp), overrides=sets)
                audit = json.loads((result.run_dir / "audit.json").read_text("utf-8"))
                for attack, r in audit["attacks"].items():
                    found[name].setdefault(attack, []).append(r["auc"])
                found[name].setdefault("accuracy", []).append(result.metrics["accuracy"])
    print(f"{args.template}, {args.seeds} seeds: median (all)")
    for name, values in found.items():
        print(
            f"  {name:10s} "
            + "  ".join(
                f"{k} {statistics.median(v):.4f} ({', '.join(f'{x:.3f}' for x in v)})"
                for k, v in values.items()
            )
        )


if __name__ == "__main__":
    main()
