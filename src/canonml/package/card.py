"""``MODEL_CARD.md``: a model card (Mitchell et al. 2019) filled from the run (pure).

YAML front matter in the Hugging Face model-card metadata (``canonml.package.hf``). What
the run cannot know (intended users, license, ethical review) is marked as such, never
invented.
"""

from __future__ import annotations

import json
from typing import Any

from canonml.package.hf import front_matter
from canonml.tasks import get_task

UNKNOWN = "_Not specified by the run._"


def model_card(
    manifest: dict[str, Any],
    spec: dict[str, Any],
    evaluation: dict[str, Any],
    described: dict[str, Any],
    params: int,
) -> str:
    """The whole card: front matter, then one section per model-card heading."""
    sections = [
        f"# {manifest['name']}\n",
        _details(manifest, spec, params),
        _intended_use(manifest, spec),
        _training_data(manifest, spec, described),
        _evaluation_data(manifest, spec),
        _metrics(manifest, spec, evaluation),
        _privacy(manifest),
        _ethics(),
        _caveats(manifest, evaluation),
    ]
    return front_matter(manifest) + "\n".join(sections)


def _privacy(m: dict[str, Any]) -> str:
    """Differential privacy, when the model was trained with it (the manifest's block)."""
    p = m.get("privacy")
    if not p:
        return "## Privacy\n\nTrained without differential privacy.\n"
    return (
        "## Privacy\n\n"
        f"Trained with {p['mechanism']}: (ε = {p['epsilon']:.4g}, δ = {p['delta']:.3g})-"
        f"differential privacy for each training example, by the {p['accountant']} "
        f"accountant (target ε {p['target_epsilon']:g}). Noise multiplier "
        f"{p['noise_multiplier']:.6g}, clipping norm {p['max_grad_norm']:g}, sample rate "
        f"{p['sample_rate']:.6g}, {p['steps']} steps over {p['training_examples']} training "
        "examples: Opacus' accountant re-derives ε from these numbers. The guarantee covers "
        "the training data only, not the validation and test splits used to choose and "
        "score the model.\n"
    )


def _details(m: dict[str, Any], spec: dict[str, Any], params: int) -> str:
    sig, v = m["signature"], m["versions"]
    license_ = f"`{m['license']}` (SPDX)" if m.get("license") else UNKNOWN
    arch = ", ".join(f"{k}: {json.dumps(v)}" for k, v in spec["model"].items() if k != "arch")
    outputs = ", ".join(f"`{o['name']}` {o['datatype']} {o['shape']}" for o in sig["outputs"])
    return (
        "## Model details\n\n"
        f"- Version (run id): `{m['version']}`, packaged {m['created']}\n"
        f"- Task: {m['task']} on {sig['kind']} data\n"
        f"- Architecture: `{spec['model']['arch']}` ({arch}); {params:,} parameters\n"
        f"- Input: {_inputs(sig)}\n"
        f"- Outputs: {outputs}\n"
        f"- Trained with canonml {v['canonml']}, PyTorch {v['torch']}; ONNX opset {v['opset']}\n"
        "- Files: `model.onnx`, the weights (`weights.safetensors` in the canonml package, "
        "`model.safetensors` in a Hugging Face export), `spec.yaml` (reproduces the run), "
        "`canon.json` (manifest, sha256 of every file)\n"
        f"- License: {license_}\n"
        f"- Developers and contact: {UNKNOWN}\n"
    )


def _inputs(sig: dict[str, Any]) -> str:
    """The graph's inputs; raw data values, or a graph of its own (a generator's noise)."""
    if [i["name"] for i in sig["inputs"]] == ["input"]:
        shape = sig["inputs"][0]["shape"]
        return f"`input` FP32 {shape} (raw values; preprocessing is inside the graph)"
    return ", ".join(f"`{i['name']}` {i['datatype']} {i['shape']}" for i in sig["inputs"])


def _intended_use(m: dict[str, Any], spec: dict[str, Any]) -> str:
    what = what_it_does(m, (spec.get("data") or {}).get("target"))
    return (
        "## Intended use\n\n"
        f"What the model does: it {what}.\n\n"
        f"Primary intended uses and users: {UNKNOWN}\n\n"
        "### Out-of-scope use\n\n"
        f"{UNKNOWN} The model was evaluated only on data from the training source "
        f"(`{m['data']['source']}`); inputs unlike it (other columns, units, image sizes or "
        "sources) were never evaluated.\n"
    )


def _training_data(m: dict[str, Any], spec: dict[str, Any], described: dict[str, Any]) -> str:
    data, sizes = spec["data"], m["data"]["sizes"] or {}
    pre, split = data["preprocess"], data["split"]
    dups = described.get("duplicates_removed")
    return (
        "## Training data\n\n"
        f"- Source: `{m['data']['source']}`"
        + (f" ({described['rows']} rows)" if "rows" in described else "")
        + "\n"
        f"- Fingerprint (sha256 of the raw training examples): `{m['data']['fingerprint']}`\n"
        f"- Train / validation examples: {sizes.get('train')} / {sizes.get('val')}; "
        f"seeded split (seed {spec['seed']}, val {split['val']}, test {split['test']}, "
        f"stratified: {str(split['stratify']).lower()})\n"
        + (f"- Duplicates removed before the split: {dups}\n" if dups is not None else "")
        + f"- Preprocessing fitted on the train split only: {_preprocessing(m, pre)} "
        "(constants in `canon.json` signature.preprocessing)\n"
    )


def _preprocessing(m: dict[str, Any], pre: dict[str, Any]) -> str:
    if m["signature"]["kind"] == "image":
        return f"scale {pre['scale']} per channel"
    target = ", target standardised" if m["signature"]["preprocessing"].get("target") else ""
    return f"impute {pre['impute']}, scale {pre['scale']}{target}"


def _evaluation_data(m: dict[str, Any], spec: dict[str, Any]) -> str:
    n = (m["data"]["sizes"] or {}).get("test")
    stopping = (spec.get("train") or {}).get("early_stopping")
    watched = (
        f" (early stopping watched {stopping.get('monitor', 'val_loss')} on the validation split)"
        if stopping
        else ""
    )
    return (
        "## Evaluation data\n\n"
        f"The test split of `{m['data']['source']}`: {n} examples, used neither for training "
        f"nor for model selection{watched}.\n"
    )


def _metrics(m: dict[str, Any], spec: dict[str, Any], evaluation: dict[str, Any]) -> str:
    interval, headline = m.get("interval"), m.get("headline")
    rows = ["| metric | value | 95% interval |", "| --- | ---: | ---: |"]
    for name, value in (evaluation.get("metrics") or m["metrics"]).items():
        ci = f"{interval[0]:.4f} – {interval[1]:.4f}" if interval and name == headline else "—"
        shown = "undefined on this split" if value is None else f"{value:.4f}"
        rows.append(f"| {name} | {shown} | {ci} |")
    notes = (
        f"\nThe interval of {headline} is a bootstrap 95% percentile interval over "
        f"{spec['evaluate']['ci']} resamples of the test split; other metrics have none.\n"
        if interval
        else "\nNo interval was computed (evaluate.ci: 0).\n"
    )
    cv = evaluation.get("cv")
    if cv:
        cv_rows = [
            f"{k} {v['mean']:.4f} ± {v['std']:.4f}"
            for k, v in cv["metrics"].items()
            if v["mean"] is not None and v["std"] is not None
        ]
        notes += f"\n{cv['folds']}-fold cross-validation on train+val: {'; '.join(cv_rows)}.\n"
    return "## Metrics\n\n" + "\n".join(rows) + "\n" + notes + _per_class(evaluation)


def _per_class(evaluation: dict[str, Any]) -> str:
    rows = evaluation.get("per_class") or []
    if not rows:
        return ""
    lines = [
        "",
        "| class | precision | recall | f1 | support |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} "
            f"| {r['support']} |"
        )
    return "\n".join(lines) + "\n"


def _ethics() -> str:
    return (
        "## Ethical considerations\n\n"
        f"{UNKNOWN} The run assessed neither fairness across groups nor the provenance, "
        "consent or sensitivity of its training data.\n\n"
        "Privacy: trained without differential privacy (`privacy: null` in `canon.json`).\n"
    )


def _caveats(m: dict[str, Any], evaluation: dict[str, Any]) -> str:
    n = (m["data"]["sizes"] or {}).get("test")
    lines = [
        f"- The metrics come from one test split of {n} examples; on other data from the "
        "same source they may differ by about the width of the interval, elsewhere by more.",
    ]
    if [i["name"] for i in m["signature"]["inputs"]] == ["input"]:
        lines.append("- Send raw values: imputation and scaling are folded into `model.onnx`.")
    per_class = evaluation.get("per_class") or []
    if per_class:
        worst = min(per_class, key=lambda r: r["recall"])
        lines.append(
            f"- Lowest recall on the test split: class {worst['label']} ({worst['recall']:.3f})."
        )
    if m["signature"]["preprocessing"].get("categorical"):
        lines.append(
            "- Categorical columns enter the graph one-hot (`col=value`); a category unseen "
            "in training encodes as all zeros."
        )
    lines.append("- Check a copy of the package with `canon verify` before use.")
    lines.append(f"- Further recommendations: {UNKNOWN}")
    return "## Caveats and recommendations\n\n" + "\n".join(lines) + "\n"


def what_it_does(m: dict[str, Any], target: str | None = None) -> str:
    """``classifies rows of 4 features into 3 classes (a, b, c)``: the card's one-liner."""
    sig = m["signature"]
    return get_task(m["task"]).what_it_does(sig, target, _input_words(sig))


def _input_words(sig: dict[str, Any]) -> str:
    if sig["kind"] == "image":
        c, h, w = sig["image_shape"]
        return f"{h}×{w} images with {c} channel{'s' if c > 1 else ''}"
    if sig.get("text"):
        return f"texts (tokenized with tokenizer.json, at most {sig['text']['max_length']} tokens)"
    return f"rows of {len(sig['features'])} features"
