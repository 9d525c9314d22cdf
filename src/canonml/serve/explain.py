"""``POST /v2/models/{name}[/versions/{v}]/explain``: attributions over OIP v2 inputs.

The request is an inference request (the same ``inputs``, JSON or binary tensor data) with
optional ``parameters``: ``method`` (integrated_gradients, saliency, gradient_shap,
occlusion; default the package's ``explain.method``), ``target`` (a class label or index;
default each input's predicted class) and ``steps``. The answer holds three outputs:
``attributions`` (FP32, the input's shape: one value per raw column or pixel, against a
zero baseline of the scaled input), ``target`` (INT64, the explained class) and
``probability`` (FP32, of that class), and says the method and the class labels in its
``parameters``.

Captum works on PyTorch's gradients, so this route rebuilds the model from the package's
weights on its first call; a server installed without PyTorch (``canonml[serve]`` alone)
answers 501 naming the extra to install. Inference never needs it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.errors import CanonError
from canonml.serve.protocol import EXPLAIN_PARAMS, ServeError, parse_request

if TYPE_CHECKING:
    from canonml.package.explain import Explainer
    from canonml.serve.model import PackageLike, ServedModel


class Explainers:
    """One ``Explainer`` per served model, built on first use (under a lock)."""

    def __init__(self, packages: dict[str, PackageLike]) -> None:
        self.packages = packages
        self.built: dict[str, Explainer] = {}
        self.lock = threading.Lock()

    def get(self, name: str) -> Explainer:
        with self.lock:
            if name not in self.built:
                missing = [m for m in ("torch", "captum") if importlib.util.find_spec(m) is None]
                if missing:
                    raise ServeError(
                        f"explain needs PyTorch and Captum on the server ({missing[0]} is not "
                        "installed): pip install 'canonml[train]'",
                        501,
                    )
                from canonml.package.explain import Explainer

                try:
                    self.built[name] = Explainer(self.packages[name])  # type: ignore[arg-type]
                except CanonError as e:
                    raise ServeError(f"model {name!r} cannot be explained: {e}") from None
            return self.built[name]


def explain_request(
    explainers: Explainers, model: ServedModel, body: bytes, header_length: int | None
) -> dict[str, Any]:
    """Check the request, attribute its inputs, and the JSON answer."""
    explainer = explainers.get(model.name)
    req = parse_request(body, model, header_length, EXPLAIN_PARAMS)
    params = req.parameters
    method, target, steps = params.get("method"), params.get("target"), params.get("steps")
    if method is not None and type(method) is not str:
        raise ServeError(f"parameters.method must be a string, got {method!r:.40}")
    if target is not None and type(target) not in (str, int):
        raise ServeError(f"parameters.target must be a label or an index, got {target!r:.40}")
    if steps is not None and type(steps) is not int:
        raise ServeError(f"parameters.steps must be an integer, got {steps!r:.40}")
    (x,) = req.feeds.values()
    try:
        out = explainer.explain(np.asarray(x, dtype=np.float32), method, target, steps)
    except CanonError as e:
        raise ServeError(str(e)) from None
    attr = out["attributions"]
    labels = explainer.labels
    parameters: dict[str, Any] = {
        "method": out["method"],
        "baseline": "zeros",
        "explained": "probability of the target class",
        "target_labels": [labels[int(i)] for i in out["target"]],
    }
    if out["convergence_delta"] is not None:
        parameters["convergence_delta"] = [float(v) for v in out["convergence_delta"]]
    return {
        "model_name": model.name,
        "model_version": model.version,
        "id": req.id,
        "parameters": parameters,
        "outputs": [
            _tensor("attributions", "FP32", attr),
            _tensor("target", "INT64", out["target"]),
            _tensor("probability", "FP32", out["probability"]),
        ],
    }


def _tensor(name: str, datatype: str, values: np.ndarray) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": datatype,
        "shape": list(values.shape),
        "data": values.ravel().tolist(),
    }


async def explain_async(
    explainers: Explainers, model: ServedModel, body: bytes, header_length: int | None
) -> dict[str, Any]:
    """``explain_request`` off the event loop: an attribution takes many model calls."""
    return await asyncio.to_thread(explain_request, explainers, model, body, header_length)
