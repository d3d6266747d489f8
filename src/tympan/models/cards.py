"""Model cards: the facts a user needs to run a preset correctly, generated from the zoo registry.

Every field comes from a :class:`~tympan.models.registry.ModelEntry`, its label set and its frontend; nothing is
typed twice. Parameters and MACs are *measured* on the built network (random weights) for one clip of the
preset's training length, under the ``"full"`` rule of :mod:`tympan.eval.complexity` and, where the published
figure follows another rule (DCASE presets: ``"dcase"``), under that rule too, so the card shows the published
figure next to a count anyone can reproduce. Measuring every preset takes minutes (the PaSSTs are 86 M
parameters), so the counts are cached in ``zoo/complexity.json`` next to the entries, keyed by a fingerprint of
what determines them; an entry whose fingerprint changed, or a new preset, is measured on first use.
Regenerate the file with ``python -m tympan.models.cards --refresh``.

The docs site renders one page per card (``docs/hooks.py``); ``python -m tympan.models.cards NAME`` prints one.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..audio.frontend import LOG_OFFSET, NORM_SCALE, NORM_SHIFT, PREEMPHASIS
from ..labels import get_labels, is_multilabel
from .registry import ModelEntry, get_preset, list_models

__all__ = [
    "COMPLEXITY_FILE",
    "FULL_RULE",
    "Measurement",
    "ModelCard",
    "build_card",
    "build_cards",
    "complexity_table",
    "input_shape",
    "measure_preset",
    "refresh_complexity",
    "render_card",
    "render_table",
]

logger = logging.getLogger(__name__)

COMPLEXITY_FILE = Path(__file__).with_name("zoo") / "complexity.json"
FULL_RULE = "full"
# Bump when the counting code changes in a way that changes the cached figures.
_COUNTER_VERSION = 1


@dataclass(frozen=True)
class Measurement:
    """Parameters and MACs counted on the built network for one clip (``input_shape``, log-mel)."""

    params: int
    macs: Mapping[str, int]
    input_shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelCard:
    """One preset's card: every value a plain string (or list) ready to show; none may be empty.

    Attributes:
        name: the preset name.
        family: the model family.
        architecture: registered architecture and the constructor arguments of the preset.
        description: what the weights are (data, recipe, origin).
        parameters: counted parameters, with the published figure where one exists.
        macs: counted MACs per clip under each rule, the input length and shape, and the published figure.
        score: the published score, or a statement that none is published.
        training_data: what the weights were trained on.
        frontend: the mel frontend settings as (setting, value) pairs.
        multi_label: whether classes are scored independently (sigmoid) or exclusively (softmax).
        label_set: name and size of the label set.
        classes: the class names, index ``i`` being logit ``i``.
        weights: URL of the official checkpoint, or a statement that none is published.
        sha256: the checkpoint's SHA-256, or "not published".
        license: licence of the weights.
        paper: the paper behind the weights or the family.
        source: the reference code the implementation follows.
        usage: a three-line Python snippet.
        sort_keys: numbers for sorting tables: params, MACs per clip (full rule), clip seconds, score.
    """

    name: str
    family: str
    architecture: str
    description: str
    parameters: str
    macs: str
    score: str
    training_data: str
    frontend: tuple[tuple[str, str], ...]
    multi_label: str
    label_set: str
    classes: tuple[str, ...]
    weights: str
    sha256: str
    license: str
    paper: str
    source: str
    usage: str
    sort_keys: Mapping[str, float | None]

    def missing(self) -> list[str]:
        """Names of the fields that are empty (a complete card has none)."""
        empty = [f.name for f in fields(self) if f.name != "sort_keys" and not getattr(self, f.name)]
        return empty + [f"frontend.{key}" for key, value in self.frontend if not value]


def input_shape(entry: ModelEntry) -> tuple[int, int, int, int]:
    """The log-mel input ``(1, 1, mels, frames)`` of one clip of ``entry.clip_seconds``."""
    frontend = entry.frontend
    samples = round(entry.clip_seconds * frontend.sample_rate)
    return (1, 1, frontend.n_mels, frontend.num_frames(samples))


def _rules(entry: ModelEntry) -> tuple[str, ...]:
    return (FULL_RULE,) if entry.macs_rule == FULL_RULE else (FULL_RULE, entry.macs_rule)


def _fingerprint(entry: ModelEntry) -> str:
    """Hash of everything the counts depend on: architecture, arguments, input shape, rules, counter version."""
    kwargs = sorted((key, repr(value)) for key, value in entry.model_kwargs.items())
    facts = [_COUNTER_VERSION, entry.arch, kwargs, input_shape(entry), _rules(entry)]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]


def measure_preset(entry: ModelEntry) -> Measurement:
    """Count parameters and MACs of ``entry`` (random weights) for one clip, under each rule it needs."""
    from ..eval.complexity import measure
    from .registry import create

    model = create(entry.name)
    shape = input_shape(entry)
    counts = {rule: measure(model, shape, rule=rule) for rule in _rules(entry)}
    return Measurement(counts[FULL_RULE].params, {rule: c.macs for rule, c in counts.items()}, shape)


def _read_cache(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def complexity_table(names: Iterable[str] | None = None, *, path: Path = COMPLEXITY_FILE) -> dict[str, Measurement]:
    """Measurements of the presets ``names`` (default: all): from the cache where it is current, else counted."""
    cache = _read_cache(path)
    table = {}
    for name in list_models() if names is None else names:
        entry = get_preset(name)
        cached = cache.get(name, {})
        if cached.get("fingerprint") == _fingerprint(entry):
            table[name] = Measurement(cached["params"], cached["macs"], tuple(cached["input_shape"]))
        else:
            logger.warning("counting the complexity of %s (not in %s; refresh it to skip this)", name, path.name)
            table[name] = measure_preset(entry)
    return table


def refresh_complexity(path: Path = COMPLEXITY_FILE) -> Path:
    """Rewrite the cache for every preset (entries still current are kept, the others counted)."""
    table = complexity_table(path=path)
    data = {
        name: {
            "fingerprint": _fingerprint(get_preset(name)),
            "params": m.params,
            "macs": dict(m.macs),
            "input_shape": list(m.input_shape),
        }
        for name, m in sorted(table.items())
    }
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def _count(value: float) -> str:
    """``541,078,208 (541.1 M)``: exact, and readable."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= scale:
            return f"{value:,.0f} ({value / scale:.1f} {unit})"
    return f"{value:,.0f}"


def _score(entry: ModelEntry) -> str:
    if not entry.score:
        return "not published (the sources state none)"
    return ", ".join(f"{metric} {value:.4g}" for metric, value in entry.score.items())


def _macs(entry: ModelEntry, measured: Measurement) -> str:
    _, _, mels, frames = measured.input_shape
    counted = "; ".join(f"{_count(measured.macs[rule])} under the `{rule}` rule" for rule in _rules(entry))
    text = f"{counted}, for one {entry.clip_seconds:g} s clip ({mels} mels × {frames} frames)"
    if entry.macs is not None:
        text += f"; published: {_count(entry.macs)} (`{entry.macs_rule}` rule)"
    return text


def _frontend(entry: ModelEntry) -> tuple[tuple[str, str], ...]:
    f = entry.frontend
    rate = f.sample_rate
    stft = f.stft_sample_rate  # the rate the STFT runs at (after any resampling inside the model)
    kaldi = f.kind == "kaldi"
    rate_text = f"{rate} Hz (any input is resampled to it)"
    if f.resample_to is not None:
        rate_text += f"; the model resamples to {f.resample_to} Hz inside (sinc filter)"
    hann = "symmetric" if kaldi else "periodic"
    norm = (
        f"pre-emphasis {PREEMPHASIS}, log(mel + {LOG_OFFSET:g}), (x + {NORM_SHIFT}) / {NORM_SCALE}"
        if kaldi
        else f"log(mel + {LOG_OFFSET:g}), no pre-emphasis, no scaling (torchaudio MelSpectrogram)"
    )
    return (
        ("sample rate", rate_text),
        ("window", f"{f.win_length} samples ({1000 * f.win_length / stft:g} ms), {hann} Hann, FFT {f.n_fft}"),
        ("hop", f"{f.hop_length} samples ({1000 * f.hop_length / stft:g} ms, {stft / f.hop_length:g} frames/s)"),
        ("mel bands", f"{f.n_mels} ({'Kaldi' if kaldi else 'HTK'} mel scale)"),
        ("fmin / fmax", f"{f.fmin:g} Hz / {f.effective_fmax:g} Hz"),
        ("normalisation", norm),
        ("training masks", f"frequency up to {f.freqm} bands, time up to {f.timem} frames (training only)"),
        ("training jitter", f"fmin up to {f.fmin_aug_range} Hz, fmax up to {f.fmax_aug_range} Hz (training only)"),
    )


def _usage(entry: ModelEntry) -> str:
    example = "scene.wav" if entry.clip_seconds <= 1 else "clip.wav"
    load = f'tympan.load("{entry.name}")'
    if entry.checkpoint_url is None:
        load = f'tympan.load("{entry.name}", checkpoint="model.ckpt")  # no official weights: your own'
    return f'import tympan\npipeline = {load}\npipeline.tag("{example}", top_k=3)'


def build_card(name: str, measured: Measurement | None = None) -> ModelCard:
    """The card of preset ``name`` (``measured`` from :func:`complexity_table`, counted when not given)."""
    entry = get_preset(name)
    measured = measured or complexity_table([name])[name]
    classes = tuple(get_labels(entry.labels))
    published = "" if entry.num_params in (None, measured.params) else f"; published: {entry.num_params:,}"
    multi = is_multilabel(entry.labels)
    kwargs = ", ".join(f"{k}={v!r}" for k, v in entry.model_kwargs.items())
    return ModelCard(
        name=entry.name,
        family=entry.family,
        architecture=f"`{entry.arch}`({kwargs})",
        description=entry.description,
        parameters=f"{_count(measured.params)}{published}",
        macs=_macs(entry, measured),
        score=_score(entry),
        training_data=entry.training_data or "",
        frontend=_frontend(entry),
        multi_label="yes: one sigmoid per class" if multi else "no: one softmax over the classes",
        label_set=f"`{entry.labels}`, {len(classes)} classes",
        classes=classes,
        weights=entry.checkpoint_url or "none published",
        sha256=entry.checkpoint_sha256 or "not published (the download is not hash-checked)",
        license=entry.license or "",
        paper=entry.paper or "",
        source=entry.source or "",
        usage=_usage(entry),
        sort_keys={
            "params": measured.params,
            "macs": measured.macs[FULL_RULE],
            "clip_seconds": entry.clip_seconds,
            "score": next(iter(entry.score.values()), None),
        },
    )


def build_cards(names: Sequence[str] | None = None, *, path: Path = COMPLEXITY_FILE) -> list[ModelCard]:
    """Cards of the presets ``names`` (default: every preset), in name order."""
    table = complexity_table(names, path=path)
    return [build_card(name, table[name]) for name in sorted(table)]


_URL = re.compile(r"https?://\S+[^\s.,;)]")


def _cell(text: str) -> str:
    """A Markdown table cell: pipes escaped, URLs as links."""
    return _URL.sub(lambda m: f"<{m.group(0)}>", text.replace("|", "\\|"))


def render_card(card: ModelCard) -> str:
    """The card as a Markdown page (Material for MkDocs: admonitions and collapsible blocks)."""
    facts = (
        ("Family", card.family),
        ("Architecture", card.architecture),
        ("Parameters", card.parameters),
        ("MACs", card.macs),
        ("Published score", card.score),
        ("Training data", card.training_data),
        ("Multi-label", card.multi_label),
        ("Label set", card.label_set),
        ("Weights", card.weights),
        ("SHA-256", card.sha256),
        ("Licence", card.license),
        ("Paper", card.paper),
        ("Reference code", card.source),
    )
    rows = [f"| {key} | {_cell(value)} |" for key, value in facts]
    frontend = [f"| {key} | {_cell(value)} |" for key, value in card.frontend]
    classes = "\n".join(f"<tr><td>{i}</td><td>{html.escape(name)}</td></tr>" for i, name in enumerate(card.classes))
    lines = [
        f"# {card.name}",
        "",
        "<!-- generated by tympan.models.cards from the zoo registry: edit the zoo entry, not this page -->",
        "",
        _cell(card.description),
        "",
        "| | |",
        "| --- | --- |",
        *rows,
        "",
        "## Usage",
        "",
        "```python",
        card.usage,
        "```",
        "",
        "## Frontend",
        "",
        "| setting | value |",
        "| --- | --- |",
        *frontend,
        "",
        "## Classes",
        "",
        f'??? note "{len(card.classes)} classes, in logit order"',
        "",
        f"    <table><tr><th>index</th><th>class</th></tr>{classes}</table>",
        "",
    ]
    return "\n".join(lines)


def _sort_cell(value: float | None, text: str) -> str:
    key = "" if value is None else f' data-sort="{value:.12g}"'
    return f"<td{key}>{html.escape(text)}</td>"


def render_table(cards: Sequence[ModelCard], link: str = "{name}.md") -> str:
    """An HTML table of every card (name, family, labels, parameters, MACs, score), sortable by column."""
    head = ("Model", "Family", "Labels", "Parameters", "MACs per clip", "Clip", "GMACs per second", "Score", "Weights")
    rows = []
    for card in cards:
        keys = card.sort_keys
        macs, seconds, params = keys["macs"] or 0, keys["clip_seconds"] or 1, keys["params"] or 0
        score = card.score if keys["score"] is not None else "—"
        cells = [
            f'<td><a href="{link.format(name=card.name)}"><code>{card.name}</code></a></td>',
            f"<td>{html.escape(card.family)}</td>",
            f"<td>{html.escape(card.label_set.replace('`', ''))}</td>",
            _sort_cell(params, f"{params / 1e6:.2f} M"),
            _sort_cell(macs, f"{macs / 1e6:,.1f} M"),
            _sort_cell(seconds, f"{seconds:g} s"),
            _sort_cell(macs / seconds / 1e9, f"{macs / seconds / 1e9:.3f}"),
            _sort_cell(keys["score"], score),
            f"<td>{'yes' if card.weights.startswith('http') else 'no'}</td>",
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "\n".join(rows)
    return f'<table class="sortable">\n<thead><tr>{header}</tr></thead>\n<tbody>\n{body}\n</tbody></table>\n'



def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tympan.models.cards [--refresh] [NAME ...]``: print cards, or rewrite the complexity cache."""
    parser = argparse.ArgumentParser(prog="python -m tympan.models.cards", description=main.__doc__)
    parser.add_argument("names", nargs="*", help="presets whose cards to print (Markdown)")
    parser.add_argument("--refresh", action="store_true", help=f"rewrite {COMPLEXITY_FILE.name} for every preset")
    args = parser.parse_args(argv)
    if args.refresh:
        print(f"wrote {refresh_complexity()}")
    for card in build_cards(args.names) if args.names else []:
        print(render_card(card))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
