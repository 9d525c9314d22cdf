"""Where the seconds of ``canon run --template digits-mlp`` go, and the whole command's wall time.

Two measurements, each in fresh processes as a user would meet them:

1. ``phases``: one child imports what a run needs (torch, scikit-learn, matplotlib, onnx and
   torch's compiler stack, which ``torch.optim`` loads on its first step), timing each
   import, then runs the template through ``canonml.run`` and prints ``RunResult.phases``
   (data, train, evaluate, package, report, tracking). What the phases do not cover is the
   run's own bookkeeping (run directory, spec, JSON files).
2. ``wall``: ``canon run --template digits-mlp`` as a subprocess, ``--repeats`` times in one
   folder (the first run creates the tracking database, as a user's first run does), with
   tracking on and with ``--set track=false``; the median of each.

The last line is ``wall_median_tracked=<s>``; the target (issue 8) is ≤ 5.0 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

TARGET = 5.0

CHILD = r"""
import json, sys, time
start = time.perf_counter()
imports = {}
for name in ("torch", "torch._dynamo", "sklearn.metrics", "sklearn.model_selection",
             "sklearn.datasets", "matplotlib.figure", "matplotlib.backends.backend_agg",
             "onnx", "safetensors.torch", "canonml.pipeline"):
    t = time.perf_counter()
    __import__(name)
    imports[name] = time.perf_counter() - t
import canonml
t = time.perf_counter()
result = canonml.run("template:digits-mlp", out="runs", overrides=sys.argv[1:])
run = time.perf_counter() - t
print(json.dumps({"imports": imports, "phases": result.phases, "run": run,
                  "accuracy": result.metrics.get("accuracy"),
                  "tracked": result.tracking_run_id is not None}))
"""


def phases(track: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="canon-phases-") as tmp:
        args = [] if track else ["track=false"]
        done = subprocess.run(
            [sys.executable, "-c", CHILD, *args], cwd=tmp, capture_output=True, text=True
        )
    if done.returncode != 0:
        sys.exit(f"the phase run failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def wall(repeats: int, *sets: str) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory(prefix="canon-wall-") as tmp:
        for _ in range(repeats):
            cmd = [sys.executable, "-m", "canonml", "run", "--template", "digits-mlp"]
            cmd += [a for s in sets for a in ("--set", s)]
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if done.returncode != 0 or "warning" in done.stderr:
                sys.exit(f"canon run failed or warned:\n{done.stderr[-3000:]}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    measured = phases(track=True)
    print("imports (seconds, each after the ones above it):")
    imports: dict[str, float] = measured["imports"]  # type: ignore[assignment]
    for name, seconds in imports.items():
        print(f"  {name:<34} {seconds:6.2f}")
    print(f"  {'all':<34} {sum(imports.values()):6.2f}")
    print("phases of canonml.run after those imports (seconds):")
    done: dict[str, float] = measured["phases"]  # type: ignore[assignment]
    for name, seconds in done.items():
        print(f"  {name:<34} {seconds:6.2f}")
    print(f"  {'bookkeeping (run minus phases)':<34} {measured['run'] - sum(done.values()):6.2f}")  # type: ignore[operator]
    print(f"  {'whole run':<34} {measured['run']:6.2f}   accuracy {measured['accuracy']:.4f}")

    tracked = wall(args.repeats)
    untracked = wall(args.repeats, "track=false")
    print("canon run --template digits-mlp, wall seconds per run (one folder):")
    print(f"  tracked    {'  '.join(f'{t:.2f}' for t in tracked)}")
    print(f"  untracked  {'  '.join(f'{t:.2f}' for t in untracked)}")
    median = statistics.median(tracked)
    print(f"wall_median_untracked={statistics.median(untracked):.2f}")
    print(
        f"wall_median_tracked={median:.2f}  (target <= {TARGET}: "
        f"{'PASS' if median <= TARGET else 'FAIL'})"
    )


if __name__ == "__main__":
    main()
