"""P5: one knowledge-distillation epoch of the DCASE23 student with stored teacher logits vs teachers run online.

Student: CP-Mobile (submission config) on 1 s clips at 32 kHz, trained with the DCASE23 KD loss. Teachers: the
DCASE23 ensemble (3 PaSST-S fine-tuned at 128 mels + 3 CP-ResNet 128K at 256 mels / hop 750, logits averaged), random
weights (speed does not depend on them). Both epochs run the same steps on the same batches:

* **stored**: teacher logits read by clip id from a :class:`tympan.distill.TeacherLogitStore` (computed once,
  before the timed epoch, with :func:`tympan.distill.compute_teacher_logits`);
* **online**: every step runs each teacher's frontend and forward pass under ``inference_mode`` first.

Prints the median epoch time (wall and process CPU) of each, and the ratio.

    .venv/bin/python -m benchmarks.bench_kd                          # 64 clips, batch 16, 6 teachers, 3 runs
    .venv/bin/python -m benchmarks.bench_kd --passt 1 --cpresnet 0   # a single teacher
    .venv/bin/python -m benchmarks.bench_kd --quick                  # 32 clips, 1 run
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

from tympan.data import ClipDataset, ClipLoader, read_data
from tympan.distill import TeacherLogitStore, compute_teacher_logits
from tympan.models import create, frontend_of
from tympan.train.losses import kd_kl_loss


def _dataset(folder: Path, clips: int) -> Path:
    rng = np.random.default_rng(0)
    lines = ["file,label"]
    for i in range(clips):
        soundfile.write(folder / f"{i}.wav", (0.1 * rng.standard_normal(32000)).astype(np.float32), 32000)
        lines.append(f"{i}.wav,{'abcdefghij'[i % 10]}")
    (folder / "meta.csv").write_text("\n".join(lines) + "\n")
    return folder / "meta.csv"


def _epoch(student, frontend, batches, teachers, store: TeacherLogitStore | None) -> None:
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-4)
    student.train()
    for batch in batches:
        if store is not None:
            teacher_logits = store[batch["id"]]
        else:
            with torch.inference_mode():
                teacher_logits = sum(t(f(batch["audio"]).unsqueeze(1)) for t, f in teachers) / len(teachers)
            teacher_logits = teacher_logits.clone()
        logits = student(frontend(batch["audio"]).unsqueeze(1))
        loss = 0.02 * torch.nn.functional.cross_entropy(logits, batch["target"]) + 0.98 * kd_kl_loss(
            logits, teacher_logits, 2.0
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 clips, 1 run")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--passt", type=int, default=3, help="PaSST teachers in the ensemble")
    parser.add_argument("--cpresnet", type=int, default=3, help="CP-ResNet teachers in the ensemble")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    clips, runs = (32, 1) if args.quick else (args.clips, args.runs)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    teacher_models = [create("cpr_128k_dirfms_1").eval() for _ in range(args.cpresnet)]
    for _ in range(args.passt):
        passt = create("passt_s_swa_p16_128_ap476")
        passt.reset_classifier(10)
        teacher_models.append(passt.eval())
    teachers = [(t, frontend_of(t)) for t in teacher_models]
    student = create("cp_mobile_dcase23")
    student_frontend = frontend_of(student)  # eval: same work in both arms

    folder = Path(tempfile.mkdtemp(prefix="tympan_bench_kd_"))
    try:
        csv = _dataset(folder, clips)
        table = read_data(csv)
        loader = ClipLoader(32000, 32000)
        dataset = ClipDataset(table, loader)
        batches = [torch.utils.data.default_collate([dataset[i] for i in range(s, min(s + args.batch, clips))])
                   for s in range(0, clips, args.batch)]  # fmt: skip
        store_time = _timed(lambda: compute_teacher_logits(teacher_models, table, folder / "logits.npy",
                                                           clip_seconds=1.0, batch_size=args.batch, device="cpu"))
        store = TeacherLogitStore(folder / "logits.npy")
        stored, online = [], []
        for _ in range(runs):
            stored.append(_timed(lambda: _epoch(student, student_frontend, batches, teachers, store)))
            online.append(_timed(lambda: _epoch(student, student_frontend, batches, teachers, None)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    names = f"{args.passt} x PaSST-S + {args.cpresnet} x CP-ResNet 128K"
    print(f"P5 KD epoch: CP-Mobile student, {clips} clips of 1 s, batch {args.batch}, teachers {names}, "
          f"{runs} runs, {args.threads} thread(s); computing the store once took {store_time[0]:.1f} s")
    medians = {}
    for name, values in (("stored logits", stored), ("teachers online", online)):
        medians[name] = (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
        print(f"  {name:16s} epoch {medians[name][0]:7.2f} s wall  {medians[name][1]:7.2f} s CPU")
    wall_ratio = medians["teachers online"][0] / medians["stored logits"][0]
    cpu_ratio = medians["teachers online"][1] / medians["stored logits"][1]
    print(f"  stored logits are x{wall_ratio:.1f} faster (wall), x{cpu_ratio:.1f} (CPU); "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (ru_maxrss, teachers loaded)")


if __name__ == "__main__":
    main()
