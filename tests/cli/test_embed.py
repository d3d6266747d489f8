"""`tympan embed`: an .npz of scene or timestamp embeddings with a file index; bad files listed, not fatal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from tympan.cli import main

from .._models import small_mn_state

RATE = 32000


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("embed")
    generator = np.random.default_rng(0)
    soundfile.write(root / "a.wav", 0.1 * generator.standard_normal(RATE).astype(np.float32), RATE)
    soundfile.write(root / "b.wav", 0.1 * generator.standard_normal(8000).astype(np.float32), 16000)
    (root / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    torch.save(small_mn_state(), root / "mn04.pt")
    return root, root / "mn04.pt"


def test_scene_embeddings(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    root, checkpoint = inputs
    out = tmp_path / "scene.npz"
    status = main(["embed", str(root), "--model", "mn04_as", "--checkpoint", str(checkpoint), "--output", str(out)])
    assert status == 1  # broken.wav failed
    data = np.load(out)
    assert [Path(f).name for f in data["files"]] == ["a.wav", "b.wav"]
    assert data["embeddings"].shape == (2, 384) and np.isfinite(data["embeddings"]).all()
    assert [Path(f).name for f in data["failed_files"]] == ["broken.wav"] and data["errors"][0]


def test_timestamp_embeddings_have_a_file_index(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    root, checkpoint = inputs
    out = tmp_path / "timestamps.npz"
    files = [str(root / "a.wav"), str(root / "b.wav")]
    args = ["embed", *files, "--model", "mn04_as", "--checkpoint", str(checkpoint), "--timestamps"]
    assert main([*args, "--output", str(out)]) == 0
    data = np.load(out)
    index, times = data["file_index"], data["timestamps"]
    assert len(index) == len(times) == len(data["embeddings"]) and set(index) == {0, 1}
    assert np.all(np.diff(times[index == 0]) > 0)
    assert (index == 0).sum() > (index == 1).sum()  # a.wav lasts 1 s, b.wav 0.5 s
