"""The GPT decoder: shapes, causality, the KV cache, padding masks, tied weights, saving."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load

from canonml.errors import CanonError, SpecError
from canonml.model_io import ModelIO
from canonml.models import build_model
from canonml.models.gpt import GPT, greedy
from canonml.models.weights import load_trained, weights_bytes
from canonml.spec.model import GPTSpec

VOCAB = 23
SPEC = GPTSpec(layers=2, heads=2, dim=16, context=32, dropout=0.1)


def tiny(spec: GPTSpec = SPEC, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = build_model(spec, ModelIO((spec.context,), VOCAB))
    assert isinstance(model, GPT)
    return model.eval()


def ids(b: int, s: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (b, s), generator=torch.Generator().manual_seed(seed))


def test_shapes_and_attributes() -> None:
    model = tiny()
    x = ids(3, 7)
    assert model(x).shape == (3, 7, VOCAB)
    assert model.hidden(x).shape == (3, 7, 16)
    logits, present = model.forward_cached(x, model.empty_past(3))
    assert logits.shape == (3, 7, VOCAB)
    assert len(present) == 2 and all(k.shape == v.shape == (3, 2, 7, 8) for k, v in present)
    assert (model.context, model.vocab_size) == (32, VOCAB)
    # tok 23·16 + pos 32·16 + per block (2 LN 32 + qkv 768 + proj 256 + mlp 1024 + 1024)
    # + final LN 16, biases off
    assert model.num_parameters() == 368 + 512 + 2 * (32 + 768 + 256 + 2048) + 16


def test_build_refuses_an_input_shape_that_is_not_the_context() -> None:
    with pytest.raises(SpecError, match=r"model.context: 32 differs"):
        build_model(SPEC, ModelIO((16,), VOCAB))


def test_a_later_token_does_not_change_earlier_logits() -> None:
    model = tiny()
    x = ids(2, 10)
    y = x.clone()
    y[:, 6:] = (y[:, 6:] + 1) % VOCAB
    a, b = model(x), model(y)
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-6)
    assert not torch.allclose(a[:, 6:], b[:, 6:], atol=1e-3)


def test_cached_logits_equal_uncached_stepwise_and_for_a_chunked_prompt() -> None:
    model = tiny()
    x = ids(2, 12)
    full = model(x)
    past = model.empty_past(2)
    empty_logits, _ = model.forward_cached(x, past)
    assert (empty_logits - full).abs().max() <= 1e-5
    # a prompt in chunks of 5, 4 (S > 1 after a past), then one token at a time
    pieces, start = [], 0
    for size in (5, 4, 1, 1, 1):
        logits, past = model.forward_cached(x[:, start : start + size], past)
        pieces.append(logits)
        start += size
    assert past[0][0].shape == (2, 2, 12, 8)
    assert (torch.cat(pieces, dim=1) - full).abs().max() <= 1e-5


def test_greedy_with_and_without_the_cache_agree_and_stop_at_the_context() -> None:
    model = tiny(GPTSpec(layers=2, heads=2, dim=32, context=SPEC.context))
    torch.manual_seed(0)
    with torch.no_grad():  # wider than GPT-2's init, which greedily repeats the last token
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    prompt = ids(1, 4)[0].tolist()
    cached = greedy(model, prompt, 40, use_cache=True)
    assert len(set(cached)) > 5
    assert cached == greedy(model, prompt, 40, use_cache=False)
    assert len(cached) == SPEC.context - 4  # the sequence fills the context and stops
    with pytest.raises(ValueError, match="prompt tokens"):
        greedy(model, list(range(SPEC.context)), 1)


def test_hidden_masks_padded_keys() -> None:
    model = tiny()
    x = ids(2, 8)
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0  # the second row is 5 tokens, right-padded
    padded = x.clone()
    padded[1, 5:] = 0
    h = model.hidden(padded, mask)
    alone = model.hidden(padded[1:, :5])
    assert (h[1, :5] - alone[0]).abs().max() <= 1e-5
    assert torch.isfinite(h).all()
    # a full mask is the plain causal model
    assert (model.hidden(x, torch.ones(2, 8)) - model.hidden(x)).abs().max() <= 1e-5
    # left padding: the padded queries stay finite (each sees itself)
    left = torch.zeros(2, 8)
    left[:, 3:] = 1
    assert torch.isfinite(model.hidden(x, left)).all()


def test_head_is_tied_to_the_token_embedding() -> None:
    model = tiny().train()
    assert "tok.weight" in model.state_dict()
    assert not any("head" in k for k in model.state_dict())
    with torch.no_grad():
        before = model(ids(1, 3))
        model.tok.weight[5] += 1.0  # moving an embedding row moves that token's logit
        after = model(ids(1, 3))
    assert not torch.allclose(before[..., 5], after[..., 5])
    model.eval()
    model(ids(2, 4)).sum().backward()
    assert model.tok.weight.grad is not None


def test_gpt2_init_scales_the_residual_projections() -> None:
    model = tiny(GPTSpec(layers=8, heads=2, dim=64, context=16), seed=3)
    proj = model.blocks[0].attn.proj.weight.std().item()
    qkv = model.blocks[0].attn.qkv.weight.std().item()
    assert qkv == pytest.approx(0.02, rel=0.1)
    assert proj == pytest.approx(0.02 / 4, rel=0.15)  # 0.02 / sqrt(2 · 8)


def test_dropout_is_active_in_training_only() -> None:
    model = tiny()
    x = ids(2, 6)
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    assert not torch.equal(a, model(x))


def test_safetensors_round_trip() -> None:
    model = tiny()
    blob = weights_bytes(model, None)
    assert set(load(blob)) == set(model.state_dict())
    again = load_trained(SPEC, ModelIO((SPEC.context,), VOCAB), blob, "weights", CanonError)
    x = ids(2, 9)
    assert torch.equal(model(x), again(x))
