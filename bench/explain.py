"""The explain stage's two checks for every method on ``breast-cancer`` and ``digits-cnn``.

Each template is trained once (its own settings); then each Captum method attributes the
predicted class's probability on 200 test examples and the deletion test (areas under the
probability curve, attributed vs random order, Wilcoxon p) and the randomisation check (mean
Spearman ρ, trained vs re-initialised, signed and of the magnitudes) are printed, with the
seconds each method took. **Target (issue 11): both checks hold for integrated gradients on
both templates.**
Run: ``.venv/bin/python bench/explain.py`` (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import canonml
from canonml.errors import CanonError
from canonml.spec.explain import METHODS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", default="breast-cancer,digits-cnn")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from canonml.data.prepare import prepare
    from canonml.evaluate.explain import run_explain
    from canonml.models.weights import load_trained
    from canonml.spec import load_spec
    from canonml.tasks import get_task

    header = (
        f"{'template':<14} {'method':<21} {'del. area':>9} {'random':>7} {'p':>9} "
        f"{'ρ signed':>8} {'ρ |a|':>6} {'deletion':>8} {'random.':>8} {'s':>5}"
    )
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for template in args.templates.split(","):
            sets = [f"seed={args.seed}", "track=false"]
            result = canonml.run(f"template:{template}", Path(tmp), overrides=sets)
            accuracy = result.metrics["accuracy"]
            for method in METHODS:
                spec = load_spec(result.run_dir / "spec.yaml", [f"explain.method={method}"])
                task = get_task(spec)
                data, _ = prepare(spec, task)
                io = task.model_io(data.input_shape, data.label_names, data.preprocess)
                weights = (result.run_dir / "model.safetensors").read_bytes()
                model = load_trained(spec.model, io, weights, "model.safetensors", CanonError)
                start = time.perf_counter()
                e = run_explain(spec, task, model, data, None)
                seconds = time.perf_counter() - start
                d, r = e["deletion"], e["randomisation"]
                print(
                    f"{template:<14} {method:<21} {d['area_attributed']:>9.3f} "
                    f"{d['area_random']:>7.3f} {d['p_value']:>9.2g} {r['mean_spearman']:>8.3f} "
                    f"{r['mean_spearman_abs']:>6.3f} {'holds' if d['holds'] else 'FAILS':>8} "
                    f"{'holds' if r['holds'] else 'FAILS':>8} {seconds:>5.1f}"
                )
            print(f"{template}: test accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
