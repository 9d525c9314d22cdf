"""The reconstruction package's graphs: raw inputs in, raw units out, preprocessing folded in.

``model.onnx`` (``ReconstructionGraph``): raw x → ``anomaly_score`` (per-example MSE in the
model's units) and ``reconstruction`` (raw units). ``encoder.onnx``: raw x → ``code``, or a
VAE's ``mu`` and ``logvar``. ``decoder.onnx``: ``code`` → decoded examples in raw units; a
VAE's is the package's sampler (codes from its N(0, I) prior). Torch; imported when a run
packages or ``canon verify`` checks a package.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch  # noqa: TID253  (the package's graphs are torch modules)
from torch import nn  # noqa: TID253

from canonml.tasks.autoencoding import is_vae, reconstruct, reconstructions
from canonml.tasks.base import Graph


def graph_constants(state: dict[str, Any]) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(fill, shift, scale) float32 per input column or channel, from the fitted state (as
    the package's standard graph folds them; one-hot columns pass unchanged)."""
    f32 = lambda v: np.asarray(v, dtype=np.float32)  # noqa: E731
    if state["kind"] == "image":
        return None, f32(state["shift"]), f32(state["scale"])
    onehot = sum(len(c["categories"]) for c in state["categorical"])
    numeric = state["numeric"]
    return (
        f32([c["fill"] for c in numeric] + [0.0] * onehot),
        f32([c["shift"] for c in numeric] + [0.0] * onehot),
        f32([c["scale"] for c in numeric] + [1.0] * onehot),
    )


def _view(state: dict[str, Any]) -> tuple[int, ...]:
    # Constants broadcast over the batch: (1, C, 1, 1) per channel, or (1, F) per column.
    return (1, -1, 1, 1) if state["kind"] == "image" else (1, -1)


def preprocess(signature: dict[str, Any]) -> Preprocess:
    """The signature's fitted preprocessing as a module."""
    state = signature["preprocessing"]
    return Preprocess(*graph_constants(state), _view(state))


def raw_sample(state: dict[str, Any], shape: list[int], n: int) -> np.ndarray:
    """``n`` seeded raw inputs across the training range (uniform in the model's [0, 1])."""
    _, shift, scale = graph_constants(state)
    u = np.random.default_rng(0).random((n, *shape))
    return (shift.reshape(_view(state)) + scale.reshape(_view(state)) * u).astype(np.float32)


def reference_outputs(
    model: nn.Module, x: np.ndarray, signature: dict[str, Any]
) -> list[np.ndarray]:
    """What ``model.onnx`` must give for the model input ``x`` (the training code's numpy
    preprocessing of the raw samples), computed without the graph's modules."""
    x_hat = reconstructions(model, x).astype(np.float64)
    state = signature["preprocessing"]
    _, shift, scale = graph_constants(state)
    score = ((x_hat - x) ** 2).reshape(len(x), -1).mean(axis=1)
    return [score, x_hat * scale.reshape(_view(state)) + shift.reshape(_view(state))]


def encoder_and_decoder(model: nn.Module, signature: dict[str, Any]) -> dict[str, Graph]:
    """``encoder.onnx`` and ``decoder.onnx`` of ``model`` (a VAE's decoder with a sampler)."""
    pre = preprocess(signature)
    latent, shape = int(model.latent), signature["inputs"][0]["shape"]  # type: ignore[arg-type]
    vae = is_vae(model)
    code = {"datatype": "FP32", "shape": [-1, latent]}
    names = ["mu", "logvar"] if vae else ["code"]
    decoded = "image" if signature["kind"] == "image" else "values"
    # a VAE's prior is N(0, I): canon sample draws codes from it and decodes them
    sampler = {"input": "code", "output": decoded, "latent": latent, "prior": "normal"}
    return {
        "encoder.onnx": Graph(
            EncoderGraph(model, pre).eval(),
            [{"name": "input", "datatype": "FP32", "shape": shape}],
            [{"name": name, **code} for name in names],
            lambda n: {"input": raw_sample(signature["preprocessing"], shape[1:], n)},
        ),
        "decoder.onnx": Graph(
            DecoderGraph(model, pre).eval(),
            [{"name": "code", **code}],
            [{"name": decoded, "datatype": "FP32", "shape": shape}],
            lambda n: {"code": np.random.default_rng(0).standard_normal((n, latent), np.float32)},
            {**sampler, "conditional": False} if vae else None,
        ),
    }


class Preprocess(nn.Module):
    """Raw inputs → the model's units: NaN ← fill (tables), then (x - shift) / scale."""

    fill: torch.Tensor
    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, fill: Any, shift: Any, scale: Any, view: tuple[int, ...]) -> None:
        super().__init__()
        self.has_fill = fill is not None
        if fill is not None:
            self.register_buffer("fill", torch.from_numpy(fill).reshape(view))
        self.register_buffer("shift", torch.from_numpy(shift).reshape(view))
        self.register_buffer("scale", torch.from_numpy(scale).reshape(view))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.has_fill:
            x = torch.where(torch.isnan(x), self.fill, x)
        return (x - self.shift) / self.scale

    def unscale(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


class ReconstructionGraph(nn.Module):
    """``model.onnx``: raw x → (anomaly_score (B,), reconstruction in raw units)."""

    def __init__(self, model: nn.Module, pre: Preprocess) -> None:
        super().__init__()
        self.model, self.pre = model, pre

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.pre(x)
        x_hat = reconstruct(self.model, z)
        score = (x_hat - z).pow(2).flatten(1).mean(dim=1)  # per-example MSE, model units
        return score, self.pre.unscale(x_hat)


class EncoderGraph(nn.Module):
    """``encoder.onnx``: raw x → code (B, D), or a VAE's (mu, logvar)."""

    def __init__(self, model: nn.Module, pre: Preprocess) -> None:
        super().__init__()
        self.encoder: nn.Module = model.encoder  # type: ignore[assignment]
        self.pre = pre

    def forward(self, x: torch.Tensor) -> Any:
        return self.encoder(self.pre(x))


class DecoderGraph(nn.Module):
    """``decoder.onnx``: code (B, D) → decoded examples in raw units."""

    def __init__(self, model: nn.Module, pre: Preprocess) -> None:
        super().__init__()
        self.decoder: nn.Module = model.decoder  # type: ignore[assignment]
        self.pre = pre

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.pre.unscale(self.decoder(z))
