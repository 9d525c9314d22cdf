"""A served model: an opened package's signature, its ONNX Runtime session and OIP metadata.

A text classifier (a signature with a ``text`` entry) is served as a model of one BYTES
input ``text``: ``canonml.serve.text`` turns its strings into the graph's token inputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from canonml.errors import CanonError
from canonml.serve.text import INPUT as TEXT_INPUT
from canonml.serve.text import TextInput

# OIP v2 tensor datatypes and their numpy dtypes. BYTES (strings) is not a numeric tensor: a
# signature cannot declare it; only a text classifier's ``text`` input is one.
BYTES = "BYTES"
DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(np_name)
    for name, np_name in {
        "BOOL": "bool",
        "UINT8": "uint8",
        "UINT16": "uint16",
        "UINT32": "uint32",
        "UINT64": "uint64",
        "INT8": "int8",
        "INT16": "int16",
        "INT32": "int32",
        "INT64": "int64",
        "FP16": "float16",
        "FP32": "float32",
        "FP64": "float64",
    }.items()
}


class PackageLike(Protocol):
    """What the server needs from ``canonml.package.reader.open_package``."""

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> Path: ...  # a language model's generator is opened from here

    @property
    def manifest(self) -> dict[str, Any]: ...

    @property
    def signature(self) -> dict[str, Any]: ...

    def session(self, threads: int = 1) -> Any: ...

    def read(self, name: str) -> bytes: ...  # a text classifier's tokenizer.json


@dataclass(frozen=True)
class TensorSpec:
    """One input or output as the model metadata lists it; ``-1`` marks a free dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(object) if self.datatype == BYTES else DTYPES[self.datatype]

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _tensor(entry: dict[str, Any], where: str) -> TensorSpec:
    try:
        spec = TensorSpec(str(entry["name"]), str(entry["datatype"]), tuple(entry["shape"]))
    except (KeyError, TypeError) as e:
        raise CanonError(f"{where}: needs name, datatype and shape, got {entry!r}") from e
    if spec.datatype not in DTYPES:
        raise CanonError(f"{where}: datatype {spec.datatype!r} cannot be served over JSON")
    return spec


class ServedModel:
    """An ONNX Runtime session behind the names and shapes its package's signature declares."""

    def __init__(self, package: PackageLike, threads: int = 1) -> None:
        sig = package.signature
        self.name = package.name
        if not sig.get("inputs") or not sig.get("outputs"):
            raise CanonError(f"{self.name}: the signature lists no inputs or no outputs")
        self.version = str(package.manifest.get("version", "1"))
        self.task = str(package.manifest.get("task", ""))
        # What the ONNX graph takes, and what clients send (the same but for text).
        self.graph_inputs = [_tensor(t, f"{self.name}: signature.inputs") for t in sig["inputs"]]
        text = sig.get("text")
        self.text = TextInput(package, text, self.graph_inputs) if isinstance(text, dict) else None
        self.inputs = (
            [TensorSpec(TEXT_INPUT, BYTES, (-1,))] if self.text else list(self.graph_inputs)
        )
        self.outputs = [_tensor(t, f"{self.name}: signature.outputs") for t in sig["outputs"]]
        self.output_index = {t.name: t for t in self.outputs}
        # Inputs whose values have a closed range (a generator's class label): [lo, hi].
        self.ranges = {
            str(t["name"]): (t["range"][0], t["range"][1]) for t in sig["inputs"] if t.get("range")
        }
        self.labels: list[str] | None = sig.get("labels")
        # What the classification extension ranks: outputs of one floating score per label.
        n = len(self.labels or [])
        self.class_scores = [
            t.name for t in self.outputs if n and t.dtype.kind == "f" and t.shape[1:] == (n,)
        ]
        self.features: list[str] = list(sig.get("features") or [])
        self.kind: str = sig.get("kind") or (
            "image" if len(self.graph_inputs[0].shape) == 4 else "tabular"
        )
        self.image_shape: list[int] | None = sig.get("image_shape")
        sampler = sig.get("sampler")
        # Only a sampler that is this graph can be drawn from over the infer route.
        self.sampler = (
            sampler if isinstance(sampler, dict) and sampler.get("file") == "model.onnx" else None
        )
        generator = sig.get("generator")
        # A language model: the page offers a prompt box that streams /v1/completions.
        self.generator = generator if isinstance(generator, dict) else None
        self.pixel_max = float(sig.get("pixel_max") or package.manifest.get("pixel_max") or 1.0)
        start = time.perf_counter()
        self._session = package.session(threads=threads)
        self._output_names = [t.name for t in self.outputs]
        try:  # warm up, and fail now rather than on the first request
            self.run(self._example())
        except Exception as e:  # onnxruntime's own untyped errors
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CanonError(
                f"{self.name}: model.onnx does not run on its signature ({first})"
            ) from None
        self.load_seconds = time.perf_counter() - start

    def encode(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The graph's feeds for a checked request's inputs: texts are tokenized here."""
        if self.text is None:
            return feeds
        return self.text.encode(feeds[TEXT_INPUT].tolist())

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One ONNX Runtime call; every array is batch-first."""
        values = self._session.run(self._output_names, feeds)
        return dict(zip(self._output_names, values, strict=True))

    def time_call(self, n: int) -> float:
        """Seconds of one call on a batch of ``n`` samples (the best of three)."""
        feeds = {name: np.repeat(x, n, axis=0) for name, x in self._example().items()}
        times = []
        for _ in range(3):
            start = time.perf_counter()
            self.run(feeds)
            times.append(time.perf_counter() - start)
        return min(times)

    def metadata(self) -> dict[str, Any]:
        """The OIP v2 model metadata response."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnxruntime_onnx",
            "inputs": [t.metadata() for t in self.inputs],
            "outputs": [t.metadata() for t in self.outputs],
        }

    def page_info(self) -> dict[str, Any]:
        """What the try-it page needs to draw a form or a canvas for this model."""
        first = self.inputs[0]
        return {
            **self.metadata(),
            "task": self.task,
            "kind": self.kind,
            "features": self.features,
            "labels": self.labels,
            "image_shape": self.image_shape or list(first.shape[1:]),
            "pixel_max": self.pixel_max,
            "sampler": self.sampler,  # a generator: the page draws from it (noise, class)
            "generator": self.generator,  # a language model: the page streams completions
        }

    def _example(self) -> dict[str, np.ndarray]:
        if self.text is not None:
            return self.text.example()
        # One zero sample: free dimensions past the batch one become 1.
        return {
            t.name: np.zeros([1] + [max(d, 1) for d in t.shape[1:]], dtype=t.dtype)
            for t in self.graph_inputs
        }
