"""audio.augment: DIR, Freq-MixStyle, mixup, roll, gain, masking — parity with the DCASE23 reference draws."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch

from tests.conftest import load_reference, shared_path
from tympan.audio.augment import (
    DeviceImpulseResponses,
    convolve_impulse_response,
    freq_mixstyle,
    gain,
    mask_along_axis,
    mix_frequency_statistics,
    mix_targets,
    mixup,
    roll,
    wavmix,
)
from tympan.audio.io import load_audio
from tympan.errors import ConfigError


@cache
def _cases() -> dict:
    return load_reference("dcase23", "augment_loss_schedule_cases.pt")


@cache
def _bank() -> DeviceImpulseResponses:
    return DeviceImpulseResponses.from_folder(shared_path("data", "dirs"), 32000)


def test_dir_bank_order_and_resampling():
    cases, bank = _cases(), _bank()
    assert bank.names == cases["dir_names_sorted"] and len(bank) == 66
    paths = sorted(shared_path("data", "dirs").glob("*.wav"))
    assert [len(load_audio(p, 32000)) for p in paths] == cases["dir_lengths_32k"]
    for name, expected in cases["dir_resampled_32k"].items():
        row = bank.bank[bank.names.index(name)]
        assert torch.equal(row[: len(expected)], expected) and not row[len(expected) :].any()
    assert bank.state_dict() == {}


@pytest.mark.parametrize("name", ["Altec_639.wav", "IR_AKGD12.wav", "Toshiba_TypeK_flat.wav"])
def test_dir_convolution_matches_reference(name):
    cases = _cases()
    out = convolve_impulse_response(cases["dir_input"], cases["dir_resampled_32k"][name])
    torch.testing.assert_close(out, cases["dir_output"][name], atol=1e-6, rtol=0)


def test_dir_dataset_check_with_the_stored_draw():
    check = _cases()["dir_dataset_check"]
    bank = _bank()
    assert bank.names[check["chosen_index"]] == check["chosen_name"]
    out = bank(_cases()["dir_input"], p=1.0, indices=torch.tensor([check["chosen_index"]]))
    torch.testing.assert_close(out, check["output"], atol=1e-6, rtol=0)


def test_dir_probability_mask_and_determinism():
    rng = torch.Generator().manual_seed(0)
    responses = [torch.randn(50, generator=rng) for _ in range(3)]
    bank = DeviceImpulseResponses(responses, names=["x", "y", "z"])
    x = torch.randn(400, 300, generator=rng)
    out = bank(x, p=0.5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, bank(x, p=0.5, generator=torch.Generator().manual_seed(1)))
    changed = (out != x).any(dim=1)
    assert 150 < changed.sum() < 250
    for row in changed.nonzero().flatten()[:10]:  # each changed row is x convolved with one of the responses
        candidates = [convolve_impulse_response(x[row], h) for h in responses]
        assert any(torch.allclose(out[row], c, atol=1e-5) for c in candidates)
    device_a = torch.arange(400) % 2 == 0
    masked = bank(x, p=1.0, mask=device_a, generator=torch.Generator().manual_seed(2))
    assert torch.equal(masked[~device_a], x[~device_a]) and (masked[device_a] != x[device_a]).any(dim=1).all()
    assert torch.equal(bank(x, p=0.0), x)
    with pytest.raises(ConfigError, match="probability"):
        bank(x, p=1.5)
    with pytest.raises(ConfigError, match=r"no \.wav"):
        DeviceImpulseResponses.from_folder(shared_path("data") / "no-such-folder", 32000)


def test_convolution_equals_direct_formula():
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal((2, 500)), rng.standard_normal(37)
    expected = np.stack([np.convolve(row, h)[:500] for row in x])
    out = convolve_impulse_response(torch.from_numpy(x).float(), torch.from_numpy(h).float())
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


def test_freq_mixstyle_matches_reference_with_stored_draws():
    case = _cases()["mixstyle"]
    y = mix_frequency_statistics(case["x"], case["lmda"].flatten(), case["perm"], case["eps"])
    torch.testing.assert_close(y, case["y"], atol=1e-5, rtol=1e-5)


def test_freq_mixstyle_draws():
    x = torch.randn(8, 1, 32, 20, generator=torch.Generator().manual_seed(0))
    assert freq_mixstyle(x, p=0.0) is x
    mixed = freq_mixstyle(x, p=1.0, alpha=0.3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(mixed, freq_mixstyle(x, p=1.0, alpha=0.3, generator=torch.Generator().manual_seed(1)))
    assert not torch.allclose(mixed, x)
    # per-frequency means of each example become a convex combination of two examples' means
    assert torch.allclose(mixed.mean(dim=(1, 3)).mean(), x.mean(dim=(1, 3)).mean(), atol=0.2)
    squeezed = freq_mixstyle(x[:, 0], p=1.0, alpha=0.3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(squeezed, mixed[:, 0])


def test_mixup_and_targets():
    x = torch.randn(64, 10, generator=torch.Generator().manual_seed(0))
    mixed, lam, perm = mixup(x, alpha=0.3, generator=torch.Generator().manual_seed(3))
    assert lam.shape == (64,) and torch.all((lam >= 0.5) & (lam <= 1.0))
    assert torch.equal(perm.sort().values, torch.arange(64))
    torch.testing.assert_close(mixed, lam[:, None] * x + (1 - lam[:, None]) * x[perm])
    targets = torch.eye(64)[:, :10]
    mixed_targets = mix_targets(targets, lam, perm)
    torch.testing.assert_close(mixed_targets.sum(1), targets.sum(1) * lam + targets[perm].sum(1) * (1 - lam))
    _, lam_half, _ = mixup(x, alpha=2.0, p=0.5, generator=torch.Generator().manual_seed(4))
    assert 16 < (lam_half == 1).sum() < 48


def test_wavmix_demeans_mixed_clips_and_leaves_the_others():
    x = torch.randn(64, 100, generator=torch.Generator().manual_seed(0)) + 0.5  # a DC offset to remove
    mixed, lam, perm = wavmix(x, alpha=2.0, p=0.5, generator=torch.Generator().manual_seed(1))
    chosen = lam < 1
    assert 16 < chosen.sum() < 48 and torch.all(lam[chosen] >= 0.5)
    assert torch.equal(mixed[~chosen], x[~chosen])  # drawn unmixed: untouched, DC offset included
    centred = x - x.mean(dim=1, keepdim=True)
    expected = lam[:, None] * centred + (1 - lam[:, None]) * centred[perm]
    torch.testing.assert_close(mixed[chosen], (expected - expected.mean(dim=1, keepdim=True))[chosen])
    assert mixed[chosen].mean(dim=1).abs().max() < 1e-6


def test_roll_is_per_example_circular_shift():
    x = torch.arange(2000.0).repeat(50, 1)
    rolled = roll(x, 300, generator=torch.Generator().manual_seed(0))
    shifts = (-rolled[:, 0]) % 2000  # rolled[t] = x[t - s] -> rolled[0] = (-s) mod n
    shifts = torch.where(shifts > 1000, shifts - 2000, shifts).long()
    assert shifts.abs().max() <= 300 and shifts.unique().numel() > 40
    for row, shift in zip(rolled, shifts, strict=True):
        assert torch.equal(row, torch.roll(x[0], int(shift)))
    assert roll(x[:, None], 300, generator=torch.Generator().manual_seed(0)).shape == (50, 1, 2000)


def test_gain_draws_integer_decibels():
    x = torch.ones(500, 4)
    decibels = 20 * torch.log10(gain(x, 7, generator=torch.Generator().manual_seed(0))[:, 0].double())
    assert torch.allclose(decibels, decibels.round(), atol=1e-4)
    assert set(decibels.round().long().tolist()) == set(range(-7, 7))


def test_mask_along_axis_on_4d_input():
    x = torch.randn(32, 1, 40, 60, generator=torch.Generator().manual_seed(0))
    masked = mask_along_axis(x, 10, axis=-1, value=0.0, generator=torch.Generator().manual_seed(1))
    changed_cols = (masked != x).any(dim=2)[:, 0]
    assert changed_cols.sum(1).max() <= 9 and changed_cols.any()
    assert mask_along_axis(x, 1, axis=2) is x
    with pytest.raises(ConfigError, match="batch"):
        mask_along_axis(x, 10, axis=0)


def test_freq_mixstyle_default_alpha_is_the_references_0_4():
    """EfficientAT and cpjku_dcase23 helpers/utils.py: mixstyle(x, p=0.4, alpha=0.4)."""
    import inspect

    assert inspect.signature(freq_mixstyle).parameters["alpha"].default == 0.4
