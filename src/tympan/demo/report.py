"""``report.md`` and ``metrics.json`` of the demo: every number in the report comes from the metrics dictionary.

The findings are worded from the measurements: a difference smaller than twice its standard error is called
"within noise", never an improvement.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["COMPARISONS", "across_seeds", "compare", "write_metrics", "write_report"]

# The report's comparisons: the papers' claims and the conditions they rest on, each "new minus baseline".
COMPARISONS: dict[str, str] = {
    "kd_vs_no_kd": "KD − student alone (test accuracy)",
    "device_augmentation_unseen": "KD + DIR + FMS − KD (unseen devices)",
    "seen_vs_unseen": "student alone: seen − unseen devices",
    "ensemble_vs_student": "teacher ensemble − student alone (test accuracy)",
}


def _verdict(mean: float, error: float) -> str:
    return "better" if mean > 2 * error else "worse" if mean < -2 * error else "within noise"


def compare(new: Sequence[float], old: Sequence[float]) -> dict[str, Any]:
    """Mean difference of paired scores (per clip, or per scene instance) with its standard error, and whether it
    exceeds twice that.

    Both sides are scored on the same clips, so the clips' own difficulty cancels: the error is that of the paired
    differences, smaller than that of two independent binomial accuracies.
    """
    differences = np.asarray(new, dtype=float) - np.asarray(old, dtype=float)
    delta = float(differences.mean())
    error = float(differences.std(ddof=1) / np.sqrt(len(differences))) if len(differences) > 1 else math.inf
    return {"delta": delta, "standard_error": error, "verdict": _verdict(delta, error), "pairs": len(differences)}


def _spread(values: list[float]) -> dict[str, Any]:
    """Mean and standard error of the mean of per-seed values; a verdict once two seeds exist."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return {"values": values, "mean": mean, "standard_error": None, "verdict": "one seed"}
    error = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))
    return {"values": values, "mean": mean, "standard_error": error, "verdict": _verdict(mean, error)}


def across_seeds(
    findings: Sequence[Mapping[str, Any]], models: Sequence[Mapping[str, Mapping[str, Any]]]
) -> dict[str, Any]:
    """Each comparison's difference and each model's accuracies as mean ± standard error across seeds (the
    standard error of the mean over seeds: it includes the corpus's and the initialisation's variation)."""
    return {
        "seeds": len(findings),
        "comparisons": {name: _spread([f[name]["delta"] for f in findings]) for name in COMPARISONS},
        "models": {
            name: {
                key: _spread([m[name][key] for m in models]) for key in ("accuracy", "accuracy_seen", "accuracy_unseen")
            }
            for name in models[0]
        },
    }


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def _points(value: float) -> str:
    return f"{100 * value:+.1f} points"


def _finding(name: str, comparison: Mapping[str, Any], new: float, old: float, subject: str) -> str:
    verdict = comparison["verdict"]
    numbers = (
        f"{_percent(new)} vs {_percent(old)}, {_points(comparison['delta'])} ± {_percent(comparison['standard_error'])}"
    )
    if verdict == "better":
        return f"- **{name}: yes.** {subject} ({numbers})."
    if verdict == "worse":
        return f"- **{name}: no, it was worse** ({numbers})."
    return f"- **{name}: not shown by this run.** The difference is within noise ({numbers})."


def _seeds_section(across: Mapping[str, Any]) -> list[str]:
    """Each comparison across seeds: the per-seed differences, their mean ± standard error and the verdict."""
    if across["seeds"] < 2:
        return []
    lines = [
        f"## Across {across['seeds']} seeds (corpus and initialisation re-drawn per seed)",
        "| comparison | per seed | mean ± standard error | verdict |",
        "| --- | --- | ---: | --- |",
    ]
    for name, title in COMPARISONS.items():
        entry = across["comparisons"][name]
        values = ", ".join(_points(v) for v in entry["values"])
        lines.append(
            f"| {title} | {values} | {_points(entry['mean'])} ± {100 * entry['standard_error']:.1f} | "
            f"{entry['verdict']} |"
        )
    lines += ["", "| model | test acc. | seen devices | unseen devices |", "| --- | ---: | ---: | ---: |"]
    for name, entry in across["models"].items():
        cells = [f"{_percent(entry[k]['mean'])} ± {100 * entry[k]['standard_error']:.1f}" for k in entry]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return [*lines, ""]


def _model_table(models: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = [
        "| model | role | params | MACs (1 s) | test acc. | seen devices | unseen devices | train time |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, model in models.items():
        params = f"{model['params']:,}" if model.get("params") is not None else "–"
        macs = f"{model['macs'] / 1e6:.2f} M" if model.get("macs") is not None else "–"
        seconds = f"{model['train_seconds']:.0f} s" if model.get("train_seconds") is not None else "–"
        lines.append(
            f"| {name} | {model['role']} | {params} | {macs} | {_percent(model['accuracy'])} | "
            f"{_percent(model['accuracy_seen'])} | {_percent(model['accuracy_unseen'])} | {seconds} |"
        )
    return lines


def write_metrics(metrics: Mapping[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(metrics, indent=2, sort_keys=False) + "\n")
    return path


def write_report(metrics: Mapping[str, Any], path: Path) -> Path:
    """Render ``report.md`` next to the figures named in ``metrics["figures"]``."""
    corpus, models, findings = metrics["corpus"], metrics["models"], metrics["findings"]
    students = metrics["students"]
    lines = [
        "# tympan demo: the DCASE23 low-complexity story on generated data",
        "",
        f"Run of {metrics['run']['date']} ({'quick' if metrics['run']['quick'] else 'full'} size, "
        f"{metrics['run']['seconds']:.0f} s wall clock, {metrics['run']['cpu_seconds']:.0f} s of CPU time on "
        f"{metrics['run']['threads']} threads). Everything below was "
        "measured in this run; `metrics.json` holds every number.",
        "",
        "## What ran",
        f"1. A generated corpus of {len(corpus['classes'])} acoustic scenes (TAU22 names): {corpus['clips']['train']} "
        f"training, {corpus['clips']['val']} validation and {corpus['clips']['test']} test clips of 1 s at 32 kHz, "
        f"recorded through {len(corpus['seen_devices'])} seen devices ({', '.join(corpus['seen_devices'])}) and, "
        f"in the test split only, {len(corpus['unseen_devices'])} unseen ones ({', '.join(corpus['unseen_devices'])}).",
        f"2. Teachers ({', '.join(metrics['teachers'])}) trained with cross-entropy; their mean logits on the training "
        "split were stored once and read by id during distillation.",
        f"3. Three CP-Mobile students with the same initialisation and schedule: {', '.join(students)}. DIR "
        f"convolves training clips of device a (p 0.6, as the DCASE23 recipe) with {metrics['run']['dir_source']}.",
        "4. Evaluation per device, complexity check, int8 quantisation and ONNX export of the best student.",
        "5. The best student tagged a generated multi-scene recording.",
        "",
        "## Findings",
        _finding(
            "Did KD beat no-KD",
            findings["kd_vs_no_kd"],
            models[students[1]]["accuracy"],
            models[students[0]]["accuracy"],
            "The distilled student is more accurate on the test split",
        ),
        _finding(
            "Did DIR + Freq-MixStyle help on unseen devices",
            findings["device_augmentation_unseen"],
            models[students[2]]["accuracy_unseen"],
            models[students[1]]["accuracy_unseen"],
            "Adding the device augmentations to KD raised accuracy on the unseen devices",
        ),
        _finding(
            "Did the students generalise less to unseen devices than to seen ones",
            findings["seen_vs_unseen"],
            models[students[0]]["accuracy_seen"],
            models[students[0]]["accuracy_unseen"],
            "Without device augmentation the student is better on the seen devices than on the unseen ones",
        ),
        _finding(
            "Did the teachers beat the student trained alone",
            findings["ensemble_vs_student"],
            metrics["ensemble"]["accuracy"],
            models[students[0]]["accuracy"],
            "The teacher ensemble is more accurate than the student it teaches",
        ),
        f"- The teacher ensemble reaches {_percent(metrics['ensemble']['accuracy'])} on the test split "
        f"(seen {_percent(metrics['ensemble']['accuracy_seen'])}, unseen "
        f"{_percent(metrics['ensemble']['accuracy_unseen'])}).",
        f"- Standard errors are those of paired differences: per test clip for two models "
        f"({metrics['corpus']['clips']['test']} clips, {findings['unseen_clips']} on unseen devices), per scene "
        "instance for seen against unseen devices (every test instance is recorded by every device); a difference "
        "counts only beyond two of them.",
        "",
        *_seeds_section(metrics["across_seeds"]),
        "## Models",
        *_model_table(models),
        "",
        "![accuracy per device](per_device_accuracy.png)",
        "",
        "![training curves](training_curves.png)",
        "",
        f"![confusion matrix]({Path(metrics['figures']['confusion']).name})",
        "",
        "## Complexity (DCASE23 limits: ≤ 128,000 parameters, ≤ 30 M MACs per 1 s)",
        "| model | params | MACs (1 s) | within limits |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, entry in metrics["complexity"].items():
        lines.append(
            f"| {name} | {entry['params']:,} | {entry['macs'] / 1e6:.2f} M | {'yes' if entry['ok'] else 'no'} |"
        )
    deploy = metrics["deployment"]
    lines += [
        "",
        "## Quantisation and export of the best student (chosen by validation accuracy)",
        f"Best student: **{deploy['student']}**.",
        "",
    ]
    lines += ["| form | test accuracy | note |", "| --- | ---: | --- |"]
    for form in deploy["forms"]:
        accuracy = "–" if form["accuracy"] is None else _percent(form["accuracy"])
        lines.append(f"| {form['name']} | {accuracy} | {form['note']} |")
    tagging = metrics["tagging"]
    lines += [
        "",
        "## Tagging a multi-scene recording",
        f"{tagging['seconds']:.0f} s generated recording through device `{tagging['device']}`, windows of "
        f"{tagging['window']} s every {tagging['hop']} s; the window's top scene matches the true scene in "
        f"{_percent(tagging['window_accuracy'])} of the windows.",
        "",
        "![timeline](timeline.png)",
        "",
        "| onset (s) | offset (s) | predicted scene | mean score | true scene at its middle |",
        "| ---: | ---: | --- | ---: | --- |",
    ]
    for event in tagging["events"]:
        lines.append(
            f"| {event['onset']:.1f} | {event['offset']:.1f} | {event['label']} | {event['score']:.2f} | "
            f"{event['truth']} |"
        )
    lines += [
        "",
        "## Stage timings",
        "| stage | seconds |",
        "| --- | ---: |",
        *[f"| {stage} | {seconds:.1f} |" for stage, seconds in metrics["timings"].items()],
        "",
        "## What this run does not show",
        "The corpus is synthetic and small, and the models are trained for minutes, so the absolute accuracies say "
        "nothing about TAU22. The run shows that the pipeline works end to end and how its parts compare under the "
        "same budget; see the README for the same pipeline on the real datasets with the official checkpoints.",
        "",
    ]
    path.write_text("\n".join(lines))
    return path
