"""MelFrontend: parity with the reference ``AugmentMelSTFT`` (eval) and the training-time augmentations."""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pytest
import torch

from tests.conftest import load_reference
from tympan.audio.frontend import MelFrontend, MelFrontendConfig, kaldi_mel_banks
from tympan.errors import ConfigError

# Measured max |ours - reference|: 1.6e-5 (EfficientAT default), 3.7e-5 (256 mels), 7.5e-5 (PaSST 10 s noise).
# The residue is the float32 filterbank: the reference's torch 2.9 log (SLEEF, 1 ulp) rounds some per-bin mel
# values the other way than torch >= 2.10, moving filter weights by <= 3.5e-5. A float64 filterbank is off by 1.3e-4.
MEL_ATOL = 1e-4
BASIS_ATOL = 5e-5

EFFICIENTAT_CASES = [
    "default", "n_mels_64", "n_mels_40", "n_mels_256", "hop_160", "hop_480", "hop_800", "fmin5_fmax15900",
    "default_odd_length", "sr16000", "metro_station_default",
]


@cache
def _efficientat() -> dict:
    return load_reference("efficientat", "frontend_cases.pt")


@cache
def _dcase23() -> dict:
    return load_reference("dcase23", "frontend_cases.pt")


@cache
def _dcase23_windows() -> torch.Tensor:
    return load_reference("dcase23", "cpmobile_c0a7nzin_metro_station.pt")["waveform_windows"]


def _dcase23_kwargs(name: str, **changes) -> dict:
    kwargs = {k: v for k, v in _dcase23()[f"config_{name}"].items() if k != "fmax_effective"}
    return {**kwargs, **changes}


@pytest.mark.parametrize("name", EFFICIENTAT_CASES)
def test_efficientat_cases(name):
    data = _efficientat()
    case = next(c for c in data["cases"] if c["name"] == name)
    frontend = MelFrontend(**case["kwargs"]).eval()
    assert frontend.config.effective_fmax == case["effective_fmax"]
    mel = frontend(data[case["input"]])
    assert mel.shape == case["mel"].shape
    torch.testing.assert_close(mel, case["mel"], atol=MEL_ATOL, rtol=0)


def test_efficientat_filterbank():
    basis = MelFrontend().mel_basis
    torch.testing.assert_close(basis, _efficientat()["mel_basis_default"], atol=BASIS_ATOL, rtol=0)
    assert basis.dtype == torch.float32 and basis[:, -1].abs().sum() == 0


@pytest.mark.parametrize(("name", "changes"), [("student", {}), ("cpresnet", {}), ("passt", {}),
                                               ("student", {"fmax": 16000})])
def test_dcase23_frontends(name, changes):
    expected = _dcase23()[f"mel_{name}_fmax16000" if changes else f"mel_{name}"]
    mel = MelFrontend(**_dcase23_kwargs(name, **changes)).eval()(_dcase23_windows())
    torch.testing.assert_close(mel, expected, atol=MEL_ATOL, rtol=0)


@pytest.mark.parametrize("name", ["student", "passt"])
def test_dcase23_filterbanks(name):
    basis = MelFrontend(**_dcase23_kwargs(name)).mel_basis
    torch.testing.assert_close(basis, _dcase23()[f"mel_basis_{name}"], atol=BASIS_ATOL, rtol=0)


def test_kaldi_banks_match_float64_kaldi_formula():
    """Independent check: triangles in the Kaldi mel domain, computed in float64 with numpy."""
    n_mels, n_fft, sr, fmin, fmax = 64, 512, 16000, 20.0, 7600.0
    mel = lambda f: 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    edges = mel(fmin) + np.arange(n_mels + 2) * (mel(fmax) - mel(fmin)) / (n_mels + 1)
    bins = mel(np.arange(n_fft // 2) * sr / n_fft)
    up = (bins - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    down = (edges[2:, None] - bins) / (edges[2:, None] - edges[1:-1, None])
    expected = np.pad(np.maximum(0.0, np.minimum(up, down)), ((0, 0), (0, 1)))
    ours = kaldi_mel_banks(n_mels, n_fft, sr, fmin, fmax)
    np.testing.assert_allclose(ours.numpy(), expected, atol=5e-5, rtol=0)


def test_preemphasis_matches_reference_conv():
    x = _dcase23_windows()[:1].double()
    expected = _dcase23()["preemphasis_window0"].double()
    torch.testing.assert_close(x[:, 1:] - 0.97 * x[:, :-1], expected, atol=1e-7, rtol=0)


def test_passt_frontend():
    data = load_reference("passt", "passt_frontend.pt")
    frontend = MelFrontend(**data["mel_config"]).eval()
    torch.testing.assert_close(frontend.mel_basis, data["mel_basis"], atol=BASIS_ATOL, rtol=0)
    torch.testing.assert_close(frontend(data["waveform"]), data["mel_expected"], atol=MEL_ATOL, rtol=0)
    torch.testing.assert_close(frontend(data["waveform_short"]), data["mel_expected_short"], atol=MEL_ATOL, rtol=0)


def test_construction_and_state_dict():
    frontend = MelFrontend(n_mels=64, sr=16000, hopsize=160, htk=False, norm=1, fmax="None")
    assert frontend.config == MelFrontendConfig(n_mels=64, sample_rate=16000, hop_length=160)
    assert MelFrontend.from_config(frontend.config).config == frontend.config
    assert MelFrontend(sample_rate=16000, n_mels=64, hop_length=160).config == frontend.config
    assert frontend.state_dict() == {} and not list(frontend.parameters())
    assert frontend.mel_basis.shape == (64, 513)
    assert "n_mels=64" in repr(frontend)
    with pytest.raises(ConfigError):
        MelFrontend(MelFrontendConfig(), n_mels=64)
    with pytest.raises(ConfigError, match="Nyquist"):
        MelFrontend(fmax=16500, fmax_aug_range=2000)


def test_shapes_dtypes_and_no_rng_in_eval():
    frontend = MelFrontend().eval()
    x = torch.randn(3, 16001, generator=torch.Generator().manual_seed(1)) * 0.1
    state = torch.get_rng_state()
    batched = frontend(x)
    assert torch.equal(torch.get_rng_state(), state)  # the reference draws 2 numbers even in eval
    assert batched.shape == (3, 128, frontend.config.num_frames(16001)) == (3, 128, 51)
    assert torch.equal(frontend(x[1]), batched[1])
    torch.testing.assert_close(frontend(x.double()), batched)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = frontend(x)
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, batched)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (torch.zeros(2, 32000, dtype=torch.int16), "float"),
        (torch.zeros(2, 1, 32000), "shape"),
        (torch.zeros(2, 100), "at least 514 samples"),
        (np.zeros(32000, dtype=np.float32), "torch.Tensor"),
    ],
)
def test_bad_input(bad, match):
    with pytest.raises(ConfigError, match=match):
        MelFrontend()(bad)


def test_training_masks_are_per_example_and_deterministic():
    """With jitter off, training output = eval output except one frequency and one time band per example (0.9)."""
    frontend = MelFrontend(freqm=48, timem=20, fmin_aug_range=0, fmax_aug_range=0, fmax=15000)
    x = torch.randn(64, 16000, generator=torch.Generator().manual_seed(2)) * 0.1
    clean = frontend.eval()(x)
    frontend.train()
    masked = frontend(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(masked, frontend(x, generator=torch.Generator().manual_seed(5)))
    assert not torch.equal(masked, frontend(x, generator=torch.Generator().manual_seed(6)))
    changed = masked != clean
    assert torch.all(masked[changed] == 0.9)
    full_rows = changed.all(dim=2)  # frequency masks cover whole rows
    full_cols = changed.all(dim=1)  # time masks cover whole columns
    assert torch.equal(changed, full_rows[:, :, None] | full_cols[:, None, :])
    widths_f, widths_t = full_rows.sum(1), full_cols.sum(1)
    assert widths_f.max() <= 47 and widths_t.max() <= 19
    # widths ~ floor(U * max): mean (max - 1) / 2; iid per example, so they vary across the batch
    assert abs(widths_f.float().mean().item() - 23.5) < 5 and widths_f.unique().numel() > 20
    assert abs(widths_t.float().mean().item() - 9.5) < 3
    for rows in full_rows:  # each mask is one contiguous band
        idx = rows.nonzero().flatten()
        assert idx.numel() == 0 or idx.max() - idx.min() + 1 == idx.numel()


def test_training_jitter_is_one_draw_per_batch():
    """fmin += randint(10), fmax += 1000 - randint(2000), drawn once per batch in that order (the reference's)."""
    frontend = MelFrontend(freqm=0, timem=0).train()
    x = torch.randn(1, 8000, generator=torch.Generator().manual_seed(3)).repeat(2, 1)
    outputs = []
    for seed in range(3):
        out = frontend(x, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(out[0], out[1])  # one filterbank for the whole batch
        draws = torch.Generator().manual_seed(seed)
        fmin = int(torch.randint(10, (1,), generator=draws))
        fmax = 15000 + 1000 - int(torch.randint(2000, (1,), generator=draws))
        expected = MelFrontend(fmin=fmin, fmax=fmax).eval()(x)
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
        outputs.append(out)
    assert not torch.equal(outputs[0], outputs[1])


def test_training_fmax_jitter_is_clamped_to_nyquist():
    frontend = MelFrontend(fmax=16000, fmax_aug_range=1000, freqm=0, timem=0).train()
    x = torch.randn(1, 4000, generator=torch.Generator().manual_seed(4))
    for seed in range(4):  # draws above 16 kHz would make the reference's Kaldi banks fail
        assert torch.isfinite(frontend(x, generator=torch.Generator().manual_seed(seed))).all()


def _dense_log_mel(frontend: MelFrontend, x: torch.Tensor) -> torch.Tensor:
    config = frontend.config
    spectrum = torch.stft(x[:, 1:] - 0.97 * x[:, :-1], config.n_fft, hop_length=config.hop_length,
                          win_length=config.win_length, window=frontend.window, center=True, return_complex=True)
    return (torch.log(frontend.mel_basis @ spectrum.abs().square() + 1e-5) + 4.5) / 5.0


@pytest.mark.parametrize(("config", "shape"), [
    (MelFrontendConfig(), (40, 32000)),  # rows in pieces
    (MelFrontendConfig(), (2, 32000 * 40)),  # frames of each row in pieces
    (MelFrontendConfig(n_mels=256, n_fft=4096, win_length=3072, hop_length=500), (40, 32000)),
])
def test_banded_product_in_pieces_matches_the_dense_product(config, shape):
    """On one thread the mel is computed per block of bands over their bins, in pieces of rows or frames; on
    several, with one matmul: the same numbers either way."""
    frontend = MelFrontend(config).eval()
    x = 0.1 * torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    dense = _dense_log_mel(frontend, x)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        banded = frontend(x)
        torch.set_num_threads(2)
        one_matmul = frontend(x)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(banded, dense, rtol=0, atol=1e-5)
    torch.testing.assert_close(one_matmul, dense, rtol=0, atol=1e-5)
    torch.testing.assert_close(frontend(x[1]), banded[1], rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------- the DCASE24 frontend
DCASE24 = MelFrontendConfig(kind="htk", sample_rate=44100, resample_to=32000, n_mels=256, win_length=3072,
                            hop_length=500, n_fft=4096, freqm=48, timem=0, fmin_aug_range=0, fmax_aug_range=0)


@cache
def _dcase24() -> dict:
    return load_reference("dcase24", "baseline_cases.pt")


def test_dcase24_frontend_matches_the_reference_resampler_and_mel_spectrogram():
    """44.1 kHz in, torchaudio Resample + MelSpectrogram + log(x + 1e-5) of the reference out: [4, 256, 65].

    The noise clips (energy in every band) agree to 2e-6. In the recording's quietest bins, the top bands above
    the resampler's 15.84 kHz cut-off hold only the filter's stop-band residue, whose float32 rounding differs
    between torch builds: there the reference itself is 3.7e-4 from a float64 run of the same arithmetic (ours
    2.2e-4), so 48 of 66,560 values (bands 245-255) differ by 1e-4 to 3.6e-4 and the rest by less than 1e-4.
    """
    data = _dcase24()
    mel = MelFrontend(DCASE24).eval()(data["waveform_44k"])
    assert mel.shape == data["log_mel"].shape == (4, 256, 65)
    error = (mel - data["log_mel"]).abs()
    assert error[2:].max() < 1e-5  # the noise clips
    assert error.quantile(0.999) < MEL_ATOL and error.max() < 5e-4
    assert error[:, :245].max() < 1.1e-4


def test_dcase24_frontend_needs_the_reference_resampler():
    """soxr (tympan's file loader) filters more sharply: the top bands lose the residue the reference keeps."""
    from tympan.audio.io import prepare_waveform

    data = _dcase24()
    soxr = torch.stack([torch.from_numpy(prepare_waveform(w.numpy(), 44100, 32000)) for w in data["waveform_44k"]])
    mel = MelFrontend(DCASE24.replace(sample_rate=32000, resample_to=None)).eval()(soxr)
    assert (mel - data["log_mel"]).abs().amax(dim=(1, 2)).min() > 1.0


def test_htk_banks_match_the_float64_htk_formula():
    from tympan.audio.frontend import htk_mel_banks

    banks = htk_mel_banks(64, 1024, 32000, 50.0, 14000.0).double()
    assert banks.shape == (64, 513)
    hz = torch.linspace(0, 16000, 513, dtype=torch.float64)
    mel = lambda f: 2595 * torch.log10(1 + f / 700)  # noqa: E731
    edges = 700 * (10 ** (torch.linspace(float(mel(torch.tensor(50.0))), float(mel(torch.tensor(14000.0))), 66,
                                         dtype=torch.float64) / 2595) - 1)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    expected = torch.clamp(torch.minimum((hz - left) / (centre - left), (right - hz) / (right - centre)), min=0)
    torch.testing.assert_close(banks, expected, atol=1e-5, rtol=0)
    full = htk_mel_banks(256, 4096, 32000, 0.0, 16000.0)
    assert full[-1, -1] == 0 and full[-1, -2] > 0  # up to Nyquist (a Kaldi bank's last column is always zero)


def test_htk_kind_frames_masks_and_validation():
    frontend = MelFrontend(DCASE24)
    assert DCASE24.num_frames(44100) == 65 and DCASE24.effective_fmax == 16000
    assert DCASE24.replace(resample_to=None, sample_rate=32000).num_frames(32000) == 65  # no pre-emphasis
    assert frontend.state_dict() == {} and frontend.window[0] == 0 and frontend.window[-1] > 0  # periodic Hann
    assert MelFrontendConfig(**DCASE24.to_dict()) == DCASE24  # as checkpoints store it
    x = 0.1 * torch.randn(8, 44100, generator=torch.Generator().manual_seed(0))
    clean = frontend.eval()(x)
    masked = frontend.train()(x, generator=torch.Generator().manual_seed(1))
    changed = masked != clean
    assert changed.any() and torch.all(masked[changed] == torch.tensor(1e-5).log())  # the power masked to 0
    assert torch.equal(changed, changed.all(dim=2, keepdim=True).expand_as(changed))  # whole bands only
    with pytest.raises(ConfigError, match="at least 2823 samples"):
        frontend(torch.zeros(1, 2822))
    assert frontend.eval()(torch.zeros(1, 2823)).shape == (1, 256, 5)
    with pytest.raises(ConfigError, match="kind"):
        MelFrontendConfig(kind="slaney")
    with pytest.raises(ConfigError, match="positive"):
        MelFrontendConfig(resample_to=0)


def _pretrained_sed_reference(waveform: torch.Tensor, config: MelFrontendConfig) -> torch.Tensor:
    """PretrainedSED's ``AugmentMelSTFT`` in eval mode, step by step: pre-emphasis, centred STFT, power, kaldi banks,
    ``log(clip(mel, 1e-7))``, ``(x + 4.5) / 5``."""
    x = waveform[:, 1:] - 0.97 * waveform[:, :-1]
    window = torch.hann_window(config.win_length, periodic=config.periodic)
    spectrum = torch.stft(x, config.n_fft, config.hop_length, config.win_length, window, return_complex=True)
    banks = kaldi_mel_banks(config.n_mels, config.n_fft, config.sample_rate, config.fmin, config.effective_fmax)
    return (torch.log(torch.clip(banks @ spectrum.abs().square(), min=1e-7)) + 4.5) / 5.0


@pytest.mark.parametrize("preset", ["frame_mn06", "fpasst"])
def test_pretrained_sed_frontends_match_their_reference_in_near_silence(preset):
    from tympan.models.registry import get_preset

    config = get_preset(preset).frontend
    assert config.log_floor == 1e-7 and config.periodic == (preset == "fpasst")
    quiet = 1e-4 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))  # -80 dBFS
    ours = MelFrontend(config).eval()(quiet)
    torch.testing.assert_close(ours, _pretrained_sed_reference(quiet, config), atol=MEL_ATOL, rtol=0)
    offset = MelFrontend(dataclasses.replace(config, log_floor=None)).eval()(quiet)
    assert (ours - offset).abs().mean() > 0.3  # log(mel + 1e-5) would hide the quietest bands from the weights


def test_log_floor_must_be_positive():
    with pytest.raises(ConfigError, match="log_floor"):
        MelFrontendConfig(log_floor=0.0)
