"""``pretrained`` — a pretrained text encoder, pooled, with a classification head.

The encoder is a canonml GPT pretrained by an earlier run (``task: language-modeling``) or a
local Hugging Face model (``transformers.AutoModel``). Either is wrapped to the same call,
``encoder(ids, attention_mask) -> states (B, S, C)``, so pooling, freezing and LoRA (PEFT)
treat both alike. The architecture comes from ``model.encoder`` (what the checkpoint said,
kept in the spec), so a package rebuilds the model without the checkpoint; ``init:
pretrained`` then loads the checkpoint's weights, ``init: random`` keeps fresh ones.

With ``adapter.lora`` the encoder is wrapped by ``peft.get_peft_model`` and the head stays
outside it (PEFT cannot lose what it does not hold: peft#310); ``merge_adapter`` folds the
adapters into the weights after training, so runs and packages hold a plain model.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from canonml.errors import SpecError
from canonml.model_io import ModelIO
from canonml.models import MODELS
from canonml.models.layers import dense_stack
from canonml.spec.model import GPTSpec, PretrainedSpec

# LoRA targets of a canonml GPT: attention's qkv and output projections, the MLP's two Linears.
GPT_TARGETS = ["qkv", "proj", "mlp.0", "mlp.2"]


class GPTEncoder(nn.Module):
    """A canonml GPT's final-normed states."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model: Any = model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model.hidden(ids, mask)

    def embeddings(self) -> list[nn.Module]:
        return [self.model.tok, self.model.pos]

    def blocks(self) -> nn.ModuleList:
        return self.model.blocks

    def next_token_logits(self, states: torch.Tensor) -> torch.Tensor:
        """Final-normed states (B, S, C) → next-token logits (B, S, V), the tied head."""
        return self.model.head(states)


class HFEncoder(nn.Module):
    """A Hugging Face ``AutoModel``'s last hidden states."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model: Any = model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, attention_mask=mask).last_hidden_state

    def embeddings(self) -> list[nn.Module]:
        found = getattr(self.model, "embeddings", None)
        return [found if isinstance(found, nn.Module) else self.model.get_input_embeddings()]

    def blocks(self) -> nn.ModuleList:
        layers = int(self.model.config.num_hidden_layers)
        for module in self.model.modules():
            if isinstance(module, nn.ModuleList) and len(module) == layers:
                return module
        raise SpecError(
            "model.freeze", "cannot find the encoder's blocks to freeze; use all or none"
        )


Encoder = GPTEncoder | HFEncoder


class TextClassifier(nn.Module):
    """ids (B, S) [and attention mask (B, S), 1 = token] → class logits (B, K).

    Without a mask the padding (``pad_id``) is masked out. Pads sit on the right.
    """

    def __init__(
        self, encoder: nn.Module, width: int, spec: PretrainedSpec, n_classes: int, pad_id: int
    ) -> None:
        super().__init__()
        self.encoder, self.pooling, self.pad_id = encoder, spec.pooling, pad_id
        self.frozen = spec.freeze == "all"
        self.lm_weight = spec.lm_loss
        # The GPT inside (adapters wrap it), not registered again: its weights are the encoder's.
        gpt = [m for m in encoder.modules() if isinstance(m, GPTEncoder)]
        self._lm = gpt[:1]
        layers, width = dense_stack(width, spec.head.hidden, "gelu", spec.head.dropout, False)
        self.head = nn.Sequential(
            nn.Dropout(spec.head.dropout), *layers, nn.Linear(width, n_classes)
        )

    def forward(
        self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.head(self.features(ids, attention_mask))

    def features(
        self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The pooled features (B, C) the head reads."""
        mask = (ids != self.pad_id).long() if attention_mask is None else attention_mask
        return pool(self.encoder(ids, mask), mask, self.pooling)

    def with_lm_loss(
        self, ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits and the mean next-token cross-entropy over the real tokens of
        ``ids``, from one pass through the encoder (``model.lm_loss``)."""
        if not self._lm:
            raise ValueError("lm_loss needs a canonml GPT encoder")
        states = self.encoder(ids, attention_mask)
        logits = self.head(pool(states, attention_mask, self.pooling))
        following = self._lm[0].next_token_logits(states[:, :-1])  # (B, S-1, V)
        targets = ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)
        lm = nn.functional.cross_entropy(
            following.reshape(-1, following.shape[-1]), targets.reshape(-1), ignore_index=-100
        )
        return logits, lm

    def train(self, mode: bool = True) -> TextClassifier:
        super().train(mode)
        if self.frozen:  # a frozen encoder gives the same features every epoch: no dropout
            self.encoder.eval()
        return self

    def merge_adapter(self) -> bool:
        """Fold LoRA adapters into the encoder's weights (PEFT's merge_and_unload); whether
        there were any."""
        merge = getattr(self.encoder, "merge_and_unload", None)
        if merge is None:
            return False
        self.encoder = merge()
        return True


def pool(states: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """states (B, S, C), mask (B, S) → (B, C): the mean over tokens, the last token, or the
    first."""
    if how == "cls":
        return states[:, 0]
    if how == "last":
        last = (mask.sum(dim=1) - 1).clamp(min=0)  # (B,) the last token's column (right pads)
        return states[torch.arange(states.shape[0], device=states.device), last]
    weights = mask.unsqueeze(-1).to(states.dtype)  # (B, S, 1)
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


@MODELS.register("pretrained")
def build_pretrained(spec: PretrainedSpec, io: ModelIO) -> nn.Module:
    """The encoder ``spec.encoder`` describes (read from the checkpoint when not filled),
    with the checkpoint's weights for ``init: pretrained``, frozen or adapted as asked, and a
    head of ``io.n_outputs`` classes."""
    from canonml.spec.checkpoint import read_checkpoint

    if io.pad_id is None:
        raise ValueError("a text classifier is built for a tokenizer's padding id")
    described = spec.encoder
    if described is None or spec.init == "pretrained":
        found = _checkpoint(spec.checkpoint, read_checkpoint)
        described = described or found.encoder
    encoder, width = _architecture(described)
    if spec.init == "pretrained":
        _load_weights(encoder, found, spec.checkpoint)
    _freeze(encoder, spec.freeze)
    adapted = _lora(encoder, spec, described["family"]) if spec.adapter else encoder
    return TextClassifier(adapted, width, spec, io.n_outputs, io.pad_id)


def _checkpoint(value: str, read: Any) -> Any:
    from canonml.spec.root import CrossFieldError

    try:
        return read(value)
    except CrossFieldError as e:
        raise SpecError(e.path, str(e)) from None


def _architecture(described: dict[str, Any]) -> tuple[Encoder, int]:
    """A freshly initialised encoder (wrapped) and its width."""
    if described.get("family") == "gpt":
        from canonml.models.gpt import GPT

        sizes = {k: v for k, v in described.items() if k not in ("family", "vocab_size")}
        gpt = GPT(GPTSpec(**sizes), int(described["vocab_size"]))
        return GPTEncoder(gpt), gpt.tok.embedding_dim
    from transformers import AutoConfig, AutoModel

    config = dict(described["config"])
    with _quiet():
        made = AutoConfig.for_model(config.pop("model_type"), **config)
        model = AutoModel.from_config(made)
    return HFEncoder(model), int(made.hidden_size)


def _load_weights(encoder: Encoder, found: Any, where: str) -> None:
    if found.family == "gpt":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            encoder.model.load_state_dict(load_file(str(found.weights)))
        except (SafetensorError, RuntimeError, OSError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise SpecError(
                "model.checkpoint", f"'{found.weights}': unreadable ({first})"
            ) from None
        return
    from transformers import AutoModel

    try:
        with _quiet():
            loaded = AutoModel.from_pretrained(str(found.weights), local_files_only=True)
    except (OSError, ValueError, RuntimeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SpecError("model.checkpoint", f"'{found.path}': cannot load it ({first})") from None
    encoder.model.load_state_dict(loaded.state_dict())


def _freeze(encoder: Encoder, freeze: str | int) -> None:
    if freeze == "none":
        return
    if freeze == "all":
        encoder.requires_grad_(False)
        return
    blocks = encoder.blocks()
    for module in [*encoder.embeddings(), *list(blocks)[: int(freeze)]]:
        module.requires_grad_(False)


def _lora(encoder: Encoder, spec: PretrainedSpec, family: str) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    lora = spec.adapter.lora  # type: ignore[union-attr]  # called with an adapter
    target = lora.target or (GPT_TARGETS if family == "gpt" else _hf_targets(encoder))
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,  # type: ignore[arg-type]  # PEFT takes a float
        lora_dropout=lora.dropout,
        target_modules=target,
    )
    try:
        with _quiet():
            return get_peft_model(encoder, config)
    except ValueError as e:
        first = str(e).splitlines()[0]
        raise SpecError("model.adapter.lora.target", f"{target}: {first}") from None


def _hf_targets(encoder: Encoder) -> list[str]:
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as TARGETS

    model_type = encoder.model.config.model_type
    if model_type not in TARGETS:
        raise SpecError(
            "model.adapter.lora.target",
            f"PEFT has no default LoRA targets for model type '{model_type}'; name the linear "
            "layers to adapt",
        )
    return list(TARGETS[model_type])


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars or deprecation chatter from transformers and PEFT while loading."""
    from transformers.utils import logging

    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        if shown:
            logging.enable_progress_bar()
