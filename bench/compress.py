"""Compression on `digits-cnn`, measured on this machine and checked against issue 12's bars.

Trains the `digits-cnn` template once with every compression variant (`canon run
--template digits-cnn --set compress=...`): unstructured pruning at 50% and 80%,
structured pruning at 50%, static int8, and a distilled student (channels [16, 16], dense
[32], batch norm: 15% of the teacher's parameters) beside the same student trained alone.
Prints the run's compression table (file size raw and zipped, parameters, ONNX Runtime
latency at batch 1 and 256, test accuracy), the CPU's int8 features, and one PASS/FAIL line
per bar:

- static int8: file ≤ 30% of fp32, accuracy loss ≤ 0.5 points, batch-1 latency ≤ 1.2× fp32;
- unstructured pruning: the raw file no smaller (never claimed), the zipped one smaller;
- structured pruning at 50%: the raw file ≥ 1.8× smaller;
- the student: ≤ 25% of the teacher's parameters, within 1 point of the teacher.

    python bench/compress.py [--epochs 15] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

COMPRESS = (
    "compress={prune: [0.5, 0.8, {amount: 0.5, structured: true}], quantize: int8, "
    "distill: {student: {arch: cnn, channels: [16, 16], dense: [32], batch_norm: true}}}"
)


def table(result: dict[str, Any], headline: str) -> None:
    cols = ("variant", "kB", "zip kB", "nonzero/params", "b1 ms", "b256 ms", headline)
    print(
        f"{cols[0]:<22}{cols[1]:>8}{cols[2]:>8}{cols[3]:>18}{cols[4]:>8}{cols[5]:>9}{cols[6]:>10}"
    )
    for r in result["variants"]:
        print(
            f"{r['variant']:<22}{r['file_bytes'] / 1e3:>8.1f}{r['zipped_bytes'] / 1e3:>8.1f}"
            f"{r['nonzero_parameters']:>9}/{r['parameters']:<8}{r['latency_ms_b1']:>8.3f}"
            f"{r['latency_ms_b256']:>9.2f}{r[headline]:>10.4f}  {r['verdict']}"
        )


def verdicts(rows: dict[str, dict[str, Any]]) -> list[str]:
    base, lines = rows["original"], []

    def line(ok: bool, text: str) -> None:
        lines.append(f"{'PASS' if ok else 'FAIL'} {text}")

    q = rows["int8"]
    size, loss = q["file_bytes"] / base["file_bytes"], base["accuracy"] - q["accuracy"]
    slow = q["latency_ms_b1"] / base["latency_ms_b1"]
    line(size <= 0.30, f"static int8 file ≤ 30% of fp32: {size:.1%}")
    line(loss <= 0.005, f"static int8 accuracy loss ≤ 0.5 points: {loss * 100:.2f}")
    line(slow <= 1.2, f"static int8 batch-1 latency ≤ 1.2× fp32: {slow:.2f}×")
    for name in ("pruned-50", "pruned-80"):
        p = rows[name]
        raw, zipped = base["file_bytes"] / p["file_bytes"], base["zipped_bytes"] / p["zipped_bytes"]
        honest = "smaller file" not in p["verdict"]
        line(
            honest and raw < 1.05,
            f"{name}: raw {raw:.2f}× (not claimed: {honest}), zipped {zipped:.2f}×",
        )
    s = rows["pruned-structured-50"]
    raw = base["file_bytes"] / s["file_bytes"]
    line(raw >= 1.8, f"structured 50% raw file ≥ 1.8× smaller: {raw:.2f}×")
    d, alone = rows["distilled"], rows["student-alone"]
    share = d["parameters"] / base["parameters"]
    gap = (base["accuracy"] - d["accuracy"]) * 100
    line(share <= 0.25, f"student ≤ 25% of the teacher's parameters: {share:.1%}")
    line(
        gap <= 1.0,
        f"distilled student within 1 point of the teacher: {gap:.2f} "
        f"(student alone {alone['accuracy']:.4f}, distilled {d['accuracy']:.4f})",
    )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=None, help="train.epochs (default: template)")
    p.add_argument("--keep", type=Path, default=None, help="keep the run in this folder")
    args = p.parse_args()
    import canonml

    sets = ["track=false", COMPRESS]
    sets += [f"train.epochs={args.epochs}"] if args.epochs else []
    with tempfile.TemporaryDirectory(prefix="canon-compress-") as tmp:
        run = canonml.run("template:digits-cnn", args.keep or tmp, overrides=sets)
        result = json.loads((run.run_dir / "compression.json").read_text("utf-8"))
    cpu = result["cpu"]
    print(f"cpu int8 features: {json.dumps(cpu)}  threads: {result['threads']}")
    table(result, "accuracy")
    for v in verdicts({r["variant"]: r for r in result["variants"]}):
        print(v)


if __name__ == "__main__":
    main()
