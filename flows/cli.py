"""The `radflow` command line: thin typer commands that parse options and call plain functions.

Hyperparameters are never flags: they live in params.yaml and a run overrides them with `--set`.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from models.registry import Registry

from tasks.common.errors import RadflowError
from tasks.common.params import load_params

app = typer.Typer(add_completion=False, no_args_is_help=True, help="radflow: medical imaging pipeline")
registry_app = typer.Typer(no_args_is_help=True, help="Inspect and change the model registry.")
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
    """Turn the one domain error into a readable message and exit code 1: no traceback for a user mistake."""
    try:
        yield
    except RadflowError as error:  # one line however long (no wrapping), brackets in it printed as is
        console.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(code=1) from None


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
    from flows.preflight import check_params
    from flows.retrain import retrain_flow

    with user_errors():
        check_params(load_params(overrides=overrides))  # before a Prefect server or stage starts
        retrain_flow(overrides=overrides or [])


@app.command("serve")
def serve(
    cron: Annotated[str, typer.Option(help="When to retrain, as a cron expression.")] = "0 2 * * 1",
) -> None:
    """Serve the retrain flow as a Prefect deployment on a cron schedule (runs until stopped)."""
    from flows.server import serve_retrain

    with user_errors():
        serve_retrain(cron, console)


@app.command("server")
def server(
    host: Annotated[str, typer.Option(help="Interface to listen on (127.0.0.1: local).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the UI and API.")] = 4200,
) -> None:
    """Start a local Prefect server and UI whose data lives in the project's .prefect folder."""
    from flows.server import run_server

    raise typer.Exit(code=run_server(Path.cwd(), host, port, console))


@app.command("predict")
def predict(
    paths: Annotated[list[Path], typer.Argument(help="DICOM/NIfTI/image files or folders to classify.")],
    model: Annotated[str, typer.Option(help="Registry version number or alias.")] = "champion",
    out: Annotated[Path, typer.Option(help="Output file (.csv or .json).")] = Path("predictions.csv"),
    gradcam: Annotated[Path | None, typer.Option(help="Folder for Grad-CAM overlays (optional).")] = None,
) -> None:
    """Classify new studies with a registered model."""
    from tasks.predict import predict_files

    with user_errors():
        predict_files(paths, params=load_params(), model=model, out=out, gradcam_dir=gradcam)


def _open_registry() -> Registry:
    """The registry at params.yaml's paths.registry, with the promote section's lock timeout."""
    from models.registry import Registry
    from tasks.common.params import parse_section
    from tasks.common.paths import project_paths
    from tasks.promote.gate import PromoteParams

    params = load_params()
    timeout = parse_section(params, "promote", PromoteParams).lock_timeout_s
    return Registry(project_paths(params).registry, lock_timeout_s=timeout)


@registry_app.command("list")
def registry_list() -> None:
    """List registered versions with their headline ROC-AUC and aliases."""
    from rich.table import Table

    with user_errors():
        rows = _open_registry().versions()
    table = Table("version", "created", "roc_auc", "aliases", title="radflow registry")
    for row in rows:
        auc = "n/a" if row.get("roc_auc") is None else f"{row['roc_auc']:.3f}"
        table.add_row(str(row["version"]), row["created"], auc, ", ".join(row["aliases"]))
    Console().print(table if rows else "registry is empty: run the pipeline (dvc repro) to promote a model")


@registry_app.command("show")
def registry_show(
    version: Annotated[str, typer.Argument(help="Version number or alias.")] = "champion",
) -> None:
    """Show one version (verified against its checksums): metrics, lineage, gate decision, aliases."""
    import json

    with user_errors():
        record = _open_registry().show(version)
    typer.echo(json.dumps(record, indent=2, sort_keys=True))


@registry_app.command("promote")
def registry_promote(
    version: Annotated[str, typer.Argument(help="Version number to make champion.")],
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "manual promotion",
) -> None:
    """Make an existing version champion by hand (the current one becomes `previous`)."""
    with user_errors():
        promoted = _open_registry().promote(version, reason)
    console.print(f"champion is now v{promoted}")


@registry_app.command("rollback")
def registry_rollback(
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "manual rollback",
) -> None:
    """Undo the last champion change: the previous champion becomes champion again."""
    with user_errors():
        champion = _open_registry().rollback(reason)
    console.print(f"rolled back: champion is now v{champion}")
