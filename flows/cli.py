"""The `radflow` command line: thin typer commands that parse options and call plain functions.

Hyperparameters are never flags: they live in params.yaml and a run overrides them with `--set`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tasks.errors import RadflowError
from tasks.params import load_params

app = typer.Typer(add_completion=False, no_args_is_help=True, help="radflow: medical imaging pipeline")
registry_app = typer.Typer(no_args_is_help=True, help="Inspect and change the model registry.")
app.add_typer(registry_app, name="registry")
console = Console(stderr=True)

# Stage name -> module exposing `main(params: dict) -> None`, in pipeline order.
STAGES = {
    "ingest": "tasks.ingest",
    "preprocess": "tasks.preprocess",
    "train": "tasks.train",
    "evaluate": "tasks.evaluate",
    "promote": "tasks.promote",
}

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a params.yaml key for this run: SECTION.KEY=VALUE (repeatable)."),
]


def _fail_cleanly(error: RadflowError) -> None:
    console.print(f"[bold red]error:[/] {error}")
    raise typer.Exit(code=1)


@app.command("stage")
def stage(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(STAGES)}")],
    overrides: SetOption = None,
) -> None:
    """Run one pipeline stage with params.yaml (+ overrides); this is what dvc.yaml calls."""
    try:
        if name not in STAGES:
            raise RadflowError(f"unknown stage {name!r}; valid stages: {', '.join(STAGES)}")
        params = load_params(overrides=overrides)
        importlib.import_module(STAGES[name]).main(params)
    except RadflowError as error:
        _fail_cleanly(error)


@app.command("demo-data")
def demo_data(
    directory: Annotated[Path, typer.Argument(help="Where to write the demo archive.")] = Path("data/raw"),
    patients: Annotated[int | None, typer.Option(help="Number of fake patients (default: params.yaml demo.patients).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: params.yaml seed).")] = None,
) -> None:
    """Write the deterministic demo archive: DICOM radiographs, NIfTI volumes, labels, broken files."""
    from tasks.demo_data import write_demo_archive

    try:
        params = load_params()
        write_demo_archive(directory, params, patients=patients, seed=seed)
    except RadflowError as error:
        _fail_cleanly(error)


@app.command("retrain")
def retrain(overrides: SetOption = None) -> None:
    """Run the DVC pipeline as a Prefect flow (one task per stage)."""
    from flows.retrain import retrain_flow

    try:
        retrain_flow(overrides=overrides or [])
    except RadflowError as error:
        _fail_cleanly(error)


@app.command("serve")
def serve(
    cron: Annotated[str, typer.Option(help="When to retrain, as a cron expression.")] = "0 2 * * 1",
) -> None:
    """Serve the retrain flow as a Prefect deployment on a cron schedule (runs until stopped)."""
    from flows.server import serve_retrain

    try:
        serve_retrain(cron, console)
    except RadflowError as error:
        _fail_cleanly(error)


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

    try:
        predict_files(paths, params=load_params(), model=model, out=out, gradcam_dir=gradcam)
    except RadflowError as error:
        _fail_cleanly(error)
