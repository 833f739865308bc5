"""Writes what evaluate and promote would: metrics, the HTML report, the promotion decision.

A stage command of the tiny pipeline in tests/script_project.py. A test that needs a given evaluation
verdict puts it in `evaluation.json` (its `headline` merged into metrics.json, its `detail` written to
metrics_detail.json), as the real evaluate stage would have recorded it."""

import json
import pathlib

n = int(pathlib.Path("out/gate.txt").read_text())
ev = pathlib.Path("out/evaluation")
(ev / "report").mkdir(parents=True, exist_ok=True)
given = pathlib.Path("evaluation.json")
record = json.loads(given.read_text()) if given.exists() else {}
headline = {"roc_auc": n / 100, "accuracy": 0.5, **record.get("headline", {})}
(ev / "metrics.json").write_text(json.dumps(headline))
if "detail" in record:
    (ev / "metrics_detail.json").write_text(json.dumps(record["detail"]))
(ev / "report" / "report.html").write_text("<html><body>report</body></html>")
pr = pathlib.Path("out/promotion")
pr.mkdir(parents=True, exist_ok=True)
decision = {"promoted": True, "reasons": ["first model"], "version": n, "champion_before": None}
(pr / "promotion.json").write_text(json.dumps(decision))
print("evaluated")
