"""The language model's ONNX graph with its KV cache, and torch-free generation from it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from canonml.errors import CanonError
from canonml.model_io import ModelIO
from canonml.models import build_model
from canonml.models.gpt import GPT, greedy
from canonml.package.generate import TextGenerator, pick, stream_text
from canonml.package.lm_export import check_lm, empty_past, export_decoder, lm_signature
from canonml.package.verify import signature_problems
from canonml.spec.model import GPTSpec

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
tokenizers = pytest.importorskip("tokenizers")

TEXT = "the quick brown fox jumps over the lazy dog.\n人民日报新闻。"
EOS = 2
CONTEXT = 128


def char_tokenizer(text: str = TEXT) -> tokenizers.Tokenizer:
    """WordLevel over characters; <pad>, <unk>, <eos> are ids 0, 1, 2."""
    from tokenizers import Regex, decoders, models, pre_tokenizers

    vocab = {"<pad>": 0, "<unk>": 1, "<eos>": EOS}
    vocab |= {c: i + 3 for i, c in enumerate(sorted(set(text)))}
    tok = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(["<pad>", "<unk>", "<eos>"])
    return tok


def tiny_gpt(vocab: int, seed: int = 0) -> GPT:
    """Random weights spread wider than GPT-2's init (std 0.02), under which the tied head
    makes greedy decoding repeat the last token: these wander over the vocabulary."""
    torch.manual_seed(seed)
    spec = GPTSpec(layers=2, heads=2, dim=32, context=CONTEXT, dropout=0.1)
    model = build_model(spec, ModelIO((CONTEXT,), vocab))
    assert isinstance(model, GPT)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def tok() -> tokenizers.Tokenizer:
    return char_tokenizer()


@pytest.fixture(scope="module")
def model(tok: tokenizers.Tokenizer) -> GPT:
    return tiny_gpt(tok.get_vocab_size())


@pytest.fixture(scope="module")
def graph(model: GPT) -> bytes:
    return export_decoder(model)


@pytest.fixture(scope="module")
def gen(graph: bytes, tok: tokenizers.Tokenizer, model: GPT) -> TextGenerator:
    return TextGenerator(graph, tok, lm_signature(model, EOS)["generator"])


def test_graph_passes_the_checker_and_has_the_optimum_signature(graph: bytes, model: GPT) -> None:
    proto = onnx.load_from_string(graph)
    onnx.checker.check_model(proto, full_check=True)
    sig = lm_signature(model, EOS)
    assert signature_problems(sig, proto) == []
    names = [i["name"] for i in sig["inputs"]]
    assert names == ["input_ids"] + [
        f"past_key_values.{i}.{kv}" for i in range(2) for kv in ("key", "value")
    ]
    assert [o["name"] for o in sig["outputs"]][:3] == ["logits", "present.0.key", "present.0.value"]
    assert sig["inputs"][1]["shape"] == [-1, 2, -1, 16]
    assert sig["outputs"][0]["shape"] == [-1, -1, model.vocab_size]
    assert sig["generator"] == {
        "context": CONTEXT,
        "layers": 2,
        "heads": 2,
        "head_dim": 16,
        "vocab_size": model.vocab_size,
        "eos_id": EOS,
    }


def test_ort_logits_equal_pytorch_from_an_empty_past_and_after_one(
    graph: bytes, model: GPT
) -> None:
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    ids = torch.randint(3, model.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(ids).numpy()
    past = empty_past(model, 2)  # past_sequence = 0
    pieces = []
    for chunk in (ids[:, :7], ids[:, 7:10], ids[:, 10:11], ids[:, 11:]):
        out = session.run(None, {"input_ids": chunk.numpy(), **past})
        pieces.append(out[0])
        past = dict(zip(past, out[1:], strict=True))
    assert past["past_key_values.1.value"].shape == (2, 2, 12, 16)
    assert np.abs(np.concatenate(pieces, axis=1) - full).max() <= 1e-4


def test_greedy_is_the_same_cached_uncached_pytorch_and_ort(
    graph: bytes, tok: tokenizers.Tokenizer, model: GPT, gen: TextGenerator
) -> None:
    prompts = ["the quick", "人民", "z"]  # "z" is unknown: <unk>
    assert check_lm(graph, tok, model, prompts, n=100, eos_id=EOS) == []
    ids = gen.prompt_ids("the lazy dog")
    want = greedy(model, ids, 100, use_cache=True)
    assert len(want) == 100 and len(set(want)) > 10
    assert gen.generate_ids(ids, 100, use_cache=True) == want
    assert gen.generate_ids(ids, 100, use_cache=False) == want


def test_check_lm_reports_a_graph_of_other_weights(
    tok: tokenizers.Tokenizer, model: GPT, graph: bytes
) -> None:
    other = tiny_gpt(model.vocab_size, seed=7)
    problems = check_lm(graph, tok, other, ["the quick"], n=20, eos_id=EOS)
    assert problems and "ONNX Runtime with the cache gives token" in problems[0]
    assert "after prompt 1 ('the quick')" in problems[0]


def test_temperature_zero_top_k_one_and_a_tiny_top_p_are_greedy(gen: TextGenerator) -> None:
    greedy_text = gen.complete("the ", max_new_tokens=40, temperature=0, stop_at_eos=False)
    for settings in ({"top_k": 1}, {"top_p": 1e-9}):
        text = gen.complete(
            "the ", max_new_tokens=40, temperature=1.5, seed=5, stop_at_eos=False, **settings
        )
        assert text == greedy_text


def test_sampling_is_seeded(gen: TextGenerator) -> None:
    def sample(seed: int) -> str:
        return gen.complete(
            "fox",
            max_new_tokens=60,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            seed=seed,
            stop_at_eos=False,
        )

    assert sample(1) == sample(1)
    assert len({sample(s) for s in range(4)}) == 4
    assert sample(1) != gen.complete("fox", max_new_tokens=60, temperature=0, stop_at_eos=False)


def test_pick_keeps_to_top_k_top_p_and_temperature() -> None:
    logits = np.array([0.0, 3.0, 2.9, 1.0, 2.8, -1.0], np.float32)
    rng = np.random.default_rng(0)
    top3 = {pick(logits, 1.0, 3, 1.0, rng) for _ in range(300)}
    assert top3 == {1, 2, 4}
    # softmax mass of [3.0, 2.9, 2.8] ≈ 0.29, 0.26, 0.24: 0.5 needs the best two
    assert {pick(logits, 1.0, 0, 0.5, rng) for _ in range(300)} == {1, 2}
    # a low temperature sharpens to the best token, a high one spreads over all
    assert {pick(logits, 0.01, 0, 1.0, rng) for _ in range(100)} == {1}
    assert {pick(logits, 100.0, 0, 1.0, rng) for _ in range(600)} == set(range(6))
    ties = np.array([1.0, 5.0, 5.0], np.float32)
    assert pick(ties, 1.0, 1, 1.0, rng) == pick(ties, 0.0, 0, 1.0, rng) == 1


def test_streamed_pieces_join_to_the_decoded_tokens(
    gen: TextGenerator, tok: tokenizers.Tokenizer
) -> None:
    settings = {"max_new_tokens": 50, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 2}
    pieces = list(gen.generate("人民", **settings, stop_at_eos=False))
    ids = gen.generate_ids(gen.prompt_ids("人民"), **settings)
    assert len(pieces) > 1
    assert "".join(pieces) == tok.decode(ids, skip_special_tokens=True)


def test_byte_level_bpe_streams_whole_characters(tmp_path: Path) -> None:
    from tokenizers import decoders, models, pre_tokenizers, trainers

    bpe = tokenizers.Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<pad>", "<unk>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(["人民日报新闻，北京一月一日电。"] * 20, trainer)
    model = tiny_gpt(bpe.get_vocab_size(), seed=1)
    gen = TextGenerator(export_decoder(model), bpe, lm_signature(model, EOS)["generator"])
    settings = {"max_new_tokens": 60, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 4}
    pieces = list(gen.generate("人民日报", **settings, stop_at_eos=False))
    ids = gen.generate_ids(gen.prompt_ids("人民日报"), **settings)
    assert "".join(pieces) == bpe.decode(ids)


def test_stream_text_holds_a_character_until_its_last_byte() -> None:
    from tokenizers import decoders, models, pre_tokenizers

    # byte-level tokens without merges: each of these characters is 3 tokens
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    bpe = tokenizers.Tokenizer(models.BPE({c: i for i, c in enumerate(sorted(alphabet))}, []))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    text = "人民日报 news，北京"
    ids = bpe.encode(text).ids
    assert len(ids) == 3 * 7 + 5
    prompt = bpe.encode("新闻").ids
    pieces = list(stream_text(bpe, prompt, ids))
    assert pieces == ["人", "民", "日", "报", " ", "n", "e", "w", "s", "，", "北", "京"]
    cut = list(stream_text(bpe, prompt, ids[:-1]))  # ends inside 京: flushed as U+FFFD
    assert "".join(cut[:-1]) == "人民日报 news，北" and cut[-1] == "\ufffd"


def test_context_rule(gen: TextGenerator, tok: tokenizers.Tokenizer) -> None:
    assert gen.context == CONTEXT
    assert gen.count_tokens("the fox") == 7
    assert gen.count_tokens("") == 1  # the start token
    long = "a" * CONTEXT
    with pytest.raises(CanonError, match=r"prompt: 128 tokens leave no room .* context of 128"):
        gen.generate(long)  # refused at the call, before any token
    near = "a" * (CONTEXT - 5)
    assert len(gen.generate_ids(gen.prompt_ids(near), 100)) == 5  # stops at the context
    assert len(tok.encode(gen.complete(near, max_new_tokens=100, stop_at_eos=False)).ids) <= 5


def test_an_empty_prompt_starts_from_eos_and_eos_stops(
    graph: bytes, tok: tokenizers.Tokenizer, model: GPT
) -> None:
    facts = lm_signature(model, EOS)["generator"]
    assert TextGenerator(graph, tok, facts).prompt_ids("") == [EOS]
    with pytest.raises(CanonError, match="prompt: empty"):
        TextGenerator(graph, tok, facts | {"eos_id": None}).generate_ids([], 3)
    # make the greedy first token the end of text: generation stops before it
    first = greedy(model, tok.encode("the").ids, 1)[0]
    stopping = TextGenerator(graph, tok, facts | {"eos_id": first})
    assert stopping.complete("the", temperature=0) == ""
    assert stopping.complete("the", temperature=0, stop_at_eos=False, max_new_tokens=3) != ""


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"temperature": -0.1}, "temperature: must be >= 0"),
        ({"top_k": -1}, "top_k: must be >= 0"),
        ({"top_p": 0.0}, r"top_p: must be in \(0, 1\], got 0.0"),
        ({"max_new_tokens": -1}, "max_new_tokens: must be >= 0"),
    ],
)
def test_bad_settings_name_themselves(
    gen: TextGenerator, setting: dict[str, float], message: str
) -> None:
    with pytest.raises(CanonError, match=message):
        gen.generate("the", **setting)  # type: ignore[arg-type]


def test_concurrent_calls_on_one_session_are_independent(gen: TextGenerator) -> None:
    def run(seed: int) -> str:
        return gen.complete("the", max_new_tokens=40, seed=seed, stop_at_eos=False)

    alone = [run(s) for s in range(6)]
    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(run, range(6))) == alone


def test_generation_works_with_torch_unimportable(
    tmp_path: Path, graph: bytes, tok: tokenizers.Tokenizer, model: GPT, gen: TextGenerator
) -> None:
    (tmp_path / "model.onnx").write_bytes(graph)
    tok.save(str(tmp_path / "tokenizer.json"))
    facts = lm_signature(model, EOS)["generator"]
    (tmp_path / "generator.json").write_text(json.dumps(facts))
    code = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["torch"] = None  # any import of torch now fails
        from canonml.package.generate import TextGenerator
        gen = TextGenerator.from_dir({str(tmp_path)!r})
        print(json.dumps(list(gen.generate("the", max_new_tokens=30, seed=9))))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    pieces = json.loads(done.stdout)
    assert "".join(pieces) == gen.complete("the", max_new_tokens=30, seed=9)
