"""``gpt`` — a decoder-only transformer (GPT-2 style) with an optional KV cache.

Token + learned position embeddings → ``layers`` pre-norm blocks (LayerNorm → causal
self-attention → residual; LayerNorm → GELU MLP → residual) → final LayerNorm → logits over
the vocabulary with the token embedding as the head (weight tying, Press & Wolf 2017).

The head is ``F.linear(h, tok.weight)`` rather than a second module sharing the parameter,
so the state dict holds the embedding once and safetensors (which refuses tensors that share
memory) saves and loads it as it is. ``forward_cached`` takes and returns the keys and values
of every layer — the graph ``package/lm_export.py`` exports with its cache as inputs and
outputs; ``greedy`` decodes with or without it (verify and ``bench/generate.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from canonml.errors import SpecError
from canonml.model_io import ModelIO
from canonml.models import MODELS
from canonml.spec.model import GPTSpec

KV = tuple[torch.Tensor, torch.Tensor]  # (keys, values), each (B, H, T, D)


class Attention(nn.Module):
    """Multi-head self-attention whose new keys and values are appended to a past."""

    def __init__(self, spec: GPTSpec) -> None:
        super().__init__()
        self.heads, self.dim, self.dropout = spec.heads, spec.dim, spec.dropout
        self.qkv = nn.Linear(spec.dim, 3 * spec.dim, bias=spec.bias)
        self.proj = nn.Linear(spec.dim, spec.dim, bias=spec.bias)
        self.drop = nn.Dropout(spec.dropout)

    def forward(
        self, x: torch.Tensor, past: KV | None = None, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, KV]:
        """x (B, S, C) → (B, S, C) and the keys/values (B, H, P + S, D) with the past's first.

        ``mask`` (bool, True = attend; broadcast to (B, H, S, P + S)) replaces the plain
        causal mask, which is only right when there is no past.
        """
        b, s, c = x.shape[0], x.shape[1], self.dim  # C is fixed: a constant when traced
        q, k, v = self.qkv(x).split(c, dim=2)
        # (B, S, C) → (B, H, S, D)
        q, k, v = (t.view(b, s, self.heads, c // self.heads).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=p, is_causal=mask is None
        )
        y = y.transpose(1, 2).contiguous().view(b, s, c)  # (B, S, C)
        return self.drop(self.proj(y)), (k, v)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, spec: GPTSpec) -> None:
        super().__init__()
        width = spec.mlp_ratio * spec.dim
        self.ln1 = nn.LayerNorm(spec.dim, bias=spec.bias)
        self.attn = Attention(spec)
        self.ln2 = nn.LayerNorm(spec.dim, bias=spec.bias)
        self.mlp = nn.Sequential(
            nn.Linear(spec.dim, width, bias=spec.bias),
            nn.GELU(),
            nn.Linear(width, spec.dim, bias=spec.bias),
            nn.Dropout(spec.dropout),
        )

    def forward(
        self, x: torch.Tensor, past: KV | None = None, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, KV]:
        a, present = self.attn(self.ln1(x), past, mask)
        x = x + a
        return x + self.mlp(self.ln2(x)), present


class GPT(nn.Module):
    """The decoder. ``forward(ids)`` gives next-token logits (B, S, V) for training."""

    def __init__(self, spec: GPTSpec, vocab_size: int) -> None:
        super().__init__()
        self.context, self.vocab_size = spec.context, vocab_size
        self.layers, self.heads, self.head_dim = spec.layers, spec.heads, spec.dim // spec.heads
        self.tok = nn.Embedding(vocab_size, spec.dim)
        self.pos = nn.Embedding(spec.context, spec.dim)
        self.drop = nn.Dropout(spec.dropout)
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec.layers))
        self.ln_f = nn.LayerNorm(spec.dim, bias=spec.bias)
        self._init_weights(spec.layers)

    def _init_weights(self, layers: int) -> None:
        # GPT-2: N(0, 0.02) everywhere; the projections that write into the residual stream
        # get 0.02 / sqrt(2 · layers), so the stream's variance does not grow with depth.
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for name, param in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.2.weight")):
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * layers))

    def num_parameters(self) -> int:
        """Trainable parameters (the tied head counted once, as in the state dict)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, S) → logits (B, S, V), position t seeing tokens 0..t."""
        return self.head(self.hidden(ids))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Final-normed states (B, S, C) → logits (B, S, V) through the tied embedding."""
        return F.linear(h, self.tok.weight)

    def hidden(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, S) → the final-normed states (B, S, C), for a head of one's own.

        ``attention_mask`` (B, S), 1 for tokens and 0 for padding, keeps padded keys out of
        every query's view. Positions count from the first column, so pad on the right; a
        padded query still sees itself (else its softmax row would be empty and give NaN).
        """
        mask = None
        if attention_mask is not None:
            s = ids.shape[1]
            causal = torch.ones(s, s, dtype=torch.bool, device=ids.device).tril()
            keys = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, S)
            # Not torch.eye(dtype=bool): ONNX Runtime has no boolean EyeLike.
            pos = torch.arange(s, device=ids.device)
            eye = pos[:, None] == pos[None, :]
            mask = (causal & keys) | eye  # (B, 1, S, S)
        x = self._embed(ids, 0)
        for block in self.blocks:
            x, _ = block(x, None, mask)
        return self.ln_f(x)

    def forward_cached(self, ids: torch.Tensor, past: list[KV]) -> tuple[torch.Tensor, list[KV]]:
        """ids (B, S) after ``past`` (per layer, keys and values (B, H, P, D)) → logits
        (B, S, V) and the presents (B, H, P + S, D). Positions start at P; P = 0 (empty
        tensors) gives ``forward``'s logits."""
        s, p = ids.shape[1], past[0][0].shape[2]
        # New query i (absolute position P + i) sees keys 0..P + i: all the past, and the
        # new tokens causally. (S, P + S), broadcast over batch and heads.
        q_pos = torch.arange(s, device=ids.device)[:, None] + p
        k_pos = torch.arange(p + s, device=ids.device)[None, :]
        mask = k_pos <= q_pos
        x = self._embed(ids, p)
        presents = []
        for block, kv in zip(self.blocks, past, strict=True):
            x, present = block(x, kv, mask)
            presents.append(present)
        return self.head(self.ln_f(x)), presents

    def empty_past(self, batch: int = 1) -> list[KV]:
        """A cache holding nothing: per layer, keys and values (batch, H, 0, D)."""
        weight = self.tok.weight
        z = weight.new_zeros(batch, self.heads, 0, self.head_dim)
        return [(z, z) for _ in range(self.layers)]

    def _embed(self, ids: torch.Tensor, start: int | torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device) + start  # (S,)
        return self.drop(self.tok(ids) + self.pos(positions))  # (B, S, C)


class CachedDecoder(nn.Module):
    """``model.forward_cached`` over flat tensors, the form of the exported graph:
    (input_ids, past 0 key, past 0 value, ...) → (logits, present 0 key, ...)."""

    def __init__(self, model: GPT) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        past = [(flat[2 * i], flat[2 * i + 1]) for i in range(len(flat) // 2)]
        logits, presents = self.model.forward_cached(ids, past)
        return (logits, *(t for kv in presents for t in kv))


@MODELS.register("gpt")
def build_gpt(spec: GPTSpec, io: ModelIO) -> nn.Module:
    """A GPT of ``spec``'s sizes over ``io.n_outputs`` tokens; ``io.input_shape`` is
    ``(context,)`` and must agree with ``spec.context``."""
    if io.input_shape != (spec.context,):
        raise SpecError(
            "model.context", f"{spec.context} differs from the task's input shape {io.input_shape}"
        )
    return GPT(spec, io.n_outputs)


@torch.no_grad()
def greedy(model: GPT, ids: list[int], n: int, use_cache: bool = True) -> list[int]:
    """The ``n`` tokens greedy decoding appends to ``ids`` (fewer if the sequence reaches
    ``model.context``: generation stops there, as ``TextGenerator`` does)."""
    if not ids or len(ids) >= model.context:
        raise ValueError(f"greedy: need 1 to {model.context - 1} prompt tokens, got {len(ids)}")
    was_training = model.training
    model.eval()
    seq = list(ids)
    n = min(n, model.context - len(seq))
    dev = model.tok.weight.device
    past, step = model.empty_past(), torch.tensor([seq], device=dev)
    for _ in range(n):
        if use_cache:
            logits, past = model.forward_cached(step, past)
        else:
            logits = model(torch.tensor([seq], device=dev))
        token = int(logits[0, -1].argmax())
        seq.append(token)
        step = torch.tensor([[token]], device=dev)
    model.train(was_training)
    return seq[len(ids) :]
