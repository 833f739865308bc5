"""The `radflow` command line: thin typer commands that parse options and call plain functions.

Hyperparameters are never flags: they live in params.yaml and a run overrides them with `--set`.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import click
import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from models.registry import Registry

from tasks.common.errors import (
    RadflowError,
    debug_requested,
    from_os_error,
    record_failure,
    unexpected,
)
from tasks.common.params import load_params

# A traceback (RADFLOW_DEBUG=1 only) never shows local variables: they hold salts, credentials, paths.
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="radflow: medical imaging pipeline",
    pretty_exceptions_show_locals=False,
)
registry_app = typer.Typer(
    no_args_is_help=True, help="Inspect and change the model registry.", pretty_exceptions_show_locals=False
)
app.add_typer(registry_app, name="registry")
console = Console(stderr=True)

# Stage name -> module exposing `main(params: dict) -> None`, in pipeline order.
STAGES = {
    "ingest": "tasks.ingest.stage",
    "preprocess": "tasks.preprocess.stage",
    "train": "tasks.train.stage",
    "evaluate": "tasks.evaluate.stage",
    "promote": "tasks.promote.stage",
}

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a params.yaml key for this run: SECTION.KEY=VALUE (repeatable)."),
]


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a radflow error into a readable message and its exit code (1, or 75 for a transient one; an
    OS error a retry can outlast counts as transient): no traceback for a user mistake. Any other
    exception is one line naming its type (tasks.common.errors.unexpected), unless RADFLOW_DEBUG=1."""
    try:
        yield
    except (click.exceptions.Exit, click.exceptions.ClickException, click.exceptions.Abort):
        raise  # typer's own ways out (exit codes, usage errors)
    except RadflowError as error:
        _fail(error)
    except Exception as error:
        if debug_requested():
            raise
        transient = from_os_error(error) if isinstance(error, OSError) else None
        _fail(transient or unexpected(error))


def _fail(error: RadflowError) -> NoReturn:
    # One line however long (no wrapping); brackets in the message are printed as they are.
    console.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True)
    raise typer.Exit(code=record_failure(error)) from None


@app.command("stage")
def stage(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(STAGES)}")],
    overrides: SetOption = None,
) -> None:
    """Run one pipeline stage with params.yaml (+ overrides); this is what dvc.yaml calls."""
    with user_errors():
        if name not in STAGES:
            raise RadflowError(f"unknown stage {name!r}; valid stages: {', '.join(STAGES)}")
        params = load_params(overrides=overrides)
        importlib.import_module(STAGES[name]).main(params)


@app.command("demo-data")
def demo_data(
    directory: Annotated[Path, typer.Argument(help="Where to write the demo archive.")] = Path("data/raw"),
    patients: Annotated[
        int | None, typer.Option(help="Number of fake patients (default: params.yaml demo.patients).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: params.yaml seed).")] = None,
) -> None:
    """Write the deterministic demo archive: DICOM radiographs, NIfTI volumes, labels, broken files."""
    from tasks.demo_data import write_demo_archive

    with user_errors():
        params = load_params()
        write_demo_archive(directory, params, patients=patients, seed=seed)


@app.command("retrain")
def retrain(overrides: SetOption = None) -> None:
    """Run the DVC pipeline as a Prefect flow (one task per stage)."""
    from flows.overrides import settable_params
    from flows.retrain import retrain_flow
    from tasks.common.params import PARAMS_FILE

    with user_errors():
        # Before a Prefect server, a flow run (whose parameters are stored) or a stage starts.
        settable_params(PARAMS_FILE, overrides or [])
        retrain_flow(overrides=overrides or [])


@app.command("serve")
def serve(
    cron: Annotated[str, typer.Option(help="When to retrain, as a cron expression.")] = "0 2 * * 1",
) -> None:
    """Serve the retrain flow as a Prefect deployment on a cron schedule (runs until stopped)."""
    from flows.deployment import serve_retrain

    with user_errors():
        serve_retrain(cron, console)


@app.command("server")
def server(
    host: Annotated[
        str, typer.Option(help="Interface to listen on (127.0.0.1: local; another needs API authentication).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the UI and API.")] = 4200,
) -> None:
    """Start a local Prefect server and UI whose data lives in the project's .prefect folder."""
    from flows.server import run_server

    with user_errors():
        status = run_server(Path.cwd(), host, port, console)
    raise typer.Exit(code=status)


@app.command("predict")
def predict(
    paths: Annotated[list[Path], typer.Argument(help="DICOM/NIfTI/image files or folders to classify.")],
    model: Annotated[
        str,
        typer.Option(help="Registry version or alias, or a model folder (e.g. from `dvc artifacts get`)."),
    ] = "champion",
    out: Annotated[Path, typer.Option(help="Output file (.csv or .json).")] = Path("predictions.csv"),
    gradcam: Annotated[Path | None, typer.Option(help="Folder for Grad-CAM overlays (optional).")] = None,
    push: Annotated[
        bool,
        typer.Option("--push", help="Send a result report (DICOM SR) per study to pacs.url."),
    ] = False,
) -> None:
    """Classify new studies with a registered model or a model folder fetched from the registry's tags."""
    from tasks.predict import predict_files

    with user_errors():
        params = load_params()
        predictions = predict_files(paths, params=params, model=model, out=out, gradcam_dir=gradcam)
        if push:  # the reports carry the studies' identifiers: they go to the PACS only
            from tasks.pacs.push import push_predictions

            push_predictions(predictions, params, model)


@app.command("study")
def study(
    name: Annotated[
        str | None, typer.Argument(help="A study in params.yaml (default: study.default).")
    ] = None,
) -> None:
    """Run a study of params.yaml as DVC experiments (queued, resumable) and compare its variants, paired."""
    import functools

    from flows.study.study import run_study

    with user_errors():
        say = functools.partial(console.print, soft_wrap=True, markup=False)  # one line each, as printed
        run_study(load_params(), name, Path.cwd(), say)


@app.command("pull")
def pull(overrides: SetOption = None) -> None:
    """Fetch new studies from the PACS at pacs.url into ingest.source (incremental, idempotent)."""
    from tasks.pacs.pull import pull_from_params

    with user_errors():
        pull_from_params(load_params(overrides=overrides))


@app.command("receive")
def receive(overrides: SetOption = None) -> None:
    """Listen for studies pushed by C-STORE (pacs.listen_host:pacs.receive_port) into retrain.incoming."""
    from flows.settings import retrain_params
    from tasks.pacs.receive import receive_from_params

    with user_errors():
        params = load_params(overrides=overrides)
        receive_from_params(params, retrain_params(params).incoming, console)


@app.command("monitor")
def monitor(
    labels: Annotated[
        Path | None,
        typer.Option(help="CSV of labels that arrived since (columns label and image_id or study_id)."),
    ] = None,
    overrides: SetOption = None,
) -> None:
    """Drift, prediction drift and temporal validation of the studies logged since the champion was
    registered; writes paths.monitor/metrics.json and timeseries.csv. Warnings exit 0."""
    from tasks.monitor.stage import run_monitor

    with user_errors():
        findings = run_monitor(load_params(overrides=overrides), labels)
    for line in findings.warnings:
        console.print(f"[bold yellow]warning:[/] {escape(line)}", soft_wrap=True)
    metrics = findings.metrics
    drifted = ", ".join(metrics["drifted"]) or "none"
    console.print(
        f"monitor: {metrics['arrivals']} arrivals since the champion, out of distribution "
        f"{metrics['ood_share']:.1%}, drifted: {drifted}, {len(findings.warnings)} warning(s)",
        soft_wrap=True,
    )


def _open_registry(params: dict[str, Any]) -> Registry:
    """The registry at params.yaml's paths.registry, with the promote section's lock timeout."""
    from models.registry import Registry
    from tasks.common.params import parse_section
    from tasks.common.paths import project_paths
    from tasks.promote.gate import PromoteParams

    timeout = parse_section(params, "promote", PromoteParams).lock_timeout_s
    return Registry(project_paths(params).registry, lock_timeout_s=timeout)


def _mirror(registry: Registry, params: dict[str, Any]) -> None:
    """Bring the optional MLflow mirror in line after a registry change (warns, never fails)."""
    from models.registry.mlflow_mirror import mirror_if_configured

    mirror_if_configured(registry, params, Path.cwd(), console.print)


@registry_app.command("list")
def registry_list() -> None:
    """List registered versions with their headline ROC-AUC and aliases."""
    from rich.table import Table

    with user_errors():
        rows = _open_registry(load_params()).versions()
    table = Table("version", "created", "roc_auc", "aliases", title="radflow registry")
    for row in rows:
        auc = "n/a" if row.get("roc_auc") is None else f"{row['roc_auc']:.3f}"
        table.add_row(str(row["version"]), row["created"], auc, ", ".join(row["aliases"]))
    Console().print(table if rows else "registry is empty: run the pipeline (dvc repro) to promote a model")


@registry_app.command("show")
def registry_show(
    version: Annotated[str, typer.Argument(help="Version number or alias.")] = "champion",
    as_json: Annotated[bool, typer.Option("--json", help="Print the full record as JSON.")] = False,
) -> None:
    """Summarise one version (verified against its checksums): metrics, threshold, decision, lineage."""
    import json

    from models.registry.summary import summary_lines

    with user_errors():
        record = _open_registry(load_params()).show(version)
    typer.echo(json.dumps(record, indent=2, sort_keys=True) if as_json else "\n".join(summary_lines(record)))


@registry_app.command("register")
def registry_register(
    model_dir: Annotated[Path, typer.Argument(help="Model folder (model.safetensors + config.json).")],
    reason: Annotated[str, typer.Option(help="Why it is registered without the gate, for the audit log.")],
    champion: Annotated[bool, typer.Option("--champion", help="Also make it champion.")] = False,
) -> None:
    """Register a model the gate cannot compare (new classes, a new task), on purpose, after review.

    Its metrics and model card are the evaluate stage's (paths.evaluation), which must be of this model.
    """
    from models.registry.manual import register_by_hand
    from tasks.common.paths import project_paths

    with user_errors():
        params = load_params()
        registry = _open_registry(params)
        version = register_by_hand(
            registry,
            model_dir,
            evaluation_dir=project_paths(params).evaluation,
            project=Path.cwd(),
            reason=reason,
            champion=champion,
        )
        _mirror(registry, params)
    console.print(f"registered v{version}" + (" as champion" if champion else " (champion unchanged)"))


@registry_app.command("promote")
def registry_promote(
    version: Annotated[str, typer.Argument(help="Version number to make champion.")],
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "manual promotion",
) -> None:
    """Make an existing version champion by hand (the current one becomes `previous`)."""
    with user_errors():
        params = load_params()
        registry = _open_registry(params)
        promoted = registry.promote(version, reason)
        _mirror(registry, params)
    console.print(f"champion is now v{promoted}")


@registry_app.command("rollback")
def registry_rollback(
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "manual rollback",
) -> None:
    """Undo the last champion change: the previous champion becomes champion again."""
    with user_errors():
        params = load_params()
        registry = _open_registry(params)
        champion = registry.rollback(reason)
        _mirror(registry, params)
    console.print(f"rolled back: champion is now v{champion}")


@registry_app.command("tag")
def registry_tag(
    push: Annotated[bool, typer.Option("--push", help="Push the tags to the git remote `origin`.")] = False,
) -> None:
    """Make GTO tags match the registry (versions, champion/previous), for `dvc artifacts get --stage`."""
    from models.registry.gto_tags import describe, sync_tags

    with user_errors():
        report = sync_tags(_open_registry(load_params()), Path.cwd(), push=push)
    for line in describe(report):
        typer.echo(line)
    if "champion" in report.blocked_aliases:  # `--stage champion` would still fetch an older model
        console.print(
            "[bold red]error:[/] GTO's champion is not the registry's champion yet: "
            "do the above, then run `radflow registry tag` again"
        )
        raise typer.Exit(code=1)


@registry_app.command("export-bundle")
def registry_export_bundle(
    version: Annotated[str, typer.Argument(help="Version number or alias.")],
    directory: Annotated[Path, typer.Argument(help="New folder for the MONAI bundle.")],
) -> None:
    """Write a version as a MONAI bundle (configs/, models/model.pt, docs/README.md)."""
    from models.bundle import export_bundle
    from models.registry.dvc_hashes import model_artifact
    from tasks.common.params import parse_section
    from tasks.preprocess.stage import PreprocessParams

    with user_errors():
        params = load_params()
        registry = _open_registry(params)
        record = registry.show(version)  # verified against its checksums
        folder = registry.load(record["version"]).path
        preprocess = parse_section(params, "preprocess", PreprocessParams)
        if (preprocess.window, preprocess.top_clip) != ("image", "hard"):
            raise RadflowError(
                f"preprocess.window={preprocess.window}, top_clip={preprocess.top_clip}: the MONAI bundle "
                "spells out MONAI's own percentile window only (window image, top_clip hard)"
            )
        export_bundle(
            folder,
            directory,
            name=model_artifact(Path.cwd()).name,
            version=record["version"],
            config=record["config"],
            metrics=record["metrics"],
            model_card=(folder / "model_card.md").read_text(),
            weights_sha256=record["weights_sha256"],
            lower_percentile=preprocess.lower_percentile,
            upper_percentile=preprocess.upper_percentile,
        )
    console.print(f"MONAI bundle of v{record['version']} written to {directory}")


@registry_app.command("mirror")
def registry_mirror() -> None:
    """Bring the MLflow mirror (registry.mlflow_uri) in line with the registry now."""
    from models.registry.dvc_hashes import model_artifact
    from models.registry.mlflow_mirror import RegistryParams, mirror
    from tasks.common.params import parse_section

    with user_errors():
        params = load_params()
        uri = parse_section(params, "registry", RegistryParams).mlflow_uri
        if uri is None:
            raise RadflowError("registry.mlflow_uri is null in params.yaml: no MLflow mirror is configured")
        lines = mirror(_open_registry(params), uri, model_artifact(Path.cwd()).name)
    typer.echo("\n".join(lines) or f"MLflow at {uri} already mirrors the registry")
