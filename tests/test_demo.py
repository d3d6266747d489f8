"""``tympan demo --quick`` end to end: the report, the metrics and the figures exist and hold sane numbers."""

from __future__ import annotations

import json

import pytest

from tympan.cli import main
from tympan.data import synthetic


@pytest.mark.slow
def test_quick_demo_writes_report_metrics_and_figures(tmp_path, capsys):
    output = tmp_path / "demo"
    assert main(["demo", "--quick", "--output", str(output), "--cache", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out
    assert str(output / "report.md") in printed and str(output / "metrics.json") in printed

    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["run"]["quick"] is True
    assert len(metrics["teachers"]) == 2 and len(metrics["students"]) == 3
    for name, model in metrics["models"].items():
        assert 0.0 <= model["accuracy"] <= 1.0, name
        assert set(model["per_device"]) == set(synthetic.DEVICES)
        seen = [model["per_device"][d] for d in synthetic.SEEN_DEVICES]
        assert model["accuracy_seen"] == pytest.approx(sum(seen) / len(seen))  # equal clips per device
        assert sum(map(sum, model["confusion_matrix"])) == metrics["corpus"]["clips"]["test"]
        assert len(metrics["training_curves"][name]["val_accuracy"]) >= 1
    assert metrics["complexity"]["CP-Mobile, DCASE23 submission size"]["params"] == 126_952
    assert all(entry["ok"] for entry in metrics["complexity"].values())
    forms = {form["name"]: form for form in metrics["deployment"]["forms"]}
    assert {"float32 (PyTorch)", "int8 (QAT, torchao PT2E)", "ONNX (onnxruntime, float32)"} <= set(forms)
    assert all(0.0 <= form["accuracy"] <= 1.0 for form in forms.values())
    assert (output / "student.onnx").stat().st_size > 10_000
    tagging = metrics["tagging"]
    assert [segment[2] for segment in tagging["truth"]][:2] == ["park", "street_traffic"]
    assert 0.0 <= tagging["window_accuracy"] <= 1.0
    for verdict in ("kd_vs_no_kd", "device_augmentation_unseen", "seen_vs_unseen"):
        assert metrics["findings"][verdict]["verdict"] in ("better", "worse", "within noise")

    report = (output / "report.md").read_text()
    assert all(name in report for name in metrics["models"])
    assert "Did KD beat no-KD" in report and "unseen devices" in report
    for figure in ("per_device_accuracy", "confusion_matrix", "training_curves", "timeline"):
        path = output / f"{figure}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000, figure
        assert f"({figure}.png)" in report
