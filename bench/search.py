"""Hyper-parameter search on `digits-mlp`: 20 Optuna trials with the median pruner, timed,
and the final run's test accuracy beside the default template's.

Runs `canon search` on the `digits-mlp` template with a `search` section over the
learning rate, the hidden layers and the dropout (20 trials, TPE after 5 random ones, the
median pruner after 3 warm-up epochs), then trains the template unchanged. Prints the
search's seconds (trials only, and with the final run), finished and pruned trials, the best
trial's parameters, and one PASS/FAIL line per bar of issue 12: the search ≤ 60 s and the
final test accuracy ≥ the template's − 0.5 points.

    python bench/search.py [--trials 20] [--jobs 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

SEARCH = (
    "search={trials: %d, pruner: median, startup_trials: 5, warmup_epochs: 3, params: {"
    "train.optimizer.lr: {loguniform: [1.0e-3, 3.0e-2]}, "
    "model.hidden: {choice: [[64], [128], [256, 128]]}, "
    "model.dropout: {uniform: [0.0, 0.5]}}}"
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    args = p.parse_args()
    import canonml
    from canonml.search import search

    with tempfile.TemporaryDirectory(prefix="canon-search-") as tmp:
        root = args.keep or Path(tmp)
        track = f"track={{uri: 'sqlite:///{root / 'mlflow.db'}', experiment: search-bench}}"
        started = time.perf_counter()
        result = search(
            "template:digits-mlp",
            root,
            overrides=[SEARCH % args.trials, track, "evaluate.ci=0"],
            jobs=args.jobs,
        )
        total = time.perf_counter() - started
        template = canonml.run("template:digits-mlp", root, overrides=["track=false"])
    states = [t["state"] for t in result.trials]
    best = next(t for t in result.trials if t["number"] == result.chosen)
    final = result.run.metrics["accuracy"]
    default = template.metrics["accuracy"]
    print(
        f"{len(states)} trials: {states.count('COMPLETE')} finished, "
        f"{states.count('PRUNED')} pruned, {states.count('FAIL')} failed"
    )
    print(f"search {result.seconds:.1f} s; with the final run {total:.1f} s")
    print(f"best trial {result.chosen}: {json.dumps(best['params'])} val {best['values'][0]:.4f}")
    print(f"final run test accuracy {final:.4f}; default template {default:.4f}")
    ok = result.seconds <= 60
    print(f"{'PASS' if ok else 'FAIL'} {args.trials}-trial search ≤ 60 s: {result.seconds:.1f} s")
    diff = (final - default) * 100
    print(f"{'PASS' if diff >= -0.5 else 'FAIL'} final ≥ template − 0.5 points: {diff:+.2f}")


if __name__ == "__main__":
    main()
