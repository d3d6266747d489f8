"""`tympan export`: an ONNX file checked against PyTorch; usage errors are messages."""

from __future__ import annotations

from pathlib import Path

import onnxruntime
import pytest
import torch

from tympan.cli import main

from .._models import small_mn_state


def test_export_writes_a_checked_onnx_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save({"state_dict": {f"model.{k}": v for k, v in small_mn_state().items()}}, tmp_path / "mn04.ckpt")
    out = tmp_path / "mn04.onnx"
    assert (
        main(
            ["export", "mn04_as", "--format", "onnx", "--checkpoint", str(tmp_path / "mn04.ckpt"), "--output", str(out)]
        )
        == 0
    )
    assert "max difference to PyTorch" in capsys.readouterr().err
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "embedding"]
    assert main(["export", "--output", str(out)]) == 1
    assert "name a model" in capsys.readouterr().err
