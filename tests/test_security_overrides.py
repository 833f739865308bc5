"""What a retrain run may change through `--set` (issue #21, items 1 and 4), without a Prefect server:
the CLI refuses before one starts, and params.yaml stays byte-identical. The same check refused through
the Prefect API is tests/test_security_prefect.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from flows.overrides import is_settable
from flows.retrain import apply_overrides
from flows.summary import RunSummary
from models.registry import Registry
from models.registry.mlflow_mirror import mirror
from tasks.common.errors import RadflowError
from tests.defaults import params_under, write_params

SECRET = "s3cr3t-pw"
REFUSED = [
    "retrain.notify_command=touch /tmp/x",
    f"retrain.notify_webhook=https://user:{SECRET}@hooks.example/x",
    f"pacs.url=https://user:{SECRET}@pacs.example/dicom-web",
    "pacs.url=dimse://X@10.0.0.9:104",
    "paths.registry=/srv/elsewhere",
    f"registry.mlflow_uri=http://user:{SECRET}@mlflow.example:5000",
    "ingest.source=/etc",
    "ingest.labels=other.csv",
    "ingest.dask_address=tcp://10.0.0.5:8786",
    "ingest.salt_env=HOME",
    "ingest.burned_in=keep",
    "train.rendezvous=10.0.0.5:29500",
    "train.imagenet_path=/tmp/evil.pth",
    "train={epochs: 1}",  # a whole section at once
]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repository's params.yaml with every path under tmp_path, as the working directory."""
    write_params(tmp_path, params_under(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in output, output
    return lines[0]


def test_a_run_may_set_training_and_evaluation_knobs_only() -> None:
    assert all(is_settable(key) for key in ("seed", "train.epochs", "evaluate.bootstrap_samples"))
    assert all(is_settable(key) for key in ("promote.min_roc_auc", "preprocess.image_size", "ingest.slices"))
    closed = ("retrain.retries", "pacs.folder", "paths.model", "registry.mlflow_uri", "ingest.workers")
    assert not any(is_settable(key) for key in (*closed, "train", "train.epochs.x", "predict.ood_margin"))


@pytest.mark.parametrize("override", REFUSED)
def test_retrain_refuses_what_a_run_may_not_set_before_anything_is_written(
    project: Path, override: str
) -> None:
    before = (project / "params.yaml").read_bytes()
    result = CliRunner().invoke(app, ["retrain", "--set", "train.epochs=3", "--set", override])
    line = one_line(result.output)
    assert result.exit_code == 1 and "a run may not change it" in line
    assert SECRET not in result.output  # the value is never repeated
    assert (project / "params.yaml").read_bytes() == before
    with pytest.raises(RadflowError, match="a run may not change it"):  # the flow's own path
        apply_overrides(project, ["train.epochs=3", override])
    assert (project / "params.yaml").read_bytes() == before


@pytest.mark.parametrize(("section", "key"), [("retrain", "notify_webhook"), ("registry", "mlflow_uri")])
def test_a_url_with_credentials_in_params_yaml_is_refused_without_repeating_them(
    project: Path, section: str, key: str
) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params[section][key] = f"https://radflow:{SECRET}@host.example/x"
    write_params(project, params)
    before = (project / "params.yaml").read_bytes()
    result = CliRunner().invoke(app, ["retrain", "--set", "train.epochs=3"])
    line = one_line(result.output)
    assert (
        result.exit_code == 1 and f"{section}.{key}: https://***@host.example/x carries credentials" in line
    )
    assert SECRET not in result.output and (project / "params.yaml").read_bytes() == before


def test_every_section_is_checked_before_an_override_is_written(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["predict"]["ood_margin"] = -1  # a section the retrain flow itself never reads
    write_params(project, params)
    before = (project / "params.yaml").read_bytes()
    with pytest.raises(RadflowError, match=r"predict\.ood_margin"):
        apply_overrides(project, ["train.epochs=3"])
    assert (project / "params.yaml").read_bytes() == before


def test_a_webhook_is_http_or_https(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["retrain"]["notify_webhook"] = "file:///etc/passwd"
    write_params(project, params)
    result = CliRunner().invoke(app, ["retrain"])
    assert result.exit_code == 1 and "is not a https or http URL" in one_line(result.output)


def test_mlflow_credentials_never_cross_the_network_unencrypted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    with pytest.raises(RadflowError, match=r"unencrypted to mlflow\.example; use https://"):
        mirror(Registry(tmp_path / "registry"), "http://mlflow.example:5000", "radflow-classifier")


def test_the_summary_advises_committing_params_yaml_only_when_the_run_changed_it() -> None:
    unchanged = RunSummary(lock_changed=True, ran=["train"]).markdown()
    assert "`git add dvc.lock && git commit`" in unchanged and "params.yaml" not in unchanged
    changed = RunSummary(lock_changed=True, ran=["train"], params_changed=True).markdown()
    assert "`git add dvc.lock params.yaml && git commit`" in changed
