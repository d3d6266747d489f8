"""The batch engine: worker processes give the records of one process, in order, errors as records; a crashing
worker loses one file; read_span; cached ONNX graphs; one definition of a file's embedding."""

from __future__ import annotations

import gc
import itertools
import multiprocessing
import os
import platform
from collections.abc import Iterator
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torch.multiprocessing  # registers the reductions that send tensors as shared memory

import tympan
from tympan import engine, export
from tympan.allocator import keep_freed_memory
from tympan.audio.io import _to_mono, audio_info, load_audio, read_span
from tympan.cli import main
from tympan.engine import jobs, runner
from tympan.engine.pieces import ClipPiece, Outputs
from tympan.engine.runner import WORKER_DIED
from tympan.pipeline import AudioPipeline
from tympan.tagging import timeline

from .._models import small_mn_state

RATE = 32000


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """The in-process runs on one thread, as the workers: on a shared machine, more only spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "mn04.pt"
    torch.save(small_mn_state(), path)
    return path


@pytest.fixture(scope="module")
def pipeline(checkpoint: Path) -> AudioPipeline:
    return tympan.load("mn04_as", str(checkpoint), device="cpu")


@pytest.fixture(scope="module")
def network(pipeline: AudioPipeline) -> engine.Network:
    return engine.Network(pipeline)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    generator = np.random.default_rng(0)
    for i in range(11):  # more than one work item of whole files
        soundfile.write(root / f"clip{i:02d}.wav", 0.1 * generator.standard_normal((44100, 2)), 44100)
    soundfile.write(root / "long.wav", 0.1 * generator.standard_normal(3 * RATE + 123), RATE)
    (root / "clip05_broken.wav").write_bytes(b"RIFF....WAVEjunk")
    return root


def _rows(records: list[engine.Record]) -> list[tuple[str, str | None]]:
    return [(Path(r.file).name, r.error and r.error[:20]) for r in records]


@pytest.mark.parametrize(("name", "subtype"), [("a.wav", "FLOAT"), ("a.ogg", "VORBIS"), ("a.mp3", "MPEG_LAYER_III")])
def test_read_span_is_load_audio_of_the_span(tmp_path: Path, name: str, subtype: str) -> None:
    """Also for MP3 and Ogg, which libsndfile seeks sample-exactly: a long compressed file is read in pieces too."""
    path = tmp_path / name
    stereo = 0.1 * np.random.default_rng(1).standard_normal((44100 * 3 + 17, 2)).astype(np.float32)
    soundfile.write(path, stereo, 44100, subtype=subtype)
    assert audio_info(path).format in jobs.SEEKABLE_FORMATS
    whole = load_audio(path, RATE)
    np.testing.assert_array_equal(read_span(path, RATE), whole)
    for start, stop in ((0, 1000), (32000, 64000), (12345, 70001), (90000, None)):
        np.testing.assert_allclose(read_span(path, RATE, start, stop), whole[start:stop], atol=1e-6)


def test_mono_mix_is_numpy_mean_bit_for_bit() -> None:
    generator = np.random.default_rng(3)
    for channels in (2, 3, 6):
        frames = generator.standard_normal((1000, channels)).astype(np.float32)
        np.testing.assert_array_equal(_to_mono(frames), np.mean(frames.T, axis=0))


def test_workers_give_the_records_of_one_process_in_order(
    pipeline: AudioPipeline, network: engine.Network, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "LONG_FILE_SECONDS", 2.0)  # long.wav: clip-length windows, in pieces
    monkeypatch.setattr(pipeline, "clip_seconds", 1.0)
    alone = list(engine.tag_files(network, [folder], workers=0))
    parallel = list(engine.tag_files(network, [folder], workers=2))
    names = sorted(p.name for p in folder.iterdir())
    assert [Path(r.file).name for r in parallel] == names and [r.index for r in parallel] == list(range(len(names)))
    assert _rows(parallel) == _rows(alone)
    broken = next(r for r in parallel if r.error)
    assert Path(broken.file).name == "clip05_broken.wav" and "cannot decode" in broken.error
    for a, b in zip(alone, parallel, strict=True):
        if a.error is None:
            np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
    long = next(r for r in parallel if r.file.endswith("long.wav"))
    assert "maximum of the scores of 4 windows of 1 s" in long.notes[-1]


def test_forking_workers_leaves_the_callers_garbage_collector_as_it_was(network: engine.Network, folder: Path) -> None:
    gc.unfreeze()
    list(engine.tag_files(network, [folder], workers=2))
    assert gc.get_freeze_count() == 0  # frozen only while the workers fork
    gc.freeze()  # a caller's own freeze (the CLI's, after importing torch) stays
    try:
        list(engine.tag_files(network, [folder], workers=2))
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_timeline_pieces_in_workers_equal_one_pass(pipeline: AudioPipeline, folder: Path) -> None:
    path = folder / "long.wav"
    for method in ("windows", "pooled"):
        one = timeline(pipeline, path, window=1.0, hop=0.5, method=method, workers=0)
        pieces = timeline(pipeline, path, window=1.0, hop=0.5, method=method, chunk_seconds=1.0, workers=2)
        np.testing.assert_allclose(pieces.starts, one.starts)
        # Pooled pieces see their own context: equal to the one-pass timeline up to squeeze-excitation's view.
        np.testing.assert_allclose(pieces.scores, one.scores, atol=1e-5 if method == "windows" else 0.02)


def test_pooled_windows_classified_in_chunks_equal_all_at_once(
    pipeline: AudioPipeline, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = timeline(pipeline, folder / "long.wav", window=1.0, hop=0.25, method="pooled", workers=0)
    monkeypatch.setattr(jobs, "POOLED_WINDOWS_PER_CALL", 3)
    chunked = timeline(pipeline, folder / "long.wav", window=1.0, hop=0.25, method="pooled", workers=0)
    assert len(whole.starts) > 6
    np.testing.assert_allclose(chunked.starts, whole.starts)
    np.testing.assert_allclose(chunked.scores, whole.scores, atol=1e-6)


def test_a_worker_that_dies_loses_only_its_file(
    network: engine.Network, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ClipPiece.load

    def crashing(piece: ClipPiece, network: engine.Network) -> torch.Tensor:
        if piece.file.endswith("clip03.wav") and os.getpid() != parent:
            os._exit(3)  # a decoder crash: the process is gone, no exception
        return real(piece, network)

    parent = os.getpid()
    monkeypatch.setattr(ClipPiece, "load", crashing)
    records = list(engine.tag_files(network, [folder], workers=2))
    failed = {Path(r.file).name: r.error for r in records if r.error}
    assert failed == {"clip03.wav": WORKER_DIED, "clip05_broken.wav": failed["clip05_broken.wav"]}
    assert len(records) == len(list(folder.iterdir()))


def test_a_second_network_exports_nothing(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = engine.load_network("mn04_as", str(checkpoint), device="cpu", backend="onnx")

    def no_export(*args: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(export, "_export", no_export)
    second = engine.load_network("mn04_as", str(checkpoint), device="cpu", backend="onnx")
    waveform = 0.1 * torch.randn(2, RATE, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(first.forward(waveform)["logits"], second.forward(waveform)["logits"], atol=1e-6)


def test_a_large_batch_runs_in_calls_of_the_cpu_size_with_the_same_outputs(
    network: engine.Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    rate = network.sample_rate
    assert network.rows_per_call(torch.zeros(4, 10 * rate)) == 1  # 10-s clips: one per call
    assert network.rows_per_call(torch.zeros(32, rate)) == 16
    assert network.rows_per_call(torch.zeros(2, 60 * rate)) == 1
    waveforms = 0.1 * torch.randn(5, rate // 2, generator=torch.Generator().manual_seed(0))
    calls: list[int] = []
    real = network._pipeline.forward_waveforms
    monkeypatch.setattr(network._pipeline, "forward_waveforms", lambda part: calls.append(len(part)) or real(part))
    monkeypatch.setattr(engine.network, "CPU_SECONDS_PER_CALL", 1.0)  # two half-second clips per call
    outputs = network.forward(waveforms)
    assert calls == [2, 2, 1]
    alone = [real(row[None])[0] for row in waveforms]
    torch.testing.assert_close(outputs["logits"], torch.cat(alone), atol=1e-5, rtol=1e-5)


def test_pooled_is_the_default_where_it_applies(network: engine.Network) -> None:
    assert engine.default_method(network, 10.0, 1.0) == "pooled"
    assert engine.default_method(network, 10.0, 3.0) == "windows"  # not a multiple of the hop
    assert engine.default_method(network, 10.0, 1.0, tail="pad") == "windows"


def test_tympan_embed_and_the_cli_compute_the_same_embedding(
    checkpoint: Path, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "LONG_FILE_SECONDS", 2.0)  # long.wav: the mean over windows
    files = [str(folder / "clip00.wav"), str(folder / "long.wav")]
    out = tmp_path / "e.npz"
    assert main(["embed", *files, "--model", "mn04_as", "--checkpoint", str(checkpoint), "--output", str(out)]) == 0
    written = np.load(out)["embeddings"]
    python = tympan.embed(files, "mn04_as", checkpoint=str(checkpoint), device="cpu")
    np.testing.assert_allclose(written, python, atol=1e-4)
    one_pass = tympan.load("mn04_as", str(checkpoint), device="cpu").embed(files[0])
    np.testing.assert_allclose(python[0], one_pass, atol=1e-5)  # a short file: one forward pass


def test_outputs_cross_processes_inline_not_as_shared_memory() -> None:
    """A tensor from a DataLoader worker travels as a shared-memory segment and a file descriptor; the small
    outputs of a piece are cheaper copied inline."""
    outputs = Outputs({"sums": torch.arange(6.0).reshape(2, 3)[:, 1:]}, ["note"])
    received = ForkingPickler.loads(ForkingPickler.dumps(outputs))
    assert received.notes == ["note"] and not received.values["sums"].is_shared()
    torch.testing.assert_close(received.values["sums"], outputs.values["sums"])


def test_workers_have_exited_when_the_last_item_is_handed_out(network: engine.Network, folder: Path) -> None:
    """Until they exit, every page the main process writes is a copy-on-write fault on memory it shares with them."""
    job = jobs.TagJob(network, files_per_item=1)
    _, items = runner.plan_job(job, [(str(path), str(path)) for path in sorted(folder.glob("clip0[0-2].wav"))])
    outcomes = runner._outcomes(runner.WorkItems(items, network, compute=True), workers=2)
    alive = [len(multiprocessing.active_children()) for _ in outcomes]
    assert len(alive) == 3 and alive[0] > 0 and alive[-1] == 0


def test_the_last_files_finish_on_the_workers_cores_and_the_callers_threads_come_back(
    network: engine.Network, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    finishing_threads = []
    finish = jobs.TagJob.finish

    def counting(job: jobs.TagJob, *args: object) -> engine.Record:
        finishing_threads.append(torch.get_num_threads())
        return finish(job, *args)

    monkeypatch.setattr(jobs.TagJob, "finish", counting)
    paths = sorted(folder.glob("clip0[0-4].wav"))
    records = list(engine.tag_files(network, paths, workers=2))
    assert len(records) == 5 and finishing_threads[0] == 1 and finishing_threads[-1] == 2
    assert torch.get_num_threads() == 1


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's mallopt")
def test_the_allocator_keeps_freed_memory_under_glibc() -> None:
    assert keep_freed_memory()


def test_pooled_pieces_start_on_the_frame_grid_of_one_pass(network: engine.Network) -> None:
    """A long file's pooled pieces start on the feature-map frame grid of one pass over it (their frames are its
    frames, but at their edges), keep the whole file between them, and those inside it share one length (one graph
    where a model's graph has a fixed shape)."""
    total = 3600 * RATE
    pieces = jobs.TimelineJob(network, window=10.0, hop=1.0, method="pooled").plan(jobs.Input(0, "a", "a.wav", total))
    spans = [piece._span() for piece in pieces]
    assert all(start % network.feature_stride == 0 for start, _ in spans)
    assert len({stop - start for start, stop in spans[1:-1]}) == 1
    keeps = [piece.keep for piece in pieces]
    assert keeps[0][0] == 0 and keeps[-1][1] == total
    assert all(end == start for (_, end), (start, _) in itertools.pairwise(keeps))


def test_pooled_windows_are_classified_as_their_pieces_arrive(
    network: engine.Network, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The main process classifies a long file's windows while later pieces are still being computed, and keeps
    only the per-hop sums of windows to come; the scores are those of all pieces at once."""
    monkeypatch.setattr(jobs, "POOLED_WINDOWS_PER_CALL", 2)
    job = jobs.TimelineJob(network, window=1.0, hop=0.25, method="pooled", segment_seconds=1.0)
    planned, items = runner.plan_job(job, [("long", str(folder / "long.wav"))])
    pieces = [piece for item in items for piece in item]
    outputs = [piece.compute(network, piece.load(network)) for piece in pieces]
    arrived: list[int] = []

    def arriving() -> Iterator[Outputs]:
        for output in outputs:
            arrived.append(1)
            yield output

    arrived_at_calls: list[int] = []
    head = engine.Network.head

    def counting(net: engine.Network, embeddings: torch.Tensor) -> torch.Tensor:
        arrived_at_calls.append(len(arrived))
        return head(net, embeddings)

    monkeypatch.setattr(engine.Network, "head", counting)
    streamed = job.collect(planned[0], pieces, arriving())
    assert len(pieces) == 4 and arrived_at_calls[0] == 2  # the first 2 windows need the first 5 hops: 2 pieces
    at_once = job.finish(planned[0], pieces, outputs)
    np.testing.assert_allclose(streamed.timeline.scores, at_once.timeline.scores, atol=1e-6)


def test_a_failed_piece_of_a_long_file_fails_its_record_only(network: engine.Network, folder: Path) -> None:
    job = jobs.TimelineJob(network, window=1.0, hop=0.25, method="pooled", segment_seconds=1.0)
    sources = [("long", str(folder / "long.wav")), ("clip", str(folder / "clip00.wav"))]
    planned, items = runner.plan_job(job, sources)
    pieces = [piece for item in items for piece in item]
    outcomes = [piece.compute(network, piece.load(network)) for piece in pieces]
    outcomes[1] = ValueError("a piece went wrong")
    long, clip = runner.assemble(job, planned, iter(outcomes))
    assert "a piece went wrong" in long.error and clip.error is None and clip.timeline is not None
