"""Hugging Face Hub: the model card's front matter and ``canon export --format hf``.

The front matter uses the Hub's own vocabularies, so the Hub files and filters the model:
``pipeline_tag`` from its task list, ``license`` as a Hub license id (an SPDX license the
Hub does not list becomes ``other`` with ``license_name`` and ``license_link``), metric
``type`` ids from Hugging Face ``evaluate`` (averaging in ``args``), ``library_name: onnx``
(canonml is not a Hub library; ONNX is the runtime the repository needs). The exported
folder is ready for ``huggingface-cli upload``: ``README.md`` (the package's model card,
byte for byte), ``model.onnx``, ``model.safetensors`` (the Hub's name for the weights),
``spec.yaml`` and ``canon.json``, whose hashes still match these bytes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from canonml.package.reader import HUB_NAMES, MANIFEST, Package
from canonml.package.writer import check_target, write_files
from canonml.tasks import get_task

# The Hub's pipeline tags canonml's tasks produce (huggingface.js packages/tasks/src/
# pipelines.ts) are the keys of TASK_NAMES; a task's ``pipeline_tag`` elsewhere is "other".
TASK_NAMES = {
    "tabular-classification": "Tabular Classification",
    "tabular-regression": "Tabular Regression",
    "image-classification": "Image Classification",
    "text-classification": "Text Classification",
    "unconditional-image-generation": "Unconditional Image Generation",
    "image-to-image": "Image-to-Image",
    "text-generation": "Text Generation",
    "other": "Other",
}
# canonml metric → (evaluate metric id, readable name, evaluate arguments). Metrics that
# evaluate lacks keep canonml's name as their id.
_MACRO, _WEIGHTED = {"average": "macro"}, {"average": "weighted"}
HUB_METRICS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "accuracy": ("accuracy", "Accuracy", None),
    "balanced_accuracy": ("balanced_accuracy", "Balanced accuracy", None),
    "precision_macro": ("precision", "Precision (macro)", _MACRO),
    "recall_macro": ("recall", "Recall (macro)", _MACRO),
    "f1_macro": ("f1", "F1 (macro)", _MACRO),
    "precision_weighted": ("precision", "Precision (weighted)", _WEIGHTED),
    "recall_weighted": ("recall", "Recall (weighted)", _WEIGHTED),
    "f1_weighted": ("f1", "F1 (weighted)", _WEIGHTED),
    "roc_auc": ("roc_auc", "ROC AUC", None),
    "log_loss": ("log_loss", "Log loss", None),
    "mse": ("mse", "MSE", None),
    "rmse": ("mse", "RMSE", {"squared": False}),
    "mae": ("mae", "MAE", None),
    "r2": ("r_squared", "R-squared", None),
    "max_error": ("max_error", "Max error", None),
}
# Hub license ids (hub-docs repositories-licenses.md) that SPDX ids map onto.
HUB_LICENSES = frozenset(
    "afl-3.0 agpl-3.0 apache-2.0 artistic-2.0 bsd-2-clause bsd-3-clause bsd-3-clause-clear "
    "bsl-1.0 c-uda cc-by-2.0 cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-nc-2.0 cc-by-nc-3.0 "
    "cc-by-nc-4.0 cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 "
    "cc-by-nc-sa-4.0 cc-by-nd-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc0-1.0 cdla-permissive-1.0 "
    "cdla-permissive-2.0 cdla-sharing-1.0 ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 "
    "gpl-2.0 gpl-3.0 isc lgpl-2.1 lgpl-3.0 lppl-1.3c mit mpl-2.0 ms-pl ncsa odbl odc-by "
    "ofl-1.1 osl-3.0 pddl postgresql unlicense wtfpl zlib".split()
)
_HUB_ALIASES = {
    "odbl-1.0": "odbl",
    "odc-by-1.0": "odc-by",
    "pddl-1.0": "pddl",
    "c-uda-1.0": "c-uda",
}
# exported name → package name: the Hub's names for the card and the weights; the package
# reader maps them back, so canon verify / predict / serve take the folder as a package.
HF_FILES = {
    HUB_NAMES.get(name, name): name
    for name in ("MODEL_CARD.md", "model.onnx", "weights.safetensors", "spec.yaml", MANIFEST)
}


def front_matter(m: dict[str, Any]) -> str:
    """The card's YAML front matter between ``---`` lines, built from the manifest (pure)."""
    sig = m["signature"]
    source = source_tag(m["data"]["source"])
    tag = get_task(m["task"]).pipeline_tag(sig["kind"])
    pipeline = tag if tag in TASK_NAMES else "other"
    metrics = hub_metrics(m["metrics"], len(sig.get("labels") or []))
    meta: dict[str, Any] = {**hub_license(m.get("license"))}
    meta |= {
        "library_name": "onnx",
        "pipeline_tag": pipeline,
        "tags": ["canonml", m["task"], sig["kind"], source, "onnx", "safetensors"],
        "metrics": list(dict.fromkeys(x["type"] for x in metrics)),
        "model-index": [
            {
                "name": m["name"],
                "results": [
                    {
                        "task": {"type": pipeline, "name": TASK_NAMES.get(pipeline, pipeline)},
                        "dataset": {"name": source, "type": source, "split": "test"},
                        "metrics": metrics,
                    }
                ],
            }
        ],
    }
    if not metrics:
        del meta["model-index"]  # the Hub rejects a result without metrics
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n"


def hub_metrics(metrics: dict[str, float], n_classes: int) -> list[dict[str, Any]]:
    """model-index metric entries; a NaN or infinite value (undefined on the split) is left out."""
    out = []
    for key, value in metrics.items():
        if not math.isfinite(float(value)):
            continue
        kind, name, args = HUB_METRICS.get(key, (key, key, None))
        if key == "roc_auc" and n_classes > 2:
            args = {"average": "macro", "multi_class": "ovr"}
        entry: dict[str, Any] = {"type": kind, "name": name, "value": float(value)}
        if args:
            entry["args"] = dict(args)
        out.append(entry)
    return out


def hub_license(spdx: str | None) -> dict[str, str]:
    """Front-matter license keys for an SPDX id or expression ({} when unset)."""
    if not spdx:
        return {}
    key = spdx.lower().removesuffix("-only").removesuffix("-or-later")
    key = _HUB_ALIASES.get(key, key)
    if key in HUB_LICENSES:
        return {"license": key}
    slug = "-".join(spdx.lower().replace("(", " ").replace(")", " ").split())
    keys = {"license": "other", "license_name": slug}
    if " " not in spdx and not spdx.startswith(("LicenseRef-", "DocumentRef-")):
        keys["license_link"] = f"https://spdx.org/licenses/{spdx}.html"
    return keys


def source_tag(source: str) -> str:
    """The data source as a tag; a csv path is local to the training machine, so its name."""
    scheme, _, arg = source.partition(":")
    return f"{scheme}:{arg.replace(chr(92), '/').rsplit('/', 1)[-1]}" if scheme == "csv" else source


def write_hf(pkg: Package, out: Path) -> Path:
    """Write ``pkg`` as a Hugging Face model folder ``out`` (atomically); return ``out``."""
    check_target(out, ours=_is_export, what="a model folder canon export wrote")
    files = {name: pkg.read(member) for name, member in HF_FILES.items()}
    # Files of the task's own (an autoencoder's encoder.onnx, decoder.onnx) keep their names.
    files |= {n: pkg.read(n) for n in pkg.manifest["files"] if n not in HF_FILES.values()}
    write_files(out, files)
    return out


def _is_export(path: Path) -> bool:
    return (path / MANIFEST).is_file() and (path / "README.md").is_file()
