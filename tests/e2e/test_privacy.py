"""``privacy.dp`` end to end: DP-SGD with Opacus on breast-cancer; the recorded ε is re-derived
by Opacus' accountant alone; it reaches metrics.json, the manifest, the card and the report;
exact resume under DP; BatchNorm becomes GroupNorm; bad privacy specs are one line."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import canonml
from tests.conftest import interrupted_run, run_cli

DP = ["privacy.dp.epsilon=3", "train.epochs=8", "track=false"]


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> canonml.RunResult:
    out = tmp_path_factory.mktemp("dp")
    return canonml.run("template:breast-cancer", out, overrides=DP)


def test_the_recorded_epsilon_is_re_derived_by_the_accountant_alone(
    private: canonml.RunResult,
) -> None:
    from opacus.accountants import RDPAccountant
    from opacus.accountants.utils import get_noise_multiplier

    p = json.loads((private.run_dir / "privacy.json").read_text("utf-8"))
    metrics = json.loads((private.run_dir / "metrics.json").read_text("utf-8"))
    assert 0 < metrics["dp_epsilon"] <= 3.0 and metrics["dp_epsilon"] == p["epsilon"]
    n = p["training_examples"]
    assert p["delta"] < 1 / n and p["sample_rate"] == pytest.approx(64 / n)
    assert p["steps"] == 8 * -(-n // 64)  # ceil(N / batch) Poisson batches an epoch
    accountant = RDPAccountant()  # only the recorded numbers
    accountant.history = [(p["noise_multiplier"], p["sample_rate"], p["steps"])]
    with warnings.catch_warnings():  # Opacus: "optimal order is the largest alpha"
        warnings.simplefilter("ignore", UserWarning)
        assert accountant.get_epsilon(delta=p["delta"]) == pytest.approx(p["epsilon"], rel=1e-9)
        sigma = get_noise_multiplier(
            target_epsilon=3.0,
            target_delta=p["delta"],
            sample_rate=p["sample_rate"],
            steps=p["steps"],
        )
    assert sigma == pytest.approx(p["noise_multiplier"])  # derived from the target ε
    epochs = [r["epsilon"] for r in private.history]
    assert epochs == sorted(epochs) and epochs[-1] == pytest.approx(p["epsilon"])


def test_privacy_reaches_the_manifest_card_and_report(private: canonml.RunResult) -> None:
    package = private.run_dir / "package"
    manifest = json.loads((package / "canon.json").read_text("utf-8"))
    assert manifest["privacy"]["epsilon"] == pytest.approx(private.metrics["dp_epsilon"])
    assert manifest["privacy"]["accountant"] == "rdp"
    card = (package / "MODEL_CARD.md").read_text("utf-8")
    assert "## Privacy" in card and f"ε = {private.metrics['dp_epsilon']:.4g}" in card
    report = (private.run_dir / "report.html").read_text("utf-8")
    assert "Privacy" in report and "noise multiplier" in report
    assert canonml.verify_package(package) == []
    assert private.metrics["accuracy"] >= 0.8  # 8 epochs; the full 30 are in bench/privacy.py


def test_a_resumed_private_run_ends_as_an_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sets = ["privacy.dp.epsilon=2", "train.epochs=4", "track=false", "train.early_stopping=null"]
    whole = canonml.run("template:breast-cancer", tmp_path / "whole", overrides=sets)
    run_dir = interrupted_run("template:breast-cancer", tmp_path / "cut", sets, monkeypatch)
    canonml.run(None, resume=run_dir)
    assert (run_dir / "metrics.json").read_bytes() == (whole.run_dir / "metrics.json").read_bytes()
    assert (run_dir / "privacy.json").read_bytes() == (whole.run_dir / "privacy.json").read_bytes()


def test_batch_norm_becomes_group_norm_with_a_warning(tmp_path: Path) -> None:
    sets = ["--set", "model.batch_norm=true", "--set", "privacy.dp.epsilon=3"]
    sets += ["--set", "train.epochs=2", "--set", "track=false"]
    result = run_cli("run", "--template", "breast-cancer", *sets, "--out", str(tmp_path))
    assert result.code == 0, result.stderr
    assert "warning: privacy.dp: model.batch_norm's BatchNorm becomes GroupNorm" in result.stderr
    assert "Traceback" not in result.stderr
    (run_dir,) = (tmp_path / "breast-cancer").iterdir()
    assert "norm: group" in (run_dir / "spec.yaml").read_text("utf-8")
    assert canonml.verify_package(run_dir / "package") == []


@pytest.mark.parametrize(
    ("sets", "where"),
    [
        (["privacy.dp.epsilon=0"], "privacy.dp.epsilon"),
        (["privacy.dp.epsilon=-1"], "privacy.dp.epsilon"),
        (["privacy.dp.epsilon=3", "privacy.dp.delta=0.01"], "privacy.dp.delta"),
        (
            ["privacy.dp.epsilon=3", "privacy.dp.strict=true", "model.batch_norm=true"],
            "privacy.dp.strict",
        ),
        (["privacy.dp.epsilon=3", "train.grad_clip=1.0"], "train.grad_clip"),
        (["privacy.dp.epsilon=3", "train.max_minutes=1"], "train.max_minutes"),
    ],
)
def test_a_bad_privacy_spec_is_one_line(sets: list[str], where: str, tmp_path: Path) -> None:
    args = [a for s in [*sets, "track=false"] for a in ("--set", s)]
    result = run_cli("run", "--template", "breast-cancer", *args, "--out", str(tmp_path / "r"))
    assert result.code == 2 and where in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


def test_privacy_curve_trains_at_each_epsilon_and_plots(tmp_path: Path) -> None:
    sets = ["--set", "train.epochs=3", "--set", "track=false"]
    result = run_cli(
        "privacy-curve", "--template", "breast-cancer", "--epsilons", "1,inf", *sets,
        "--out", str(tmp_path),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    curve = json.loads((tmp_path / "privacy_curve.json").read_text("utf-8"))
    assert [p["target_epsilon"] for p in curve["points"]] == [1.0, "inf"]
    assert curve["points"][0]["epsilon"] <= 1.0 and curve["points"][1]["epsilon"] == "inf"
    assert (tmp_path / "privacy_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "median accuracy" in result.stdout


def test_an_audit_reports_both_attacks_and_the_dp_bound(tmp_path: Path) -> None:
    sets = ["privacy.dp.epsilon=3", "train.epochs=3", "track=false"]
    sets += ["audit.shadows=2", "audit.resamples=50"]
    result = canonml.run("template:digits-mlp", tmp_path, overrides=sets)
    audit = json.loads((result.run_dir / "audit.json").read_text("utf-8"))
    assert (
        set(audit["attacks"]) == {"loss", "lira"} and audit["members"] == 360
    )  # the whole test split
    for r in audit["attacks"].values():
        low, high = r["auc_interval"]
        assert low <= r["auc"] <= high and set(r["tpr_at_fpr"]) == {"0.01", "0.001"}
    bound = audit["dp_bound"]
    assert bound["epsilon"] == pytest.approx(result.metrics["dp_epsilon"])
    for r in audit["attacks"].values():  # what ε allows, measured as well as claimed
        assert r["tpr_at_fpr"]["0.01"] <= bound["tpr_at_fpr"]["0.01"]
    report = (result.run_dir / "report.html").read_text("utf-8")
    assert "Membership inference audit" in report and "bound of" in report
    again = run_cli("audit", str(result.run_dir), "--shadows", "0")
    assert again.code == 0, again.stderr
    assert "loss threshold" in again.stdout and "bound of" in again.stdout
    assert set(json.loads((result.run_dir / "audit.json").read_text("utf-8"))["attacks"]) == {
        "loss"
    }
