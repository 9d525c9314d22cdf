"""What a compressed variant is measured by: file sizes raw and zipped, non-zero
parameters, ONNX Runtime latency at batch 1 and 256, and the CPU features int8 speed
depends on."""

from __future__ import annotations

import platform
import statistics
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

# The instruction sets that decide whether int8 is faster than fp32 on a CPU: VNNI (int8
# dot products, AVX-512 or AVX), AMX (Sapphire Rapids' int8/bf16 tiles), AVX-512 and AVX2.
INT8_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16")
BATCHES = (1, 256)


def cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """The CPU's model name and which of ``INT8_FEATURES`` it has (None where unknown)."""
    found: dict[str, Any] = {"machine": platform.machine(), "model": platform.processor() or None}
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {**found, **{f: None for f in INT8_FEATURES}}
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features") and not flags:
            flags = set(value.split())
        elif key.strip() == "model name" and found["model"] in (None, "", found["machine"]):
            found["model"] = value.strip()
    return {**found, **{f: f in flags for f in INT8_FEATURES}}


def features_line(features: dict[str, Any]) -> str:
    """One line: ``CPU: <model>; int8-relevant: avx512_vnni yes, amx_int8 no, ...``."""
    parts = [
        f"{f} {'yes' if features.get(f) else ('?' if features.get(f) is None else 'no')}"
        for f in INT8_FEATURES
    ]
    return f"CPU: {features.get('model') or features.get('machine')}; " + ", ".join(parts)


def zipped_size(data: bytes) -> int:
    """The size of ``data`` deflated (level 9, as zip would store it)."""
    return len(zlib.compress(data, 9))


def parameter_counts(model: Any) -> tuple[int, int]:
    """(all, non-zero) parameters of a torch module."""
    total = nonzero = 0
    for p in model.parameters():
        total += p.numel()
        nonzero += int((p != 0).sum())
    return total, nonzero


def session(graph: bytes, threads: int) -> Any:
    """An ONNX Runtime CPU session over ``graph`` with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def latency_ms(sess: Any, x: np.ndarray, repeats: int) -> float:
    """The median wall time in ms of one ``sess.run`` on the batch ``x`` (3 warm-up runs)."""
    name = sess.get_inputs()[0].name
    for _ in range(3):
        sess.run(None, {name: x})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def batches_of(x: np.ndarray, sizes: tuple[int, ...] = BATCHES) -> dict[int, np.ndarray]:
    """Batches of each size from the rows of ``x``, repeated where it has fewer rows."""
    out = {}
    for n in sizes:
        rows = np.resize(np.arange(len(x)), n)
        out[n] = np.ascontiguousarray(x[rows], dtype=np.float32)
    return out


def run_graph(sess: Any, x: np.ndarray, batch: int = 1024) -> list[np.ndarray]:
    """Every output of ``sess`` over the rows of ``x``, in batches, concatenated."""
    name = sess.get_inputs()[0].name
    parts = [sess.run(None, {name: x[i : i + batch]}) for i in range(0, len(x), batch)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
