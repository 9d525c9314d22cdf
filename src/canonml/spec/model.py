"""``model:`` — the architecture, as plain data a package can rebuild the model from."""

from __future__ import annotations

from typing import Annotated, Any, Literal

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
    norm: Literal["batch", "group"] = Field(
        "batch",
        description="the normalisation batch_norm adds: batch (BatchNorm) or group "
        "(per-example GroupNorm, what DP-SGD needs: min(32, C) groups over a conv map, one "
        "group over a dense layer's features; privacy.dp switches to it)",
    )


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
    norm: Literal["batch", "group"] = Field(
        "batch",
        description="the normalisation batch_norm adds: batch (BatchNorm) or group "
        "(per-example GroupNorm, what DP-SGD needs: min(32, C) groups over a conv map, one "
        "group over a dense layer's features; privacy.dp switches to it)",
    )


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


class HeadSpec(StrictModel):
    """The classification head on the pooled features: Dropout → [Linear → GELU → Dropout]*
    → Linear to the classes."""

    hidden: list[Width] = Field(default_factory=list, description="hidden widths ([]: linear)")
    dropout: Dropout = Field(0.1, description="dropout on the pooled features and each layer")
    init: Literal["random", "probe"] = Field(
        "random",
        description="probe: a linear head starts as logistic regression fitted on the "
        "encoder's frozen features of (at most 5,000) training texts, and then everything "
        "fine-tunes (LP-FT, Kumar et al. 2022); its time counts in the first epoch",
    )

    @model_validator(mode="after")
    def _linear_probe(self) -> HeadSpec:
        if self.init == "probe" and self.hidden:
            raise ValueError("init: probe fits a linear head; set hidden: []")
        return self


class LoraSpec(StrictModel):
    """Low-rank adapters (LoRA, with PEFT) on the encoder's linear layers."""

    r: Annotated[int, Field(gt=0, le=1024)] = Field(8, description="rank of each adapter")
    alpha: Annotated[float, Field(gt=0.0)] = Field(
        16.0, description="scaling: the adapter's update is multiplied by alpha / r"
    )
    dropout: Dropout = Field(0.05, description="dropout on the adapters' inputs")
    target: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = (
        Field(
            None,
            description="names (or name endings) of the linear layers to adapt; default per "
            "family: a canonml GPT's qkv, proj, mlp.0, mlp.2; a Hugging Face model's PEFT "
            "default (BERT: query, value)",
        )
    )


class AdapterSpec(StrictModel):
    """Train adapters instead of the encoder's weights; the package holds them merged."""

    lora: LoraSpec = Field(default_factory=LoraSpec)


class PretrainedSpec(StrictModel):
    """A pretrained text encoder with a classification head, fine-tuned (text sources)."""

    arch: Literal["pretrained"] = Field("pretrained", description="a pretrained encoder + head")
    checkpoint: Annotated[str, Field(min_length=1)] = Field(
        description="a canonml GPT: its run directory, its package, or run:NAME (the newest "
        "finished run of that name under ./runs, written back as its directory); or a local "
        "Hugging Face model directory (config.json, weights, tokenizer.json), also as "
        "pkg:MODULE/PATH, a folder inside an installed Python package",
        examples=["run:news-gpt", "runs/news-gpt/20260101-120000-ab12/package"],
    )
    init: Literal["pretrained", "random"] = Field(
        "pretrained",
        description="pretrained: the checkpoint's weights; random: the same architecture and "
        "tokenizer with fresh weights (training from scratch, the honest comparison)",
    )
    pooling: Literal["mean", "last", "cls"] = Field(
        "mean",
        description="features of a text from the encoder's states: mean over its tokens, the "
        "last token (right for a causal GPT), or the first ([CLS])",
    )
    freeze: Literal["all", "none"] | Annotated[int, Field(ge=0)] = Field(
        "none",
        description="all: only the head trains; none: everything trains; N: the embeddings "
        "and the lowest N blocks stay as pretrained",
    )
    head: HeadSpec = Field(default_factory=HeadSpec)
    encoder_lr: Annotated[float, Field(gt=0.0)] | None = Field(
        None,
        description="learning rate of the encoder (and adapters); default: "
        "train.optimizer.lr, which the head uses",
    )
    adapter: AdapterSpec | None = Field(
        None, description="LoRA adapters instead of fine-tuning the encoder's weights"
    )
    lm_loss: Annotated[float, Field(ge=0.0, le=10.0)] = Field(
        0.0,
        description="weight of an auxiliary next-token loss on the training texts while "
        "fine-tuning, as GPT-1 did (0.5 there); a canonml GPT checkpoint only; 0: off",
    )
    encoder: dict[str, Any] | None = Field(
        None,
        description="filled in from the checkpoint (do not write it): the encoder's "
        "architecture — a canonml GPT's sizes and vocabulary, or a Hugging Face config.json — "
        "so a package rebuilds the model without the checkpoint",
    )

    @model_validator(mode="after")
    def _consistent(self) -> PretrainedSpec:
        if self.adapter is not None and self.freeze != "none":
            raise ValueError(
                "an adapter trains only itself and the head (the encoder's weights stay "
                f"frozen); remove freeze: {self.freeze}"
            )
        if self.adapter is not None and self.init == "random":
            raise ValueError("LoRA adapts pretrained weights; remove the adapter for init: random")
        if self.lm_loss > 0 and self.freeze == "all":
            raise ValueError("lm_loss trains the encoder, which freeze: all keeps fixed")
        family = (self.encoder or {}).get("family")
        if self.lm_loss > 0 and family is not None and family != "gpt":
            raise ValueError(
                "lm_loss needs the encoder's next-token head, which only a canonml GPT "
                "checkpoint has; set it to 0"
            )
        layers = encoder_layers(self.encoder)
        if isinstance(self.freeze, int) and layers is not None and self.freeze > layers:
            raise ValueError(f"freeze: {self.freeze} is more than the encoder's {layers} blocks")
        return self

    def bare(self) -> PretrainedSpec:
        """The same model built to receive trained weights: no checkpoint weights loaded and
        no adapter (a run's and a package's weights hold the adapters merged)."""
        return self.model_copy(update={"init": "random", "adapter": None})


def encoder_layers(encoder: dict[str, Any] | None) -> int | None:
    """The number of transformer blocks an ``encoder`` description has (None: unknown)."""
    if not encoder:
        return None
    value = encoder.get("layers") or (encoder.get("config") or {}).get("num_hidden_layers")
    return int(value) if isinstance(value, int) else None


# Discriminated on ``arch``; a contract test keeps these tags equal to MODELS' names.
ModelSpec = Annotated[
    MLPSpec | CNNSpec | AutoencoderSpec | VAESpec | GANSpec | DCGANSpec | GPTSpec | PretrainedSpec,
    Field(discriminator="arch"),
]
