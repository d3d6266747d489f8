"""Inference speed: one clip end to end (P1) and whole-file tagging of an hour of audio (P2).

P1 (1 thread, process CPU time, medians): one 10-s clip of a 44.1-kHz WAV through decode → resample → mel frontend
→ model, per stage, with random weights: the reference-style path (frontend rebuilding its filterbank per call,
PyTorch eager model) against the fast path (tympan's frontend, the faster of onnxruntime and PyTorch), and the
ratio of each to the MAC floor = the model's MACs / a float32 matrix-multiply rate measured in the same run; then
where onnxruntime spends its time per node kind. Also tries the frontend exported into the ONNX graph.

P2 (1 and 2 threads): tagging one hour of generated audio (a 16-bit WAV written block by block) with ``mn10_as`` at
a 1-s timeline hop: × real time and peak resident memory, for 10 and 60 minutes (memory flat in file length), the
CPU time per stage, and the windowed timeline against the pooled one (feature maps once per chunk, pooled per
window).

    .venv/bin/python -m benchmarks.bench_inference            # P1 and P2
    .venv/bin/python -m benchmarks.bench_inference --quick    # seconds: few runs, 2-minute file
    .venv/bin/python -m benchmarks.bench_inference --only p1 --models mn10_as,dymn10_as,cp_mobile_dcase23
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import soxr
import torch


def _load(name: str, backend: str = "torch") -> Any:
    """Zoo model ``name`` with O(1) activations (random init gives logits of ~1e-10, which would compare nothing)."""
    import tympan
    from tests._models import stress_

    pipeline = tympan.load(name, pretrained=False, device="cpu", backend="torch")
    stress_(pipeline.model, torch.Generator().manual_seed(0))
    return pipeline.with_backend(backend)


def _median_cpu_ms(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return 1000 * statistics.median(times)


def matmul_rate(runs: int) -> float:
    """Float32 multiply-accumulates per second of one large matrix product (1 thread)."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    milliseconds = _median_cpu_ms(lambda: torch.mm(a, b), runs)
    return 1024**3 / (milliseconds / 1000)


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence file descriptors 1 and 2 (the TorchScript exporter prints whole graphs from C++ on failure)."""
    sys.stdout.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1), os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])


def _frontend_in_onnx_ms(frontend: torch.nn.Module, waveform: torch.Tensor, runs: int) -> str:
    """Time the frontend as an ONNX graph, or say why it cannot be exported."""
    import onnxruntime

    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), _quiet():
            warnings.simplefilter("ignore")
            torch.onnx.export(frontend, (waveform,), buffer, dynamo=False, opset_version=17)
    except Exception as error:  # report any exporter failure as a figure, it is the measurement
        return f"not exportable ({type(error).__name__}: {str(error).splitlines()[0][:60]})"
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return f"{_median_cpu_ms(lambda: session.run(None, {name: waveform.numpy()}), runs):.2f} ms"


def _node_kind(op: str, inputs: list[list[int]], output: list[int]) -> tuple[str, float]:
    """The kind of a profiled onnxruntime node and its multiply-accumulates (0 for element-wise work)."""
    outputs = float(np.prod(output)) if output else 0.0
    if op == "Conv" and len(inputs) > 1 and len(inputs[1]) == 4:
        weight = inputs[1]  # [out, in / groups, kh, kw]
        macs = outputs * weight[1] * weight[2] * weight[3]
        if weight[1] == 1 and inputs[0][1] > 1:
            return f"Conv depthwise {weight[2]}x{weight[3]}", macs
        return ("Conv pointwise 1x1" if weight[2] * weight[3] == 1 else f"Conv full {weight[2]}x{weight[3]}"), macs
    if op in ("MatMul", "FusedMatMul", "Gemm", "FusedGemm") and inputs and inputs[0]:
        return "MatMul/Gemm", outputs * inputs[0][-1]
    return op, 0.0


def onnx_breakdown(graph: torch.nn.Module, mel: torch.Tensor, matmul: float, runs: int) -> None:
    """Where the onnxruntime time goes: per node kind, its share of the time against its share of the MACs.

    Also times the graph at each optimisation level and the TorchScript alternative (frozen, optimised for
    inference), the cheap wins tried before settling on onnxruntime with all optimisations.
    """
    import onnxruntime

    from tympan.export import _export

    with _quiet():
        data, _ = _export(graph, mel)
    levels = onnxruntime.GraphOptimizationLevel
    feed = {"mel": mel.numpy()}
    timings = []
    for level in (levels.ORT_ENABLE_BASIC, levels.ORT_ENABLE_EXTENDED, levels.ORT_ENABLE_ALL):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.graph_optimization_level = 1, level
        session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        milliseconds = _median_cpu_ms(lambda session=session: session.run(None, feed), runs)
        timings.append(f"{level.name.removeprefix('ORT_ENABLE_').lower()} {milliseconds:.2f}")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            script = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(graph, mel, check_trace=False)))
            timings.append(f"TorchScript frozen {_median_cpu_ms(lambda: script(mel), runs):.2f}")
    except Exception as error:  # a figure, not a failure of the benchmark
        timings.append(f"TorchScript: {type(error).__name__}")
    print(f"  model by backend (ms): onnxruntime optimisation level {', '.join(timings)}")

    with tempfile.TemporaryDirectory() as folder:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.enable_profiling = 1, True
        options.profile_file_prefix = str(Path(folder) / "profile")
        session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        for _ in range(runs + 1):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    time_us: dict[str, float] = {}
    macs: dict[str, float] = {}
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        arguments = event["args"]
        inputs = [next(iter(shape.values())) for shape in arguments.get("input_type_shape", [])]
        outputs = [next(iter(shape.values())) for shape in arguments.get("output_type_shape", [])]
        kind, node_macs = _node_kind(arguments["op_name"], inputs, outputs[0] if outputs else [])
        time_us[kind] = time_us.get(kind, 0.0) + event["dur"] / (runs + 1)
        macs[kind] = macs.get(kind, 0.0) + node_macs / (runs + 1)
    total_time, total_macs = sum(time_us.values()), sum(macs.values())
    print(f"  onnxruntime profile (kernel time {total_time / 1000:.2f} ms, {total_macs / 1e9:.3f} GMACs;"
          f" matmul rate {matmul / 1e9:.0f} GMAC/s):")
    for kind in sorted(time_us, key=time_us.get, reverse=True)[:8]:
        rate = f"{macs[kind] / time_us[kind] / 1e3:6.1f} GMAC/s" if macs[kind] else " " * 13
        print(f"    {kind:22s} {time_us[kind] / 1000:6.2f} ms  {time_us[kind] / total_time:6.1%} of time"
              f"  {macs[kind] / total_macs:6.1%} of MACs  {rate}")


def p1(runs: int, name: str = "mn10_as", seconds: float = 10.0, batch: int = 1) -> None:
    """One clip (or a batch of clips cut from one file) end to end, per stage, against the reference-style path.

    Reference style: the reference frontend (filterbank rebuilt on every call,
    :func:`benchmarks.bench_frontend.naive_frontend`) and the PyTorch eager model. Fast path: tympan's frontend
    and the network in onnxruntime (:class:`tympan.export.OnnxNetwork`). Decoding and resampling are the same in
    both (soundfile + soxr HQ, what librosa does by default).
    """
    from benchmarks.bench_frontend import naive_frontend
    from tympan.audio.io import load_audio
    from tympan.eval.complexity import measure_model
    from tympan.export import LogitsAndEmbedding

    torch.set_num_threads(1)
    pipeline = _load(name)
    with _quiet():
        fast = pipeline.with_backend("onnx")
    rate = pipeline.sample_rate
    config = pipeline.frontend_config
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.wav"
        noise = 0.1 * np.random.default_rng(0).standard_normal(round(44100 * seconds * batch))
        soundfile.write(path, noise, 44100, subtype="PCM_16")
        raw, _ = soundfile.read(path, dtype="float32")
        decode = _median_cpu_ms(lambda: soundfile.read(path, dtype="float32"), runs)
        resample = _median_cpu_ms(lambda: soxr.resample(raw, 44100, rate, quality="HQ"), runs)
        load = _median_cpu_ms(lambda: load_audio(path, rate), runs)
    waveform = torch.from_numpy(soxr.resample(raw, 44100, rate, quality="HQ"))
    waveform = waveform[: batch * round(seconds * rate)].reshape(batch, -1)

    def reference(x: torch.Tensor) -> torch.Tensor:
        return pipeline.model(naive_frontend(x, config).unsqueeze(1))

    with torch.inference_mode():
        naive = _median_cpu_ms(lambda: naive_frontend(waveform, config), runs)
        frontend = _median_cpu_ms(lambda: pipeline.frontend(waveform), runs)
        mel = pipeline.frontend(waveform).unsqueeze(1)
        eager = _median_cpu_ms(lambda: pipeline.model(mel), runs)
        onnx = _median_cpu_ms(lambda: fast._onnx(mel), runs)
        end_reference = _median_cpu_ms(lambda: reference(waveform), runs)
        fastest = fast if onnx < eager else pipeline  # the faster backend of the model measured above
        end_fast = _median_cpu_ms(lambda: fastest.forward_waveforms(waveform), runs)
        logits_reference = reference(waveform)
        logits_fast, _ = fastest.forward_waveforms(waveform)
    macs = batch * measure_model(name, seconds=seconds).complexity.macs
    matmul = matmul_rate(runs)
    floor = 1000 * macs / matmul
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    clips = f"{batch} clips of {seconds:g} s" if batch > 1 else f"one {seconds:g}-s clip"
    print(f"P1: {name}, {clips}, 1 thread, process CPU time, median of {runs}")
    print(f"  decode (soundfile, 44.1 kHz 16-bit)   {decode:7.2f} ms")
    print(f"  resample (soxr HQ, 44.1 -> {rate / 1000:g} kHz)    {resample:7.2f} ms")
    print(f"  load_audio (decode + resample)        {load:7.2f} ms")
    in_onnx = _frontend_in_onnx_ms(pipeline.frontend, waveform, runs)
    print(f"  mel frontend, reference style         {naive:7.2f} ms")
    print(f"  mel frontend, tympan                  {frontend:7.2f} ms   ({naive / frontend:.2f}x; in ONNX: {in_onnx})")
    print(f"  model, PyTorch eager                  {eager:7.2f} ms")
    print(f"  model, onnxruntime                    {onnx:7.2f} ms   ({eager / onnx:.2f}x eager)")
    print(f"  waveform -> logits, reference style   {end_reference:7.2f} ms")
    print(f"  waveform -> logits, fast path         {end_fast:7.2f} ms   ({end_reference / end_fast:.2f}x reference;"
          f" tympan frontend + {'onnxruntime' if fastest is fast else 'PyTorch eager'} model)")
    print(
        f"  file -> logits: reference style {load + end_reference:.2f} ms, fast path {load + end_fast:.2f} ms"
        f" ({(load + end_reference) / (load + end_fast):.2f}x);"
        f" max |logits fast - reference| = {(logits_fast - logits_reference).abs().max().item():.1e}"
    )
    print(
        f"  MAC floor: {macs / 1e9:.3f} GMACs / {matmul / 1e9:.1f} GMAC/s (matmul) = {floor:.2f} ms;"
        f" fast path {end_fast / floor:.2f}x floor (model only {min(eager, onnx) / floor:.2f}x),"
        f" reference {end_reference / floor:.2f}x"
    )
    print(f"  peak RSS of this process (ru_maxrss: model, both backends, export): {peak:.0f} MB")
    onnx_breakdown(LogitsAndEmbedding(pipeline.model).eval(), mel, matmul, runs)


def _write_noise(path: Path, seconds: int, rate: int = 32000) -> None:
    """A WAV of ``seconds`` of coloured noise bursts, written in one-minute blocks (flat memory)."""
    generator = np.random.default_rng(0)
    with soundfile.SoundFile(path, "w", rate, 1, subtype="PCM_16") as out:
        for start in range(0, seconds, 60):
            block = generator.standard_normal(min(60, seconds - start) * rate).astype(np.float32)
            envelope = np.repeat(generator.uniform(0.01, 0.3, len(block) // rate + 1), rate)[: len(block)]
            out.write(block * envelope)


def _tag_child(path: str, method: str, threads: int) -> None:
    """Run in a fresh process: tag ``path``; print JSON with time and peak memory."""
    from tympan.tagging import timeline

    torch.set_num_threads(threads)
    pipeline = _load("mn10_as", "onnx")
    if method == "pooled":  # export the graphs before timing: setup, not tagging
        pipeline.feature_map(torch.zeros(64 * pipeline.sample_rate))
    else:
        pipeline.forward_waveforms(torch.zeros(16, 10 * pipeline.sample_rate))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wall, cpu = time.perf_counter(), time.process_time()
    line = timeline(pipeline, path, window=10.0, hop=1.0, method=method, batch_size=16)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    np.save(path + f".{method}.npy", line.scores)
    figures = {
        "wall": wall,
        "cpu": cpu,
        "duration": line.duration,
        "peak_mb": peak / 1024,
        "before_mb": before / 1024,
        "windows": len(line.starts),
    }
    if method == "pooled":
        figures["stages"] = _pooled_stages(pipeline, path)
    print(json.dumps(figures))


def _pooled_stages(pipeline: Any, path: str, minutes: float = 5.0) -> dict[str, float]:
    """CPU seconds per hour of audio of each stage of the pooled path, measured on the file's first minutes."""
    from tympan.audio.io import stream_audio
    from tympan.engine.jobs import SEGMENT_SECONDS as CHUNK_SECONDS

    rate = pipeline.sample_rate
    start = time.process_time()
    chunks = []
    for chunk in stream_audio(path, rate, chunk_seconds=CHUNK_SECONDS + 4):  # + the context on both sides
        chunks.append(torch.from_numpy(chunk))
        if len(chunks) * CHUNK_SECONDS >= 60 * minutes:
            break
    decode = time.process_time() - start
    with torch.inference_mode():
        start = time.process_time()
        mels = [pipeline.frontend(chunk[None]).unsqueeze(1) for chunk in chunks]
        frontend = time.process_time() - start
        start = time.process_time()
        for mel in mels:
            pipeline._onnx_feature_map(mel)
        model = time.process_time() - start
    scale = 3600 / (len(chunks) * CHUNK_SECONDS)
    return {"decode + resample": decode * scale, "frontend": frontend * scale, "model (onnxruntime)": model * scale}


def p2(minutes: list[int], threads: int) -> None:
    print(f"P2: mn10_as, 10-s windows at a 1-s hop, {threads} threads (random weights), fresh process per run")
    with tempfile.TemporaryDirectory() as folder:
        for length in minutes:
            path = Path(folder) / f"noise_{length}min.wav"
            _write_noise(path, 60 * length)
            for method in ("pooled", "windows"):
                if method == "windows" and length > min(minutes):
                    continue  # the windowed baseline runs on the shortest file only (it is ~10x slower)
                result = subprocess.run(
                    [sys.executable, "-m", "benchmarks.bench_inference", "--child", str(path), method, str(threads)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                figures = json.loads(result.stdout.strip().splitlines()[-1])
                print(
                    f"  {length:3d} min, {method:7s}: {figures['duration'] / figures['wall']:7.0f}x real time (wall),"
                    f" {figures['duration'] / figures['cpu']:6.0f}x per CPU second,"
                    f" peak RSS {figures['peak_mb']:6.0f} MB"
                    f" (after loading {figures['before_mb']:.0f} MB), {figures['windows']} windows"
                )
                if "stages" in figures:
                    stages = figures["stages"]
                    total = figures["cpu"] * 3600 / figures["duration"]
                    split = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in stages.items())
                    print(f"           CPU seconds per hour of audio: {total:.1f} s in all; {split};"
                          f" the rest (pooling, buffers, head) {total - sum(stages.values()):.1f} s")
            if (Path(str(path) + ".windows.npy")).exists():
                pooled = np.load(str(path) + ".pooled.npy")
                windowed = np.load(str(path) + ".windows.npy")
                difference = np.abs(pooled - windowed)
                top_pooled, top_windowed = pooled.argmax(1), windowed.argmax(1)
                print(
                    f"  pooled vs windowed timeline: max |score difference| {difference.max():.3f}, mean"
                    f" {difference.mean():.4f}, top-1 label agrees in"
                    f" {np.mean(top_pooled == top_windowed):.1%} of windows"
                )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few runs and a 2-minute file")
    parser.add_argument("--only", choices=("p1", "p2"))
    parser.add_argument(
        "--models",
        default="mn10_as",
        help="P1 models, comma-separated (e.g. mn10_as,dymn10_as,cp_mobile_dcase23,passt_s_swa_p16_128_ap476;"
        " cp_* run a batch of ten 1-s clips), each in a fresh process",
    )
    parser.add_argument("--threads", default="1,2", help="thread counts of P2, comma-separated (default 1,2)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _tag_child(args.child[0], args.child[1], int(args.child[2]))
        return
    if args.only in (None, "p1"):
        names = args.models.split(",")
        for name in names:
            if len(names) > 1:  # a fresh process per model: its own peak memory
                quick = ["--quick"] if args.quick else []
                command = [sys.executable, "-m", "benchmarks.bench_inference", "--only", "p1", "--models", name]
                subprocess.run([*command, *quick], check=True)
                continue
            seconds, batch = (1.0, 10) if name.startswith("cp_") else (10.0, 1)
            runs = (2 if args.quick else 5) if name.startswith("passt") else (5 if args.quick else 30)
            p1(runs=runs, name=name, seconds=seconds, batch=batch)
    if args.only in (None, "p2"):
        for threads in args.threads.split(","):
            p2([2] if args.quick else [10, 60], int(threads))

if __name__ == "__main__":
    main()
