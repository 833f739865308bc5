"""Writing a study's results into its folder (study.folder/NAME): study.json (machine-readable),
table.md (for papers), study.html (the page, with both pictures), differences.csv and roc/*.csv with a
dvc.yaml declaring them and the PNGs as DVC plots (`dvc plots show` finds it)."""

from __future__ import annotations

import html
from pathlib import Path

import yaml

from flows.study.collect import StudyData
from flows.study.compare import Comparison, VariantRow
from flows.study.figures import differences_frame, plot_forest, plot_rocs, roc_points
from tasks.common.atomic import atomic_path, write_json, write_text

HEADER = (
    "variant",
    "test {metric} (95% CI)",
    "seed SD",
    "difference vs {reference} (CI)",
    "verdict",
    "train s/image",
    "inference s/image",
    "parameters",
    "peak memory MB",
)


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _interval(low: float | None, high: float | None) -> str:
    return f"{_number(low)} to {_number(high)}"


def table_rows(comparison: Comparison) -> list[list[str]]:
    """The table's cells, one list per variant (the reference first in params order)."""
    rows = []
    for row in comparison.rows:
        score, difference, cost = row.score, row.difference, row.cost
        parameters = cost["parameters"]
        rows.append(
            [
                row.variant,
                f"{score.mean:.3f} ({_interval(score.low, score.high)})",
                "n/a (1 seed)" if score.seed_sd is None else f"{score.seed_sd:.3f}",
                "reference"
                if difference is None
                else f"{difference.estimate:+.3f} ({_interval(difference.low, difference.high)})",
                "" if difference is None else difference.verdict,
                _number(cost["train_seconds_per_image"], 4),
                _number(cost["inference_seconds_per_image"], 5),
                "n/a" if parameters is None else f"{parameters / 1e6:.2f} M",
                _number(cost["peak_memory_mb"], 0),
            ]
        )
    return rows


def headers(comparison: Comparison) -> list[str]:
    return [cell.format(metric=comparison.metric, reference=comparison.reference) for cell in HEADER]


def markdown_table(comparison: Comparison) -> str:
    """The study as a Markdown table with its caption (what the intervals are, the correction)."""
    lines = ["| " + " | ".join(headers(comparison)) + " |", "|" + " --- |" * len(HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(comparison)]
    return "\n".join([*lines, "", caption(comparison), ""])


def caption(comparison: Comparison) -> str:
    """What the numbers are, in one paragraph."""
    return (
        f"Test {comparison.metric} averaged over seeds {comparison.seeds} (train.seed; the split is the same "
        f"for every run: {comparison.n_test_images} test images of {comparison.n_test_patients} patients). "
        f"Per-variant intervals: 95% patient bootstrap ({comparison.bootstrap_samples} resamples). "
        f"Differences: paired (the same patient resamples for both, seeds resampled too); "
        f"{comparison.correction}. Seed SD: standard deviation of the per-seed {comparison.metric}."
    )


def sentence(row: VariantRow, comparison: Comparison) -> str:
    """The verdict in words."""
    difference = row.difference
    if difference is None:
        return f"{row.variant} is the reference."
    relation = {
        "indistinguishable": f"indistinguishable from {comparison.reference} (the interval includes zero)",
        "better": f"better than {comparison.reference}",
        "worse": f"worse than {comparison.reference}",
    }[difference.verdict]
    return (
        f"{row.variant} is {relation}: difference {difference.estimate:+.3f}, "
        f"{difference.level:.2%} interval {_interval(difference.low, difference.high)}."
    )


def page(name: str, comparison: Comparison) -> str:
    """The study's HTML page: the words first, the table, then the forest plot and the ROC curves."""
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in headers(comparison))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"
        for cells in table_rows(comparison)
    )
    words = "".join(f"<li>{html.escape(sentence(row, comparison))}</li>" for row in comparison.rows)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>radflow study {html.escape(name)}</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:right}}td:first-child{{text-align:left}}</style>
</head><body>
<h1>Study {html.escape(name)}</h1>
<ul>{words}</ul>
<table><tr>{head}</tr>{body}</table>
<p>{html.escape(caption(comparison))}</p>
<h2>Paired differences</h2><img src="forest.png" alt="forest plot of the paired differences">
<h2>ROC curves</h2><img src="roc.png" alt="ROC curves of every variant">
<p>Every run is a DVC experiment (<code>dvc exp show</code>); <code>dvc exp apply NAME</code> restores one.
A study promotes nothing: register a run on purpose with <code>radflow registry register</code>.</p>
</body></html>
"""


def plots_yaml(name: str, variants: list[str]) -> dict:
    """The folder's own dvc.yaml: `dvc plots show` draws the ROC curves of every variant on one plot,
    the differences, and the two PNGs."""
    return {
        "plots": [
            {f"{name}: ROC of every variant": {"x": "fpr", "y": {f"roc/{v}.csv": "tpr" for v in variants}}},
            {"differences.csv": {"template": "bar_horizontal", "x": "difference", "y": "variant"}},
            "forest.png",
            "roc.png",
        ]
    }


def write_study(
    folder: Path, name: str, comparison: Comparison, data: StudyData, experiments: dict[str, str]
) -> None:
    """Every output of one study into `folder`, each file atomically; `experiments`: name -> commit."""
    variants = [row.variant for row in comparison.rows]
    folder.mkdir(parents=True, exist_ok=True)
    record = {"study": name, "experiments": experiments, "classes": data.classes} | comparison.to_dict()
    write_json(folder / "study.json", record)
    write_text(folder / "table.md", markdown_table(comparison))
    plot_forest(folder / "forest.png", comparison)
    plot_rocs(folder / "roc.png", data, variants)
    with atomic_path(folder / "differences.csv") as tmp:
        differences_frame(comparison).to_csv(tmp, index=False)
    for variant in variants:
        (folder / "roc").mkdir(exist_ok=True)
        with atomic_path(folder / "roc" / f"{variant}.csv") as tmp:
            roc_points(data, variant).to_csv(tmp, index=False)
    write_text(folder / "dvc.yaml", yaml.safe_dump(plots_yaml(name, variants), sort_keys=False))
    write_text(folder / "study.html", page(name, comparison))
