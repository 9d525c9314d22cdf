"""``model:`` — the architecture, as plain data a package can rebuild the model from."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from canonml.spec.base import StrictModel

Activation = Literal["relu", "gelu", "tanh", "sigmoid", "silu", "leaky_relu", "elu"]
Dropout = Annotated[float, Field(ge=0.0, lt=1.0)]
Width = Annotated[int, Field(gt=0)]


class MLPSpec(StrictModel):
    """Dense layers: Linear → [BatchNorm] → activation → Dropout, then a linear head."""

    arch: Literal["mlp"] = "mlp"
    hidden: list[Width] = Field(default_factory=lambda: [128])
    activation: Activation = "relu"
    dropout: Dropout = 0.0
    batch_norm: bool = False


class CNNSpec(StrictModel):
    """Conv blocks (Conv3×3 → [BatchNorm] → activation, pooled between blocks) → dense head."""

    arch: Literal["cnn"] = "cnn"
    channels: Annotated[list[Width], Field(min_length=1)] = Field(
        default_factory=lambda: [32, 64, 64]
    )
    kernel_size: Annotated[int, Field(gt=0, le=11)] = 3
    pool: Literal["max", "avg", "none"] = "max"
    # Pool after these blocks (1-based); default: every block but the last.
    pool_after: list[Annotated[int, Field(gt=0)]] | None = None
    dense: list[Width] = Field(default_factory=lambda: [64])
    activation: Activation = "relu"
    dropout: Dropout = 0.0
    batch_norm: bool = False


Latent = Annotated[int, Field(gt=0, le=4096)]
Slope = Annotated[float, Field(ge=0.0, lt=1.0)]


class CodecSpec(StrictModel):
    """The encoder/decoder fields ``autoencoder`` and ``vae`` share (not a section itself)."""

    arch: str  # narrowed to a Literal by each section; declared here so it is written first
    kind: Literal["dense", "conv"] = Field(
        "dense",
        description="dense: flatten → dense layers; conv: stride-2 convs (4×4) halve the image "
        "per channels entry, then the dense layers; images only",
    )
    hidden: list[Width] = Field(
        default_factory=lambda: [256, 128],
        description="dense encoder widths before the latent code (after the convs when kind: "
        "conv, where [] suits small images); the decoder mirrors them",
    )
    channels: Annotated[list[Width], Field(min_length=1)] = Field(
        default_factory=lambda: [32, 64],
        description="conv encoder channels, one stride-2 conv each (kind: conv only); the "
        "decoder mirrors them with transposed convs",
    )
    latent: Latent = Field(8, description="size of the latent code z")
    activation: Activation = Field("relu", description="activation of every hidden layer")
    output: Literal["sigmoid", "linear"] = Field(
        "sigmoid",
        description="decoder output: sigmoid for inputs scaled to [0, 1] (MSE or BCE loss), "
        "linear for unbounded inputs (MSE loss)",
    )
    batch_norm: bool = Field(False, description="batch norm after every hidden layer")


class AutoencoderSpec(CodecSpec):
    """Encoder x → z (``latent`` wide) and decoder z → x̂, dense or convolutional."""

    arch: Literal["autoencoder"] = Field("autoencoder", description="a deterministic autoencoder")


class VAESpec(CodecSpec):
    """A variational autoencoder: the encoder gives (mu, logvar), z = mu + σ·ε while training."""

    arch: Literal["vae"] = Field("vae", description="a variational autoencoder")
    # 0.25, not the ELBO's 1: with a BCE reconstruction summed over 64 digit pixels, a full KL
    # weight squeezes z to ~3 nats and the test MSE to ~0.03; 0.25 gives ~0.018.
    kl_weight: Annotated[float, Field(ge=0.0)] = Field(
        0.25,
        description="weight β of the KL term (nats per example) against the reconstruction "
        "loss summed over an example's values; 1 is the ELBO, < 1 trades prior fit for detail",
    )
    kl_warmup: Annotated[int, Field(ge=0)] = Field(
        0,
        description="epochs over which the KL weight rises linearly from 0 to kl_weight "
        "(0: full weight from the first epoch)",
    )


class GANSpec(StrictModel):
    """MLP generator (noise → image, tanh) and discriminator (image → one logit)."""

    arch: Literal["gan"] = Field("gan", description="an MLP GAN")
    latent: Latent = Field(100, description="size of the generator's noise vector z")
    g_hidden: Annotated[list[Width], Field(min_length=1)] = Field(
        default_factory=lambda: [256, 512], description="generator widths, noise side first"
    )
    d_hidden: Annotated[list[Width], Field(min_length=1)] = Field(
        default_factory=lambda: [512, 256], description="discriminator widths, image side first"
    )
    leaky_slope: Slope = Field(0.2, description="negative slope of the LeakyReLUs in G and D")
    d_dropout: Dropout = Field(0.3, description="dropout after each discriminator layer")
    g_batch_norm: bool = Field(True, description="batch norm after each generator layer")
    conditional: bool = Field(
        False,
        description="feed the class label to G and D (Mirza & Osindero 2014), so a digit can "
        "be asked for; needs a labelled source",
    )


class DCGANSpec(StrictModel):
    """DCGAN (Radford et al. 2015): transposed-conv generator and strided-conv discriminator."""

    arch: Literal["dcgan"] = Field("dcgan", description="a convolutional GAN (DCGAN)")
    latent: Latent = Field(100, description="size of the generator's noise vector z")
    g_channels: Annotated[list[Width], Field(min_length=1, max_length=5)] = Field(
        default_factory=lambda: [128, 64],
        description="generator channels, smallest map first; each entry doubles the map, so "
        "height and width must be divisible by 2^len (4 for the default)",
    )
    d_channels: Annotated[list[Width], Field(min_length=1, max_length=5)] = Field(
        default_factory=lambda: [64, 128],
        description="discriminator channels, one stride-2 conv each, image side first",
    )
    leaky_slope: Slope = Field(0.2, description="negative slope of the discriminator's LeakyReLU")
    conditional: bool = Field(
        False,
        description="feed the class label to G (appended to z) and D (an extra input channel); "
        "needs a labelled source",
    )


class GPTSpec(StrictModel):
    """A decoder-only transformer (GPT): token + learned position embeddings, pre-norm
    blocks of causal self-attention and an MLP, a final norm and a head tied to the token
    embedding. Sizes only; the vocabulary is the tokenizer's (learned from the data)."""

    arch: Literal["gpt"] = Field("gpt", description="a decoder-only transformer")
    layers: Annotated[int, Field(gt=0, le=96)] = Field(4, description="transformer blocks")
    heads: Annotated[int, Field(gt=0, le=128)] = Field(4, description="attention heads")
    dim: Annotated[int, Field(gt=0, le=16384)] = Field(
        256, description="embedding width (a multiple of heads)"
    )
    context: Annotated[int, Field(gt=0, le=65536)] = Field(
        256, description="the longest token sequence the model attends over (its positions)"
    )
    mlp_ratio: Annotated[int, Field(gt=0, le=16)] = Field(
        4, description="the MLP's hidden width as a multiple of dim"
    )
    dropout: Dropout = Field(0.1, description="dropout on embeddings, attention and MLP outputs")
    bias: bool = Field(False, description="biases in the linear layers and norms")

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> GPTSpec:
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be a multiple of heads ({self.heads})")
        return self


# Discriminated on ``arch``; a contract test keeps these tags equal to MODELS' names.
ModelSpec = Annotated[
    MLPSpec | CNNSpec | AutoencoderSpec | VAESpec | GANSpec | DCGANSpec | GPTSpec,
    Field(discriminator="arch"),
]
