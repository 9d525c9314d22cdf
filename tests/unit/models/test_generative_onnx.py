"""Generators, decoders and encoders export to ONNX alone and agree with PyTorch."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from canonml.model_io import ModelIO
from canonml.models import build_model
from canonml.spec.model import AutoencoderSpec, DCGANSpec, GANSpec, VAESpec

ort = pytest.importorskip("onnxruntime")


def export(
    module: nn.Module, inputs: tuple[torch.Tensor, ...], names: list[str], outputs: list[str]
) -> bytes:
    """The TorchScript exporter the package uses, with a dynamic batch axis everywhere."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            module.eval(),
            inputs,
            buf,  # type: ignore[arg-type]
            input_names=names,
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in [*names, *outputs]},
            opset_version=17,
            dynamo=False,
        )
    return buf.getvalue()


def run_onnx(blob: bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("spec", "shape"),
    [
        (GANSpec(latent=16, g_hidden=[32, 64]), (1, 8, 8)),
        (GANSpec(latent=16, g_hidden=[32], conditional=True), (1, 28, 28)),
        (DCGANSpec(latent=16, g_channels=[16, 8]), (3, 32, 32)),
        (DCGANSpec(latent=16, g_channels=[16, 8], conditional=True), (1, 8, 8)),
    ],
    ids=["gan", "cgan", "dcgan", "cdcgan"],
)
def test_the_generator_exports_and_matches_pytorch(
    spec: GANSpec | DCGANSpec, shape: tuple[int, int, int]
) -> None:
    torch.manual_seed(0)
    model = build_model(spec, ModelIO(shape, n_classes=10))
    model.train()  # move batch-norm statistics off their initial values
    with torch.no_grad():
        for _ in range(3):
            model.generator(
                torch.randn(32, 16), torch.randint(0, 10, (32,)) if spec.conditional else None
            )
    model.eval()
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(7))  # batch 5 ≠ export's 2
    labels = torch.tensor([0, 4, 9, 2, 2]) if spec.conditional else None
    sample = (z[:2], labels[:2]) if labels is not None else (z[:2],)
    names = ["noise", "label"] if labels is not None else ["noise"]
    blob = export(model.generator, sample, names, ["image"])
    feeds = {"noise": z.numpy()} | ({"label": labels.numpy()} if labels is not None else {})
    (got,) = run_onnx(blob, feeds)
    with torch.no_grad():
        want = model.generator(z, labels).numpy()
    assert got.shape == (5, *shape)
    assert np.abs(got - want).max() <= 1e-5
    if labels is not None:
        assert feeds["label"].dtype == np.int64


@pytest.mark.parametrize(
    "spec",
    [
        AutoencoderSpec(hidden=[32], latent=4),
        AutoencoderSpec(kind="conv", channels=[4, 8], hidden=[], latent=4, batch_norm=True),
        VAESpec(hidden=[32], latent=4),
        VAESpec(kind="conv", channels=[4, 8], hidden=[16], latent=4),
    ],
    ids=["ae", "conv-ae", "vae", "conv-vae"],
)
def test_the_encoder_and_decoder_export_alone_and_match_pytorch(
    spec: AutoencoderSpec | VAESpec,
) -> None:
    shape = (1, 28, 28) if spec.kind == "conv" else (1, 8, 8)
    torch.manual_seed(0)
    model = build_model(spec, ModelIO(shape)).eval()
    x = torch.rand(5, *shape, generator=torch.Generator().manual_seed(3))
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(4))
    outputs = ["mu", "logvar"] if isinstance(spec, VAESpec) else ["code"]
    encoded = run_onnx(export(model.encoder, (x[:2],), ["input"], outputs), {"input": x.numpy()})
    (decoded,) = run_onnx(
        export(model.decoder, (z[:2],), ["code"], ["reconstruction"]), {"code": z.numpy()}
    )
    with torch.no_grad():
        want = model.encode(x)
        want_encoded = want if isinstance(want, tuple) else (want,)
        want_decoded = model.decode(z)
    assert len(encoded) == len(outputs)
    for got, expected in zip(encoded, want_encoded, strict=True):
        assert got.shape == (5, 4)
        assert np.abs(got - expected.numpy()).max() <= 1e-5
    assert decoded.shape == (5, *shape)
    assert np.abs(decoded - want_decoded.numpy()).max() <= 1e-5
