"""An optional one-way mirror of the registry into MLflow, for teams whose tools look there.

Each registry version becomes an MLflow model version (its files as plain artifacts, no pickle
flavour; tags: radflow version, weights SHA-256, lineage) and the aliases `champion`/`previous` follow
the registry's. radflow's registry and audit log stay the truth: a sync only ever makes MLflow agree
with them, so a failed sync is caught up by the next one (`radflow registry mirror`).
Needs the `radflow[mlflow]` extra (mlflow-skinny); `registry.mlflow_uri` in params.yaml switches it on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from models.registry.dvc_hashes import model_artifact
from models.registry.store import Registry
from tasks.common.errors import RadflowError
from tasks.common.params import parse_section, section
from tasks.common.urls import check_plaintext, check_url

EXPERIMENT = "radflow-registry"  # MLflow experiment holding one run per mirrored version
VERSION_TAG = "radflow.version"
# Where MLflow's client takes HTTP credentials from (never from the URI: params.yaml is committed).
CREDENTIAL_ENVS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


@section("registry")
class RegistryParams:
    """params.yaml `registry` section (see the comments there)."""

    mlflow_uri: Annotated[
        str | None,
        Field(
            pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:",
            description="an MLflow tracking URI (sqlite:///mlflow.db, http://mlflow:5000, ...), or null",
        ),
    ]

    @model_validator(mode="after")
    def _no_credentials(self) -> RegistryParams:
        if self.mlflow_uri is not None:
            instead = f"set {' / '.join(CREDENTIAL_ENVS)} in the environment (MLflow reads them there)"
            check_url("registry.mlflow_uri", self.mlflow_uri, None, instead)
        return self


def _client(uri: str) -> Any:
    check_plaintext("registry.mlflow_uri", uri, any(os.environ.get(name) for name in CREDENTIAL_ENVS))
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise RadflowError(
            f"registry.mlflow_uri is {uri!r} but MLflow is not installed: pip install 'radflow[mlflow]'"
        ) from None
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment(client: Any, uri: str) -> str:
    """The mirror's experiment; with a local sqlite store its artifacts live beside the database file."""
    found = client.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return str(found.experiment_id)
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlflow-artifacts").as_uri()
    return str(client.create_experiment(EXPERIMENT, artifact_location=location))


def _mirrored(client: Any, name: str) -> dict[int, str]:
    """registry version -> MLflow model version, from the tag every mirrored version carries."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="Mirrored one way from the radflow registry")
        return {}
    found = client.search_model_versions(f"name='{name}'")
    return {int(mv.tags[VERSION_TAG]): str(mv.version) for mv in found if VERSION_TAG in mv.tags}


def _version_tags(registry: Registry, version: int) -> dict[str, str]:
    record = registry.show(version)
    lineage = record["lineage"] or {}
    return {
        VERSION_TAG: str(version),
        "radflow.weights_sha256": record["weights_sha256"],
        "radflow.lineage": json.dumps(
            {"git": lineage.get("git"), "packages": lineage.get("packages")}, sort_keys=True
        ),
    }


def _mirror_version(client: Any, experiment: str, registry: Registry, name: str, version: int) -> str:
    """One registry version -> a finished MLflow run with its files, and a model version pointing at them."""
    from mlflow.entities import Metric

    folder = registry.verify(version)
    tags = _version_tags(registry, version)
    run = client.create_run(experiment, run_name=f"radflow-v{version}", tags=tags)
    metrics = json.loads((folder / "metrics.json").read_text())
    numbers = {
        k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    client.log_batch(run.info.run_id, metrics=[Metric(k, v, 0, 0) for k, v in sorted(numbers.items())])
    client.log_artifacts(run.info.run_id, str(folder), artifact_path="model")
    client.set_terminated(run.info.run_id)
    created = client.create_model_version(
        name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id, tags=tags
    )
    return str(created.version)


def mirror(registry: Registry, uri: str, name: str) -> list[str]:
    """Mirror every version MLflow lacks, then point its aliases where the registry's point."""
    from mlflow.exceptions import MlflowException

    client = _client(uri)
    experiment = _experiment(client, uri)
    mirrored = _mirrored(client, name)
    lines = []
    for row in registry.versions():
        version = int(row["version"])
        if version not in mirrored:
            mirrored[version] = _mirror_version(client, experiment, registry, name, version)
            lines.append(f"mirrored v{version} as MLflow {name} version {mirrored[version]}")
    for alias, target in registry.aliases().items():
        try:
            current: str | None = str(client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            current = None
        wanted = None if target is None else mirrored[target]
        if current == wanted:
            continue
        if wanted is None:
            client.delete_registered_model_alias(name, alias)
        else:
            client.set_registered_model_alias(name, alias, wanted)
        lines.append(f"MLflow alias {alias} -> {wanted or 'none'}")
    return lines


def mirror_if_configured(
    registry: Registry, params: dict[str, Any], project: Path, say: Callable[[str], None]
) -> None:
    """After a registry change: sync the mirror when one is configured. A failure only warns, since the
    registry (the truth) has already changed; `radflow registry mirror` catches up later."""
    uri = parse_section(params, "registry", RegistryParams).mlflow_uri
    if uri is None:
        return
    try:
        for line in mirror(registry, uri, model_artifact(project).name):
            say(line)
    except Exception as error:  # the mirror is optional: any failure of it must not undo the decision
        say(f"warning: MLflow mirror at {uri} not updated ({error}); run `radflow registry mirror` later")
