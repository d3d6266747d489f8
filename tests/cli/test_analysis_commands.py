from __future__ import annotations

import json

import torch

from tests.analysis._scenes import CLASSES, write_scenes
from tympan.cli import main
from tympan.models import create


def test_receptive_field_rho_sweep_grows_with_rho(capsys):
    assert main(["receptive-field", "cp_resnet", "--rho", "5", "8", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["rho"] for r in rows] == list(range(5, 9))
    sizes = [r["freq"] for r in rows]
    assert sizes == sorted(sizes) and sizes[-1] == 155  # 155 mel bins x 55 frames at rho 8
    assert rows[-1]["time"] == 55


def test_receptive_field_dcase20_sweep_lists_the_papers_estimate(capsys):
    assert main(["receptive-field", "cp_resnet", "--rho", "5", "7", "--rho-rule", "dcase20", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["papers_max_rf"] for r in rows] == [81, 113, 145]
    assert [r["freq"] for r in rows] == [87, 103, 135]  # the true field: pools count, the estimate's quirk does not


def test_receptive_field_table_lists_every_layer(capsys):
    assert main(["receptive-field", "cp_mobile_dcase23"]) == 0
    out = capsys.readouterr().out
    assert "in_c.0.0" in out and "GlobalResponseNorm" in out


def test_robustness_compares_checkpoints(tmp_path, capsys):
    meta = write_scenes(tmp_path, per_cell=1)
    checkpoints = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = create("cp_resnet", rho=2, base_channels=8, cut_channels_s3=0, num_classes=len(CLASSES))
        payload = {
            "tympan": {
                "arch": "cp_resnet",
                "model_kwargs": {"rho": 2, "base_channels": 8, "cut_channels_s3": 0, "num_classes": len(CLASSES)},
                "frontend": model.frontend_config.to_dict(),
                "labels": list(CLASSES),
                "multilabel": False,
            },
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        }
        checkpoints.append(tmp_path / f"seed{seed}.ckpt")
        torch.save(payload, checkpoints[-1])
    output = tmp_path / "out"
    code = main(["robustness", *map(str, checkpoints), "--data", str(meta), "--eps", "0", "0.5", "--steps", "3",
                 "--stress-eps", "1", "--stress-directions", "8", "--seconds", "1", "--output", str(output)])
    assert code == 0
    rows = json.loads((output / "robustness.json").read_text())
    assert [r["clips"] for r in rows] == [9, 9]
    for row in rows:
        clean, attacked = row["risk"]
        assert attacked["accuracy"] <= clean["accuracy"]
    assert (output / "robustness.png").stat().st_size > 10_000


def test_congater_train_then_evaluate_writes_table_and_plots(tmp_path):
    meta = write_scenes(tmp_path, per_cell=2)
    output = tmp_path / "out"
    assert main(["congater", "train", "--data", str(meta), "--epochs", "1", "--output", str(output)]) == 0
    assert (output / "congater_model.pt").exists()
    code = main(["congater", "evaluate", "--data", str(meta), "--omega", "0", "1", "--probe-epochs", "5",
                 "--output", str(output)])  # fmt: skip
    assert code == 0
    rows = json.loads((output / "congater.json").read_text())
    assert [r["omega"] for r in rows] == [
        {"device": 0.0, "city": 0.0}, {"device": 1.0, "city": 0.0}, {"device": 0.0, "city": 1.0}
    ]
    assert all(0 <= r["device_probe_balanced_accuracy"] <= 1 for r in rows)
    assert (rows[0]["gate_mean"], rows[0]["gate_share_below_half"]) == (1.0, 0.0)  # no gate at omega = 0
    assert all(0 < r["gate_mean"] < 1 for r in rows[1:])
    header = (output / "congater.csv").read_text().splitlines()[0]
    assert header.startswith("omega_device,omega_city,task_accuracy,gate_mean,gate_share_below_half")
    assert (output / "congater_device.png").exists() and (output / "congater_city.png").exists()


def test_congater_evaluate_refuses_another_checkpoint(tmp_path):
    meta = write_scenes(tmp_path, per_cell=1)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    assert main(["congater", "evaluate", "--data", str(meta), "--checkpoint", str(other)]) != 0
