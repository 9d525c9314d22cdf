"""The torch side of ``task: reconstruction``: training steps, evaluation passes, graphs.

A batch is ``(x,)``: the target is the input itself. ``AutoencoderStep`` scores the
reconstruction by the mean over every value (``mse``, or ``bce`` for inputs in [0, 1];
``auto`` is ``mse``); ``VAEStep`` by the negative ELBO's convention: the reconstruction
loss summed over each example's values plus ``kl_weight``·KL (nats per example), averaged
over the batch (``auto`` is the Bernoulli likelihood ``bce`` behind a sigmoid output, else
``mse``). The KL weight of an epoch depends on the epoch number alone (``KLWarmup`` sets it
as each epoch begins, from ``fit``'s restored state), so a resumed run continues exactly.
Imported when a run trains, evaluates or packages.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
import torch  # noqa: TID253  (the torch side of the task: imported when a run trains)
from torch import nn  # noqa: TID253

from canonml.models.vae import kl_divergence, kl_scale
from canonml.tasks.reconstruction import GRID, SHOWN, UNLABELLED
from canonml.train.callbacks import Callback
from canonml.train.steps import Augment, SupervisedStep

if TYPE_CHECKING:
    from canonml.spec.model import VAESpec
    from canonml.spec.train import TrainSpec
    from canonml.train.loop import TrainState


def per_example(values: torch.Tensor) -> torch.Tensor:
    """(B, ...) elementwise losses → (B,) sums over each example's values."""
    return values.flatten(1).sum(dim=1)


def elementwise(loss: str, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The reconstruction loss of every value, (B, ...): binary cross-entropy (``bce``), else
    squared error."""
    if loss == "bce":
        return nn.functional.binary_cross_entropy(x_hat, x, reduction="none")
    return (x_hat - x).pow(2)


class AutoencoderStep(SupervisedStep):
    """A deterministic autoencoder: loss = the mean of ``elementwise`` over batch and values."""

    def __init__(self, model: nn.Module, spec: TrainSpec, augment: Augment | None = None) -> None:
        super().__init__(model, spec, None)
        # The augmented batch is both input and target (more images to reproduce).
        self.input_augment = augment
        self.recon_loss = "bce" if spec.loss == "bce" else "mse"

    def train_batch(self, *batch: torch.Tensor) -> torch.Tensor:
        (x,) = batch
        if self.input_augment is not None:
            x = self.input_augment(x)
        return super().train_batch(x, x)

    @torch.no_grad()
    def evaluate(self, *split: torch.Tensor) -> dict[str, float]:
        (x,) = split
        return super().evaluate(x, x)

    def reconstruction(self, out: Any) -> torch.Tensor:
        return out

    def loss(self, out: Any, y: torch.Tensor) -> torch.Tensor:
        return elementwise(self.recon_loss, self.reconstruction(out), y).mean()

    def batch_metrics(self, out: Any, y: torch.Tensor) -> dict[str, torch.Tensor]:
        # Summed per-example MSE (the split's mean after ``evaluate`` divides by N).
        x_hat = self.reconstruction(out)
        return {"mse": (x_hat - y).pow(2).flatten(1).mean(dim=1).sum()}


class VAEStep(AutoencoderStep):
    """A VAE: loss = mean over the batch of (summed reconstruction loss + β·KL), where β is
    ``kl_weight`` scaled by ``KLWarmup``; logs the epoch's reconstruction and KL terms."""

    def __init__(
        self, model: nn.Module, spec: TrainSpec, vae: VAESpec, augment: Augment | None = None
    ) -> None:
        super().__init__(model, spec, augment)
        self.vae = vae
        if spec.loss == "auto":  # the ELBO's likelihood: Bernoulli for values in [0, 1]
            self.recon_loss = "bce" if vae.output == "sigmoid" else "mse"
        self.kl_weight = kl_scale(0, vae.kl_weight, vae.kl_warmup)
        self._sums: torch.Tensor | None = None  # reconstruction, KL, examples of the epoch

    def reconstruction(self, out: Any) -> torch.Tensor:
        return out[0]  # (x_hat, mu, logvar)

    def terms(self, out: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) summed reconstruction loss and (B,) KL in nats of a batch."""
        x_hat, mu, logvar = out
        return per_example(elementwise(self.recon_loss, x_hat, x)), kl_divergence(mu, logvar)

    def loss(self, out: Any, y: torch.Tensor) -> torch.Tensor:
        recon, kl = self.terms(out, y)
        if self.model.training:  # the epoch's logs, on the batch's device: no sync
            n = torch.full((), float(len(y)), device=recon.device)
            sums = torch.stack([recon.detach().sum(), kl.detach().sum(), n])
            self._sums = sums if self._sums is None else self._sums + sums
        return (recon + self.kl_weight * kl).mean()

    def batch_metrics(self, out: Any, y: torch.Tensor) -> dict[str, torch.Tensor]:
        _, kl = self.terms(out, y)
        return {**super().batch_metrics(out, y), "kl": kl.sum()}

    def epoch_logs(self) -> dict[str, float]:
        if self._sums is None:
            return {}
        recon, kl, n = (float(v) for v in self._sums)
        self._sums = None
        return {"reconstruction": recon / n, "kl": kl / n, "kl_weight": self.kl_weight}


class KLWarmup(Callback):
    """Sets the VAE step's KL weight for the epoch about to run, from its number alone."""

    def __init__(self, step: VAEStep) -> None:
        self.step = step

    def on_epoch_begin(self, state: TrainState) -> None:
        vae = self.step.vae
        # state.epoch: epochs completed = this epoch's 0-based number (restored on resume)
        self.step.kl_weight = kl_scale(state.epoch, vae.kl_weight, vae.kl_warmup)


# ---- evaluation passes (eval mode, no grad, in batches; numpy in and out)

EVAL_BATCH = 4096


def is_vae(model: nn.Module) -> bool:
    from canonml.models.vae import VAE

    return isinstance(model, VAE)


def reconstruct(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """x → x̂ of the same shape (a VAE decodes its mean code, as in eval mode)."""
    out = model(x)
    return out[0] if isinstance(out, tuple) else out


def bounded(model: nn.Module) -> bool:
    """Whether the decoder ends in a sigmoid (outputs in (0, 1): a Bernoulli likelihood)."""
    decoder: nn.Module = model.decoder  # type: ignore[assignment]
    layers = [m for m in decoder.children() if not isinstance(m, nn.Unflatten)]
    return bool(layers) and isinstance(layers[-1], nn.Sigmoid)


@torch.no_grad()
def reconstructions(model: nn.Module, x: Any) -> Any:
    """``reconstruct`` over a numpy batch ``x`` (N, ...), float32 numpy."""
    model.eval()
    parts = [
        reconstruct(model, torch.from_numpy(x[i : i + EVAL_BATCH])).numpy()
        for i in range(0, len(x), EVAL_BATCH)
    ]
    return np.concatenate(parts) if parts else np.zeros_like(x)


@torch.no_grad()
def codes(model: nn.Module, x: Any) -> Any:
    """The code of each example (a VAE's mean), (N, latent) float32 numpy."""
    model.eval()
    out = model.encode(torch.from_numpy(x))  # type: ignore[operator]
    return (out[0] if isinstance(out, tuple) else out).numpy()


@torch.no_grad()
def decode(model: nn.Module, z: Any) -> Any:
    """Decoded codes ``z`` (N, latent) → (N, ...) float32 numpy."""
    model.eval()
    return model.decode(torch.from_numpy(z.astype("float32"))).numpy()  # type: ignore[operator]


@torch.no_grad()
def negative_elbo(model: nn.Module, x: Any, samples: int = 16, seed: int = 0) -> Any:
    """−ELBO in nats per example, (N,) float64 numpy: the Bernoulli reconstruction loss
    summed over an example's values, averaged over ``samples`` seeded draws of z ~ q(z|x),
    plus KL(q(z|x) ‖ N(0, I)) — the bound at weight 1, whatever β trained the model."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(x), EVAL_BATCH):
        xb = torch.from_numpy(x[i : i + EVAL_BATCH]).clamp(0.0, 1.0)
        mu, logvar = model.encode(xb)  # type: ignore[operator]  # (B, D) each
        recon = torch.zeros(len(xb), dtype=torch.float64)
        for _ in range(samples):
            eps = torch.randn(mu.shape, generator=generator)
            x_hat = model.decode(mu + torch.exp(0.5 * logvar) * eps)  # type: ignore[operator]
            recon += per_example(elementwise("bce", x_hat, xb)).double()
        out.append((recon / samples + kl_divergence(mu, logvar).double()).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def pictures(
    model: Any, x: np.ndarray, x_hat: np.ndarray, y: np.ndarray, labels: list[str] | None
) -> dict[str, Any]:
    """What the figures show: originals and reconstructions, an interpolation strip, a
    VAE's latent map (model units, clipped to [0, 1])."""
    chosen = picks(y, SHOWN)
    clip = lambda a: np.clip(a, 0.0, 1.0)  # noqa: E731
    out: dict[str, Any] = {
        "originals": clip(x[chosen]),
        "reconstructed": clip(x_hat[chosen]),
        "titles": [_title(labels, int(y[i])) for i in chosen],
    }
    ends = codes(model, x[chosen[:2]])  # (2, D)
    t = np.linspace(0.0, 1.0, SHOWN)[:, None]
    out["interpolation"] = clip(decode(model, (1 - t) * ends[0] + t * ends[1]))
    out["ends"] = out["titles"][:2]
    latent = int(model.latent)
    if is_vae(model) and latent >= 2:
        # The two most active dimensions (the largest variance of the mean code over the
        # split, Burda et al. 2016): a dimension the KL term switched off decodes one image.
        first, second = np.argsort(-codes(model, x).var(axis=0), kind="stable")[:2]
        q = np.array([NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, GRID)])
        z = np.zeros((GRID, GRID, latent))
        z[:, :, first] = q[None, :]  # columns
        z[:, :, second] = q[::-1, None]  # rows, highest at the top
        out["latent_map"] = clip(decode(model, z.reshape(GRID * GRID, latent)))
        out["dimensions"] = [int(first) + 1, int(second) + 1]  # 1-based, as the caption says
    return out


def picks(y: np.ndarray, n: int) -> list[int]:
    """The first example of each class (then the next ones), or the first ``n``."""
    if not len(y) or int(y.min()) == UNLABELLED:
        return list(range(min(n, len(y))))
    _, first = np.unique(y, return_index=True)  # in class order
    taken = set(first.tolist())
    rest = [i for i in range(len(y)) if i not in taken]
    return [int(i) for i in [*first, *rest][:n]]


def _title(labels: list[str] | None, k: int) -> str:
    if k == UNLABELLED:
        return ""
    return labels[k] if labels and 0 <= k < len(labels) else str(k)
