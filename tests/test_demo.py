"""``tympan demo --quick`` end to end: the report, the metrics and the figures exist and hold sane numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tympan.cli import main
from tympan.data import synthetic
from tympan.demo import engine, pipeline, report, workers
from tympan.errors import TympanError
from tympan.models import create


@pytest.mark.slow
def test_quick_demo_writes_report_metrics_and_figures(tmp_path, capsys):
    output = tmp_path / "demo"
    assert main(["demo", "--quick", "--output", str(output), "--cache", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out
    assert str(output / "report.md") in printed and str(output / "metrics.json") in printed

    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["run"]["quick"] is True
    assert len(metrics["teachers"]) == 2 and len(metrics["students"]) == 3
    train_devices = metrics["corpus"]["train_clips_per_device"]
    assert set(train_devices) == set(synthetic.SEEN_DEVICES)
    assert train_devices["a"] > 0.6 * sum(train_devices.values())  # TAU22's mix: device a holds most clips
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
    for verdict in report.COMPARISONS:
        assert metrics["findings"][verdict]["verdict"] in ("better", "worse", "within noise")
    assert metrics["across_seeds"]["seeds"] == 1

    text = (output / "report.md").read_text()
    assert all(name in text for name in metrics["models"])
    assert "Did KD beat no-KD" in text and "unseen devices" in text and "Did the teachers beat" in text
    for figure in ("per_device_accuracy", "confusion_matrix", "training_curves", "timeline"):
        path = output / f"{figure}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000, figure
        assert f"({figure}.png)" in text


def test_across_seeds_reports_mean_and_standard_error_of_each_comparison():
    def seed(kd_delta: float, accuracy: float) -> tuple[dict, dict]:
        findings = {name: {"delta": kd_delta} for name in report.COMPARISONS}
        return findings, {"student": {"accuracy": accuracy, "accuracy_seen": 0.7, "accuracy_unseen": 0.5}}

    runs = [seed(0.04, 0.60), seed(0.05, 0.62), seed(0.06, 0.64)]
    across = report.across_seeds([f for f, _ in runs], [m for _, m in runs])
    kd = across["comparisons"]["kd_vs_no_kd"]
    assert across["seeds"] == 3 and kd["values"] == [0.04, 0.05, 0.06]
    assert kd["mean"] == pytest.approx(0.05) and kd["standard_error"] == pytest.approx(0.01 / 3**0.5)
    assert kd["verdict"] == "better"
    student = across["models"]["student"]
    assert student["accuracy"]["mean"] == pytest.approx(0.62)
    assert student["accuracy_seen"]["standard_error"] == pytest.approx(0.0, abs=1e-12)
    single = report.across_seeds([runs[0][0]], [runs[0][1]])["comparisons"]["kd_vs_no_kd"]
    assert single["standard_error"] is None and single["verdict"] == "one seed"
    noisy = report.across_seeds([{**runs[0][0], "kd_vs_no_kd": {"delta": d}} for d in (0.05, -0.04)], [{}, {}])
    assert noisy["comparisons"]["kd_vs_no_kd"]["verdict"] == "within noise"


def test_full_size_teachers_are_larger_than_the_student_and_the_passt_starts_pre_trained(tmp_path):
    size = pipeline.FULL
    teachers = engine.teacher_recipes(size, 10, 0, tmp_path / "dirs", tmp_path / "passt.ckpt")
    student = engine.student_recipe(size, 10, 0, kd=False)

    def params(recipe: engine.Recipe) -> int:
        return sum(p.numel() for p in create(recipe.arch, **recipe.model_kwargs).parameters())

    assert params(teachers["CP-ResNet teacher"]) == 127_684  # the DCASE23 128K teacher
    assert all(params(teacher) > 2 * params(student) for teacher in teachers.values())
    assert teachers["PaSST teacher (pre-trained)"].start == tmp_path / "passt.ckpt"
    assert all(teacher.dir_folder == tmp_path / "dirs" for teacher in teachers.values())
    pretraining = engine.pretraining_recipe(size)
    assert pretraining.multilabel and pretraining.model_kwargs["num_classes"] == len(synthetic.SOURCES)


def test_compare_uses_the_standard_error_of_paired_differences():
    old = [1, 0, 1, 0, 1, 0, 1, 0] * 50
    new = [1, 1, 1, 0, 1, 1, 1, 0] * 50  # right wherever old is, and on a quarter more
    result = report.compare(new, old)
    assert result["delta"] == pytest.approx(0.25) and result["pairs"] == 400
    assert result["standard_error"] == pytest.approx(np.std([0, 1, 0, 0] * 100, ddof=1) / 20)
    assert result["verdict"] == "better"
    assert report.compare(old, new)["verdict"] == "worse"
    assert report.compare([1, 0, 1, 0], [0, 1, 0, 1])["verdict"] == "within noise"


def test_progress_board_draws_one_bar_per_run_and_closes_it_at_the_last_step(capsys):
    board = workers.ProgressBoard()
    board("teacher", 0, 4, "")
    board("student", 1, 2, "")
    board("teacher", 4, 4, "epoch 2/2, val accuracy 0.500")
    drawn = capsys.readouterr().err
    assert "teacher" in drawn and "student" in drawn and "4/4" in drawn and "val accuracy 0.500" in drawn


def test_a_failing_run_reaches_the_caller_through_its_future(tmp_path):
    recipe = engine.student_recipe(pipeline.QUICK, 10, 0, kd=False)
    with workers.TrainingPool(workers=1) as pool:
        labels = [f"scene{i}" for i in range(10)]
        run = pool.submit(tmp_path / "missing.csv", labels, recipe, "student", tmp_path / "student.ckpt")
    with pytest.raises(TympanError, match=r"missing\.csv"):
        run.result()
