"""``tympan complexity``: the table, JSON and errors of the subcommand."""

from __future__ import annotations

import json

import pytest

from tympan.cli import main


def test_table_shows_figures_and_dcase_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["complexity", "cp_mobile_dcase23"]) == 0
    out = capsys.readouterr().out
    assert "126,952" in out and "28,893,268" in out and "1 x 1 x 256 x 64" in out
    assert "peak activation" in out and "PASS" in out


def test_json_output_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["complexity", "cp_mobile_dcase23", "--fused", "--param-bits", "16", "--seconds", "2", "--format", "json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["input_shape"] == [1, 1, 256, 128] and result["params"] == 124_862 and result["rule"] == "dcase"
    assert result["dcase"]["macs_per_second"] == 29_561_088 and result["dcase"]["passed"] is False


def test_unknown_model_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["complexity", "cp_mobile_dcase2"]) == 1
    assert "cp_mobile_dcase23" in capsys.readouterr().err
