"""Writes what evaluate and promote would: metrics, the HTML report, the promotion decision.

A stage command of the tiny pipeline in tests/script_project.py."""

import json
import pathlib

n = int(pathlib.Path("out/gate.txt").read_text())
ev = pathlib.Path("out/evaluation")
(ev / "report").mkdir(parents=True, exist_ok=True)
(ev / "metrics.json").write_text(json.dumps({"roc_auc": n / 100, "accuracy": 0.5}))
(ev / "report" / "report.html").write_text("<html><body>report</body></html>")
pr = pathlib.Path("out/promotion")
pr.mkdir(parents=True, exist_ok=True)
decision = {"promoted": True, "reasons": ["first model"], "version": n, "champion_before": None}
(pr / "promotion.json").write_text(json.dumps(decision))
print("evaluated")
