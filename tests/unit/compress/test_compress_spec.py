"""The compression pieces on their own: structured pruning keeps exactly the kept units'
function, global pruning zeroes its share, the CPU's int8 features are read, a variant that
saves nothing says so, and the spec refuses what compression cannot do, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from canonml.compress import measure, prune
from canonml.compress.stage import _verdict, check_compress
from canonml.errors import SpecError
from canonml.model_io import ModelIO
from canonml.models import build_model
from canonml.spec import load_spec
from canonml.spec.model import CNNSpec, MLPSpec


@pytest.mark.parametrize(
    "model_spec",
    [
        MLPSpec(hidden=[16, 8], batch_norm=True),
        CNNSpec(channels=[4, 8], dense=[6], batch_norm=True),
        CNNSpec(channels=[4, 6], dense=[5], batch_norm=True, norm="group"),
    ],
)
def test_structured_pruning_keeps_the_kept_units_function(model_spec: object) -> None:
    io = ModelIO((1, 8, 8) if isinstance(model_spec, CNNSpec) else (12,), 3)
    torch.manual_seed(0)
    model = build_model(model_spec, io).eval()
    x = torch.randn(7, *io.input_shape)
    # Pruning (almost) nothing rebuilds the same function from the kept weights.
    same_spec, same = prune.pruned_structured(model_spec, model, 1e-6, lambda s: build_model(s, io))
    torch.testing.assert_close(same.eval()(x), model(x))
    small_spec, small = prune.pruned_structured(
        model_spec, model, 0.5, lambda s: build_model(s, io)
    )
    widths = [len(getattr(small_spec, k)) for k in prune.WIDTH_KEYS[model_spec.arch]]  # type: ignore[attr-defined]
    assert sum(widths) == sum(
        len(getattr(model_spec, k)) for k in prune.WIDTH_KEYS[model_spec.arch]
    )  # type: ignore[attr-defined]
    total_small = sum(p.numel() for p in small.parameters())
    assert total_small < 0.6 * sum(p.numel() for p in model.parameters())
    assert small.eval()(x).shape == (7, 3)


def test_global_pruning_zeroes_its_share_and_is_made_permanent() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.ReLU(), torch.nn.Linear(20, 3))
    prune.make_permanent(prune.prune_unstructured(model, 0.7))
    weights = [m.weight for m in prune.weight_layers(model)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == round(0.7 * sum(w.numel() for w in weights))
    assert not any(torch.nn.utils.prune.is_pruned(m) for m in model.modules())
    assert sorted(dict(model.named_parameters())) == ["0.bias", "0.weight", "2.bias", "2.weight"]


def test_cpu_features_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: Test CPU\nflags\t\t: fpu avx2 avx512f avx512_vnni\n", "utf-8")
    found = measure.cpu_features(info)
    assert found["avx512_vnni"] and found["avx2"] and not found["amx_int8"]
    assert "avx512_vnni yes" in measure.features_line(found)
    assert measure.cpu_features(tmp_path / "missing")["amx_int8"] is None


def test_a_variant_no_better_on_any_measure_is_no_gain() -> None:
    flat = dict.fromkeys(
        ["file_bytes", "zipped_bytes", "nonzero_parameters", "latency_ms_b1", "latency_ms_b256"],
        1.02,
    )
    assert _verdict(flat) == "no gain"
    assert _verdict({**flat, "zipped_bytes": 1.6}) == "1.6× smaller zipped"


@pytest.mark.parametrize(
    ("sets", "where"),
    [
        (["compress={prune: 1.5}"], "compress.prune[0].amount: must be < 1.0, got 1.5"),
        (["compress={prune: 0}"], "compress.prune[0].amount"),
        (["compress={quantize: int4}"], "compress.quantize"),
        (["compress={distill: {student: {arch: gpt}}}"], "compress.distill.student"),
        (["compress={distill: {student: {arch: mlp}, alpha: 2}}"], "compress.distill.alpha"),
        (["compress=true", "task=language-modeling", "model.arch=gpt"], "compress"),
        (
            ["compress={distill: {student: {arch: mlp}}}", "privacy.dp.epsilon=3"],
            "compress.distill",
        ),
        (["compress={prune: 0.5}", "privacy.dp.epsilon=3"], "compress.prune.epochs"),
    ],
)
def test_the_spec_refuses_what_compression_cannot_do(sets: list[str], where: str) -> None:
    template = "template:news-gpt" if "task=language-modeling" in sets else "template:digits-mlp"
    with pytest.raises(SpecError) as found:
        load_spec(
            template, [s for s in sets if "=" in s and not s.startswith(("task=", "model.arch="))]
        )
    assert str(found.value).startswith(where), str(found.value)


def test_a_student_larger_than_its_teacher_or_an_unprunable_arch_is_refused() -> None:
    from canonml.data.prepare import prepare
    from canonml.tasks import get_task

    spec = load_spec(
        "template:iris", ["compress={distill: {student: {arch: mlp, hidden: [512, 512]}}}"]
    )
    task = get_task(spec)
    data, _ = prepare(spec, task)
    model = build_model(spec.model, task.model_io(data.input_shape, data.label_names))
    with pytest.raises(SpecError, match="compress.distill.student: has"):
        check_compress(spec, task, model, data)
    ok = load_spec("template:iris", ["compress={prune: [0.5, {amount: 0.5, structured: true}]}"])
    check_compress(ok, task, model, data)
    twice = load_spec("template:iris", ["compress={prune: [0.5, 0.5]}"])
    with pytest.raises(SpecError, match="same variant"):
        check_compress(twice, task, model, data)
