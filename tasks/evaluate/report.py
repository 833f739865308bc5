"""The model card (Markdown) and the self-contained HTML report, rendered from one list of sections.

Both show aggregate numbers and pseudonymised ids only.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.common.metrics import HEADLINE_METRICS
from tasks.common.operating import probability_of
from tasks.common.scoring import TensorStore

if TYPE_CHECKING:
    from tasks.evaluate.evaluation import Evaluation
    from tasks.evaluate.params import EvaluateParams

LIMITATIONS = [
    "Research prototype: not a medical device and not validated for clinical decisions.",
    "Evaluated on one held-out test split of the training data source; performance on other scanners, "
    "sites or populations is unknown until measured there.",
    "Probabilities may be miscalibrated (see the ECE and reliability curve); the operating threshold was "
    "chosen on the validation split and should be re-chosen for a new population.",
    "Subgroup results on small groups have wide uncertainty; groups below the size floor show counts only.",
    "Grad-CAM maps are coarse and show where the network looked, not why; they are not a localisation.",
]
WARNING = "Warning: patients not recognised"  # the report shows this section above everything else


@dataclass
class Section:
    """A titled block: paragraphs, then an optional table (header + rows of cells); `alarm` sections are
    rendered first and loudly."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    alarm: bool = False


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _interval(metrics: dict[str, Any], name: str) -> str:
    low, high = metrics.get("ci", {}).get(name, [None, None])
    return f"{_fmt(low)}-{_fmt(high)}"


def headline_text(metrics: dict[str, Any]) -> str:
    """One line a person reads first: ROC-AUC with its interval, the operating point, the baseline."""
    return (
        f"test ROC-AUC {_fmt(metrics['roc_auc'])} (95% CI {_interval(metrics, 'roc_auc')}); "
        f"sensitivity {_fmt(metrics['sensitivity'])}, specificity {_fmt(metrics['specificity'])} at "
        f"threshold {_fmt(metrics['threshold'])} (abnormal log-odds); simple baseline ROC-AUC "
        f"{_fmt(metrics['baseline_roc_auc'])} (95% CI {_interval(metrics, 'baseline_roc_auc')})"
    )


def warning_section(warnings: list[str], learned: bool) -> list[Section]:
    """The findings nobody may miss, as the first section (none when there is nothing to say)."""
    if not warnings:
        return []
    title = "WARNING: the model did not learn" if not learned else "WARNING: read these numbers with care"
    return [Section(title, list(warnings), alarm=True)]


def card_sections(
    evaluation: Evaluation, *, store: TensorStore, config: dict, settings: EvaluateParams
) -> list[Section]:
    """The model card's content, in reading order."""
    metrics = evaluation.metrics
    return [
        *warning_section(evaluation.findings.warnings, evaluation.findings.learning.learned),
        intended_use(evaluation.classes),
        operating_point(evaluation, settings),
        against_baseline(metrics),
        training_record(metrics.get("training", {})),
        data_summary(store),
        training_configuration(config),
        held_out_metrics(metrics, settings),
        per_class(metrics),
        subgroups(metrics, settings),
        Section("Known limitations", [f"- {item}" for item in LIMITATIONS]),
    ]


def intended_use(classes: list[str]) -> Section:
    return Section(
        "Intended use",
        [
            f"Classifies 2D radiographs into {', '.join(classes)} to support research on "
            "triage workflows. Not for unsupervised clinical use.",
        ],
    )


def operating_point(evaluation: Evaluation, settings: EvaluateParams) -> Section:
    """How a score becomes a decision: the abnormal log-odds, the threshold and how it was chosen."""
    negative = evaluation.classes[evaluation.negative_index]
    threshold_rule = (
        "Youden's J (sensitivity + specificity - 1) maximised"
        if settings.threshold_method == "youden"
        else f"the highest threshold reaching sensitivity {settings.target_sensitivity:.2f}"
    )
    return Section(
        "Operating point",
        [
            f"Sensitivity and specificity treat any class other than '{negative}' as abnormal, scored "
            f"by the abnormal log-odds log(p(abnormal) / p({negative})), computed from the logits at "
            f"full precision. An image is abnormal when its score is at least the threshold "
            f"{evaluation.operating.threshold:.6g} (p(abnormal) >= "
            f"{probability_of(evaluation.operating.threshold):.6g}), chosen on the validation split "
            f"({threshold_rule}) and applied unchanged to the test split and by `radflow predict`. "
            "The operating point is a point of the ROC curve drawn from the same scores.",
        ],
    )


def against_baseline(metrics: dict[str, Any]) -> Section:
    validation = metrics["validation"]
    return Section(
        "Model against the simple baseline",
        [
            "The baseline is a logistic regression on intensity and texture features of the same "
            "preprocessed images, fitted on the train split; a network that does not beat it has "
            "not learned more than simple image statistics.",
        ],
        ["split", "model ROC-AUC", "95% CI", "baseline ROC-AUC", "95% CI"],
        [
            [
                "test",
                _fmt(metrics["roc_auc"]),
                _interval(metrics, "roc_auc"),
                _fmt(metrics["baseline_roc_auc"]),
                _interval(metrics, "baseline_roc_auc"),
            ],
            ["validation", _fmt(validation["roc_auc"]), "", _fmt(validation["baseline_roc_auc"]), ""],
        ],
    )


def training_record(training: dict[str, Any]) -> Section:
    return Section(
        "Training record",
        ["What the train stage recorded, used to judge whether the network fitted its training split."],
        ["item", "value"],
        [[key, _fmt(value)] for key, value in training.items()],
    )


def data_summary(store: TensorStore) -> Section:
    """Images per class and split, and where the split came from."""
    counts = pd.crosstab(store.index["label"], store.index["split"]).reindex(columns=["train", "val", "test"])
    counts = counts.fillna(0).astype(int)
    return Section(
        "Data summary",
        [
            "Images per class and split (splits are made by patient where patient ids are known, so "
            "no patient is in two splits; see the warnings above when they are not; split from "
            f"{store.splits.get('split_source', 'radflow, by patient')}).",
            *(f"Note: {note}." for note in store.splits.get("split_notes", [])),
        ],
        ["class", "train", "val", "test"],
        [[str(label), *map(str, row)] for label, row in counts.iterrows()],
    )


def training_configuration(config: dict) -> Section:
    return Section(
        "Training configuration",
        [f"Image size {config['image_size']} px; seed {config.get('seed', 'n/a')}."],
        ["setting", "value"],
        [[key, json.dumps(value)] for key, value in {**config["architecture"], **config["train"]}.items()],
    )


def held_out_metrics(metrics: dict[str, Any], settings: EvaluateParams) -> Section:
    return Section(
        "Test metrics",
        [
            f"{metrics['n_test_images']} images from {metrics['n_test_patients']} patients; "
            f"95% intervals from {settings.bootstrap_samples} bootstrap resamples of patients."
        ],
        ["metric", "value", "95% CI"],
        [[name, _fmt(metrics[name]), _interval(metrics, name)] for name in HEADLINE_METRICS],
    )


def per_class(metrics: dict[str, Any]) -> Section:
    return Section(
        "Per-class metrics",
        [],
        ["class", "precision", "recall", "F1", "support"],
        [
            [name, *(_fmt(m[key]) for key in ("precision", "recall", "f1", "support"))]
            for name, m in metrics["per_class"].items()
        ],
    )


def subgroups(metrics: dict[str, Any], settings: EvaluateParams) -> Section:
    """Per-attribute results; groups under the size floor carry their count only."""
    rows = [
        [
            column,
            group,
            _fmt(m["n"]),
            *(_fmt(m.get(key)) for key in ("roc_auc", "sensitivity", "specificity")),
        ]
        for column, groups in metrics["subgroups"].items()
        for group, m in groups.items()
    ]
    return Section(
        "Subgroups",
        [f"Groups with fewer than {settings.subgroup_min_images} test images show their count only."],
        ["attribute", "group", "n", "ROC-AUC", "sensitivity", "specificity"],
        rows,
    )


def model_card(sections: list[Section]) -> str:
    """Markdown rendering of the sections."""
    lines = ["# Model card: radflow candidate", ""]
    for section in sections:
        paragraphs = (
            [f"> - **{text}**" for text in section.paragraphs] if section.alarm else section.paragraphs
        )
        lines += [f"## {section.title}", "", *paragraphs, ""]
        if section.header:
            lines.append("| " + " | ".join(section.header) + " |")
            lines.append("|" + "---|" * len(section.header))
            lines += ["| " + " | ".join(row) + " |" for row in section.rows]
            lines.append("")
    return "\n".join(lines)


def _embed(path: Path) -> str:
    """An <img> whose PNG travels inside the HTML, so the report is one self-contained file."""
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(path.stem)}">'


def _html_section(section: Section) -> str:
    if section.alarm:
        items = "".join(f"<li>{html.escape(text)}</li>" for text in section.paragraphs)
        return f'<div class="alarm"><h2>{html.escape(section.title)}</h2><ul>{items}</ul></div>'
    parts = [f"<h2>{html.escape(section.title)}</h2>"]
    parts += [f"<p>{html.escape(text)}</p>" for text in section.paragraphs]
    if section.header:
        head = "".join(f"<th>{html.escape(cell)}</th>" for cell in section.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
            for row in section.rows
        )
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    return "\n".join(parts)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; } td, th { border: 1px solid #ccc; padding: 3px 8px; }
th { background: #f0f3f7; } .plots img { width: 48%; margin: 0.5%; }
.cams figure { display: inline-block; width: 23%; margin: 0.5%; vertical-align: top; }
.cams img { width: 100%; } figcaption { font-size: 0.8em; text-align: center; }
.headline { font-size: 1.3em; }
.alarm { border: 3px solid #c00; background: #fff0f0; padding: 0.2em 1em; margin: 1em 0; }
.alarm h2 { color: #c00; }
"""


def report_html(
    sections: list[Section], *, evaluation: Evaluation, folder: Path, gradcams: list[dict[str, str]]
) -> str:
    """One HTML file: headline numbers, plots, Grad-CAM overlays and the model card's sections."""
    plots_html = "".join(_embed(folder / f"{name}.png") for name in ("roc", "confusion", "pr", "calibration"))
    cams = (
        "".join(
            f"<figure>{_embed(folder / 'gradcam' / cam['file'])}"
            f"<figcaption>{html.escape(cam['kind'])}</figcaption></figure>"
            for cam in gradcams
        )
        or "<p>No test cases to show.</p>"
    )
    alarms = "\n".join(_html_section(section) for section in sections if section.alarm)
    body = "\n".join(_html_section(section) for section in sections if not section.alarm)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>radflow evaluation report</title>
<style>{STYLE}</style></head><body>
<h1>radflow evaluation report</h1>
<p class="headline">{html.escape(headline_text(evaluation.metrics))}</p>
{alarms}
<h2>Plots</h2><div class="plots">{plots_html}</div>
<h2>Grad-CAM: correct and wrong test cases per class</h2><div class="cams">{cams}</div>
{body}
</body></html>
"""
