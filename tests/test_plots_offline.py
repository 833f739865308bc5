"""`dvc plots show` works offline: the repository's DVC config points at a page with Vega inlined."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.defaults import REPO_ROOT
from tests.project import run


def test_plots_page_loads_no_script_from_the_network(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        assert run(command, project).returncode == 0
    shutil.copy(REPO_ROOT / ".dvc" / "config", project / ".dvc" / "config")
    shutil.copytree(REPO_ROOT / ".dvc" / "plots", project / ".dvc" / "plots")
    (project / "curve.csv").write_text("step,train_loss\n0,0.69\n1,0.41\n2,0.22\n")
    result = run(["dvc", "plots", "show", "curve.csv", "-o", "page"], project)
    assert result.returncode == 0, result.stderr
    page = (project / "page" / "index.html").read_text()
    assert not re.search(r"<script[^>]+src=", page), "the page loads a script from elsewhere"
    assert "vegaEmbed('#" in page and '"train_loss"' in page  # the plot is embedded with its data
    for library in ("vega@5.20.2", "vega-lite@5.2.0", "vega-embed@6.18.2"):
        assert f"<!-- {library} " in page, f"{library} is not inlined"
