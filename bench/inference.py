"""Inference latency of a package: eager PyTorch vs ONNX Runtime fp32 vs ONNX Runtime int8.

For the ``digits-cnn`` and ``digits-mlp`` templates, one quick untracked run each
(``train.epochs=10`` by default, ``compress={quantize: int8}``) makes the package
(``package/model.onnx``) and its int8 variant (``compressed/int8/model.onnx``). Timed on
the same raw inputs (the sklearn digits images, pixels 0..16, as the graph takes them) at
batch 1 and 256, all with one intra-op thread:

- **eager**: the model rebuilt from the package (``spec.yaml``, ``weights.safetensors``,
  the ``canon.json`` signature) behind ``inference_module``, i.e. the same computation as
  the ONNX graph (in-graph scaling → model → softmax and argmax), under
  ``torch.inference_mode`` with ``torch.set_num_threads(1)``;
- **ort-fp32** / **ort-int8**: ONNX Runtime CPU sessions (``canonml.compress.measure.session``,
  1 intra-op thread).

Each (runtime, batch) is timed ``--repeats`` calls (3 warm-up) per round; rounds
(``--rounds``) alternate the runtimes in a rotating order so drift hits all alike; the
figure is the median over rounds of each round's median, in ms. A sanity line gives the
largest probability difference of ort-fp32 from eager and the share of labels int8 agrees
with fp32 on, over all 1,797 images.

**Target: ORT fp32 / eager ≤ 0.5 at batch 1.** Also printed: ORT int8 / fp32 at batch 1
and 256 (below 1: int8 is faster), and the CPU features int8 speed depends on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TEMPLATES = ("digits-cnn", "digits-mlp")
RUNTIMES = ("eager", "ort-fp32", "ort-int8")
TARGET = 0.5  # ORT fp32 / eager at batch 1


@dataclass
class Subject:
    """One template's trained package: a callable per runtime and the inputs per batch."""

    template: str
    accuracy: float
    train_s: float
    calls: dict[str, Callable[[np.ndarray], Any]]
    batches: dict[int, np.ndarray]
    images: np.ndarray  # every digit, the graph's input shape
    sanity: str = ""
    ms: dict[tuple[str, int], list[float]] = field(default_factory=dict)


def train(template: str, out: Path, epochs: int) -> tuple[Path, float, float]:
    """(run folder, test accuracy, seconds) of one quick untracked run with an int8 variant."""
    import canonml

    start = time.perf_counter()
    result = canonml.run(
        f"template:{template}",
        out=out,
        overrides=[
            "track=false",
            "evaluate.ci=0",
            f"train.epochs={epochs}",
            "compress={quantize: int8, repeats: 10}",
        ],
    )
    return result.run_dir, float(result.metrics["accuracy"]), time.perf_counter() - start


def eager_module(package: Path) -> Any:
    """The package's model rebuilt in PyTorch behind the graph's preprocessing and head."""
    from canonml.package.export import inference_module
    from canonml.package.rebuild import rebuild_model
    from canonml.spec import validate_spec
    from canonml.spec.load import parse_spec_text
    from canonml.tasks import get_task
    from canonml.tasks.base import StandardGraphTask

    signature = json.loads((package / "canon.json").read_text(encoding="utf-8"))["signature"]
    spec_text = (package / "spec.yaml").read_text(encoding="utf-8")
    weights = (package / "weights.safetensors").read_bytes()
    model = rebuild_model(spec_text, weights, signature)
    task = get_task(validate_spec(parse_spec_text(spec_text, "spec.yaml")))
    assert isinstance(task, StandardGraphTask), f"{task} has no standard graph"
    return inference_module(model, signature, task)


def digits_inputs(package: Path) -> np.ndarray:
    """All 1,797 sklearn digits as raw float32 pixels (0..16) in the graph's input shape."""
    from sklearn.datasets import load_digits

    signature = json.loads((package / "canon.json").read_text(encoding="utf-8"))["signature"]
    shape = [int(d) for d in signature["inputs"][0]["shape"][1:]]
    x = load_digits().data.astype(np.float32)  # (1797, 64), row-major 8×8
    return np.ascontiguousarray(x.reshape(-1, *shape))


def prepare(template: str, out: Path, epochs: int) -> Subject:
    import torch

    from canonml.compress import measure

    run_dir, accuracy, seconds = train(template, out, epochs)
    package = run_dir / "package"
    module = eager_module(package)
    fp32 = measure.session((package / "model.onnx").read_bytes(), 1)
    int8 = measure.session((run_dir / "compressed" / "int8" / "model.onnx").read_bytes(), 1)

    def eager(x: np.ndarray) -> Any:
        with torch.inference_mode():
            return module(torch.from_numpy(x))

    def ort(sess: Any) -> Callable[[np.ndarray], Any]:
        name = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {name: x})

    images = digits_inputs(package)
    calls = {"eager": eager, "ort-fp32": ort(fp32), "ort-int8": ort(int8)}
    subject = Subject(template, accuracy, seconds, calls, measure.batches_of(images), images)
    subject.sanity = sanity(subject)
    return subject


def sanity(s: Subject) -> str:
    """Eager vs ORT fp32 probabilities, int8 vs fp32 labels, over every image."""
    proba_eager, _ = s.calls["eager"](s.images)
    proba_fp32, label_fp32 = s.calls["ort-fp32"](s.images)
    _, label_int8 = s.calls["ort-int8"](s.images)
    diff = float(np.abs(proba_eager.numpy() - proba_fp32).max())
    agree = float((label_int8 == label_fp32).mean())
    return f"max |p_eager - p_fp32| = {diff:.1e}; int8 labels = fp32 labels on {agree:.2%}"


def latency_ms(call: Callable[[np.ndarray], Any], x: np.ndarray, repeats: int) -> float:
    """Median wall ms of one call on ``x`` (3 warm-up calls), as ``measure.latency_ms``."""
    for _ in range(3):
        call(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def measure_all(subjects: list[Subject], rounds: int, repeats: int) -> None:
    """Rounds of every (model, runtime, batch), the order rotating by round."""
    cells = [(s, rt, b) for s in subjects for rt in RUNTIMES for b in s.batches]
    for r in range(rounds):
        shift = r % len(cells)
        for s, rt, b in cells[shift:] + cells[:shift]:
            s.ms.setdefault((rt, b), []).append(latency_ms(s.calls[rt], s.batches[b], repeats))


def report(subjects: list[Subject]) -> list[str]:
    """Print the table and ratios; return the PASS/FAIL lines."""
    from canonml.compress.measure import BATCHES

    med = {
        (s.template, rt, b): statistics.median(s.ms[(rt, b)])
        for s in subjects
        for rt in RUNTIMES
        for b in BATCHES
    }
    head = " ".join(f"{f'b{b} ms':>10}" for b in BATCHES)
    print(f"\n{'model':<11} {'runtime':<9} {head} {'b256 µs/row':>12}")
    for s in subjects:
        for rt in RUNTIMES:
            row = " ".join(f"{med[(s.template, rt, b)]:>10.4f}" for b in BATCHES)
            per_row = med[(s.template, rt, BATCHES[-1])] * 1000 / BATCHES[-1]
            print(f"{s.template:<11} {rt:<9} {row} {per_row:>12.2f}")
    print(
        f"\n{'model':<11} {'fp32/eager b1':>14} {'fp32/eager b256':>16} "
        f"{'int8/fp32 b1':>13} {'int8/fp32 b256':>15}"
    )
    verdicts = []
    for s in subjects:
        t = s.template

        def ratio(a: str, b: str, n: int, t: str = t) -> float:
            return med[(t, a, n)] / med[(t, b, n)]

        fe1 = ratio("ort-fp32", "eager", 1)
        print(
            f"{t:<11} {fe1:>14.3f} {ratio('ort-fp32', 'eager', 256):>16.3f} "
            f"{ratio('ort-int8', 'ort-fp32', 1):>13.3f} {ratio('ort-int8', 'ort-fp32', 256):>15.3f}"
        )
        verdicts.append(
            f"{'PASS' if fe1 <= TARGET else 'FAIL'} [{t}] ORT fp32 / eager at batch 1 ≤ "
            f"{TARGET}: {fe1:.3f}"
        )
    return verdicts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--templates", nargs="+", choices=TEMPLATES, default=list(TEMPLATES))
    p.add_argument("--epochs", type=int, default=10, help="train.epochs of each quick run")
    p.add_argument("--rounds", type=int, default=7, help="alternating rounds")
    p.add_argument("--repeats", type=int, default=100, help="timed calls per cell per round")
    p.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    args = p.parse_args()

    import onnxruntime as ort
    import torch

    from canonml.compress.measure import cpu_features, features_line

    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        subjects = []
        for template in args.templates:
            subjects.append(prepare(template, out, args.epochs))
            s = subjects[-1]
            print(f"{template}: trained in {s.train_s:.1f} s, test accuracy {s.accuracy:.4f}")
            print(f"  sanity: {s.sanity}")
        torch.set_num_threads(1)  # after the runs: training may pick its own thread count
        print(
            f"torch {torch.__version__} (1 thread, inference_mode), onnxruntime "
            f"{ort.__version__} (1 intra-op thread); rounds={args.rounds}, "
            f"repeats={args.repeats}"
        )
        print(features_line(cpu_features()))
        measure_all(subjects, args.rounds, args.repeats)
        verdicts = report(subjects)
    print()
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    main()
