"""Whole ``canon run`` on a large CSV: seconds and peak RSS beside pyarrow reading the file.

For each size (10k, 100k, 1M rows by default) a seeded table of 20 numeric and 5
categorical columns (3, 12, 40, 75 and 100 categories, so the one-hot input is 250 wide:
about 1 GB of float32 at 1M rows), a few percent of missing cells and a three-class target
is written once (1M rows: about 188 MB) and reused. Then, each in a fresh process:

- ``pyarrow``: ``pyarrow.csv.read_csv`` of the file (the floor for reading it);
- ``canon run``: the whole CLI with ``train.epochs: 1``, an MLP with ``hidden: [32]`` and
  ``track: false`` — read, split, preprocess, train, evaluate, report, package.

One line per size. Target at 1M rows: ``canon run`` ≤ 30 s and ≤ 3.0 GB peak RSS.
``--profile`` also writes ``canon-<rows>.prof`` (cProfile of the run) beside the data.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

NUMERIC = 20
CATEGORIES = (3, 12, 40, 75, 100)
CLASSES = ("low", "mid", "high")
MISSING = 0.03  # share of empty cells in every other numeric and in two categorical columns

# A fresh interpreter runs ``cmd`` and reports the peak RSS of that child alone.
MEASURE = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
s = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"s": s, "rss": rss, "rc": rc.returncode, "err": rc.stderr[-2000:]}))
"""
READ = "import pyarrow.csv as c, sys; c.read_csv(sys.argv[1])"


def write_table(path: Path, rows: int, seed: int) -> None:
    """A seeded table whose target depends on a few numeric and categorical columns."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    cols: dict[str, pa.Array] = {}
    score = np.zeros(rows)
    for j in range(NUMERIC):
        v = rng.normal(0, 1, rows)
        score += v * (1.0 if j < 4 else 0.0)
        scaled = np.round(v * 10 ** (j % 4), 5 - j % 4)  # 0.12345, 12.345, 1234.5
        mask = (rng.random(rows) < MISSING) if j % 2 else None
        cols[f"x{j:02d}"] = pa.array(scaled, mask=mask).cast(pa.string())
    for j, k in enumerate(CATEGORIES):
        codes = rng.integers(0, k, rows)
        score += (codes % 3 - 1) * 0.5 * (j < 2)
        names = np.array([f"c{j}_{i}" for i in range(k)])
        mask = (rng.random(rows) < MISSING) if j >= 3 else None
        cols[f"cat{j}"] = pa.array(names[codes], mask=mask)
    edges = np.quantile(score, [1 / 3, 2 / 3])
    cols["label"] = pa.array(np.array(CLASSES)[np.searchsorted(edges, score)])
    tmp = path.with_suffix(".tmp")
    pacsv.write_csv(pa.table(cols), tmp, pacsv.WriteOptions(quoting_style="none"))
    tmp.replace(path)


def measure(cmd: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(out.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result['err']}")
    return result


def spec_for(csv: Path, rows: int) -> dict[str, object]:
    return {
        "name": f"csv-scale-{rows}",
        "data": {"source": f"csv:{csv}", "target": "label"},
        "model": {"arch": "mlp", "hidden": [32]},
        "train": {"epochs": 1},
        "track": False,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "canon-bench")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="cProfile each canon run")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    for rows in args.rows:
        csv = args.dir / f"table-{rows}-{args.seed}.csv"
        if not csv.is_file():
            write_table(csv, rows, args.seed)
        spec = args.dir / f"spec-{rows}.json"  # JSON is YAML
        spec.write_text(json.dumps(spec_for(csv, rows)), encoding="utf-8")
        read = measure([sys.executable, "-c", READ, str(csv)])
        profile = ["-m", "cProfile", "-o", str(args.dir / f"canon-{rows}.prof")]
        canon = [sys.executable, *(profile if args.profile else []), "-m", "canonml", "run"]
        with tempfile.TemporaryDirectory() as out:
            run = measure([*canon, str(spec), "--out", out])
        print(
            f"rows={rows:>9,}  file={os.path.getsize(csv) / 1e6:6.1f} MB  "
            f"canon_run={run['s']:5.1f} s {run['rss'] / 1e9:5.2f} GB  "
            f"pyarrow_read={read['s']:5.2f} s {read['rss'] / 1e9:5.2f} GB",
            flush=True,
        )


if __name__ == "__main__":
    main()
