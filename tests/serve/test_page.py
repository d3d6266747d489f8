"""The page end to end in headless Chromium: a fake microphone fed from a WAV streams to /stream, and a file given
to the drop box is tagged through /tag; the page shows what the server computes for that file.

Needs Debian's ``chromium`` (``.ci/run`` installs it) and the ``playwright`` package (its driver only: the system
browser is used, nothing is downloaded). Set ``TYMPAN_SCREENSHOT=FILE.png`` to keep a screenshot of the page.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

import tympan
from tympan.pipeline import AudioPipeline

from .._models import small_mn_state
from ..conftest import shared_path
from ._server import running

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs the playwright package")
pytest.importorskip("starlette")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("the browser test needs Debian's chromium (apt-get install chromium)", allow_module_level=True)

from tympan.serve import create_app  # noqa: E402

RATE = 32000


@pytest.fixture(scope="module")
def playwright() -> Iterator[object]:
    with sync_api.sync_playwright() as driver:
        yield driver


def _page_with_microphone(playwright: object, wav: Path) -> object:
    browser = playwright.chromium.launch(  # type: ignore[attr-defined]
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}",  # Chromium reads 16-bit PCM WAV here (not 24-bit)
            "--autoplay-policy=no-user-gesture-required",
        ],
    )
    return browser.new_page(viewport={"width": 1280, "height": 720})


def _shown(page: object, selector: str) -> list[str]:
    return page.eval_on_selector_all(f"{selector} li", "items => items.map(item => item.dataset.label)")  # type: ignore[attr-defined]


def _wait_for_live_seconds(page: object, seconds: float) -> str:
    streamed = "(document.getElementById('status').textContent.match(/([0-9.]+) s ·/) || [0, 0])[1]"
    page.wait_for_function(f"() => parseFloat({streamed}) >= {seconds}", timeout=60_000)  # type: ignore[attr-defined]
    return page.inner_text("#status")  # type: ignore[attr-defined]


def _drop_file(page: object, path: Path) -> list[str]:
    page.set_input_files("#file-input", str(path))  # type: ignore[attr-defined]
    page.wait_for_selector("#file-labels li", timeout=60_000)  # type: ignore[attr-defined]
    return _shown(page, "#file-labels")


def test_the_page_streams_a_fake_microphone_and_tags_a_dropped_file(playwright: object, tmp_path: Path) -> None:
    """A tone at -13 dBFS: the page shows its level as the server measures it, and the file's /tag labels."""
    pipeline = tympan.load("mn", small_mn_state(), width_mult=0.4, device="cpu")
    seconds = np.arange(4 * RATE) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * seconds)).astype(np.float32)
    wav = tmp_path / "tone.wav"
    soundfile.write(wav, tone, RATE, subtype="PCM_16")
    level = 10 * np.log10(np.mean(tone.astype(np.float64) ** 2))
    with running(create_app(pipeline, window=1.0)) as url:
        page = _page_with_microphone(playwright, wav)
        page.goto(f"{url}/?autostart=1&hop=0.5")  # type: ignore[attr-defined]
        status = _wait_for_live_seconds(page, 2.0)
        shown_level = float(re.search(r"(-?[0-9.]+) dBFS", status).group(1))  # type: ignore[union-attr]
        assert abs(shown_level - level) < 1.5, status
        assert len(_shown(page, "#live-labels")) == 5
        expected = [label for label, _ in pipeline.tag(tone, top_k=5)]
        assert _drop_file(page, wav) == expected
        page.context.browser.close()  # type: ignore[attr-defined]


def test_the_trained_dcase23_model_hears_the_metro_station_live(playwright: object, tmp_path: Path) -> None:
    """The real CP-Mobile checkpoint on the real recording: live and dropped, the page says metro_station."""
    checkpoint = shared_path("reference", "dcase23", "cpmobile_c0a7nzin_metro_station.pt")
    recording = shared_path("data", "metro_station-paris.wav")
    pipeline: AudioPipeline = tympan.load("cp_mobile_dcase23", checkpoint, device="cpu")
    samples, rate = soundfile.read(recording, dtype="float32")
    wav = tmp_path / "metro_station-paris.wav"  # a 16-bit copy for Chromium's fake microphone
    soundfile.write(wav, samples, rate, subtype="PCM_16")
    (top, _), *_ = pipeline.tag(samples, rate, top_k=1)
    assert top == "metro_station"
    with running(create_app(pipeline)) as url:
        page = _page_with_microphone(playwright, wav)
        page.goto(f"{url}/?autostart=1&hop=0.5")  # type: ignore[attr-defined]
        _wait_for_live_seconds(page, 4.0)
        assert _shown(page, "#live-labels")[0] == top
        assert _drop_file(page, recording)[0] == top
        if os.environ.get("TYMPAN_SCREENSHOT"):
            page.screenshot(path=os.environ["TYMPAN_SCREENSHOT"])  # type: ignore[attr-defined]
        page.context.browser.close()  # type: ignore[attr-defined]
