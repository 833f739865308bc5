"""The small code choices whose reason is speed, each against the obvious alternative in the same run
(`python -m bench.bench_choices`); the code comments point here instead of quoting numbers.

Each row times the choice and its alternative on the same input, alternating the two `--rounds` times
and keeping each side's best, so load from other processes hits both alike; the ratio is
alternative / choice (above 1: the choice is faster). Two rows are costs rather than pairs: a redraw
of ingest's progress bar against its redraw interval, and the import a forkserver child would repeat
without the main-module swap, against a bare interpreter start.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import subprocess
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import torch
import yaml
from pydicom import config as pydicom_config
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from rich.console import Console
from rich.table import Table

from tasks.common import shards
from tasks.common.params import FastSafeLoader
from tasks.demo_data.dicom import build_dataset, encode
from tasks.ingest import dicom, progress
from tasks.preprocess.transform import TransformSettings, image_to_tensor
from tests.dicom_factory import PLANTED

ROOT = Path(__file__).resolve().parents[1]


def best(call: Callable[[], object], number: int) -> float:
    """Seconds per call: the best of one timing round of `number` calls."""
    return min(timeit.repeat(call, number=number, repeat=1)) / number


def pair(
    choice: Callable[[], object], other: Callable[[], object], number: int, rounds: int
) -> tuple[float, float]:
    """Best seconds per call of `choice` and of `other`, alternating rounds."""
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(best(choice, number))
        theirs.append(best(other, number))
    return min(ours), min(theirs)


def dicom_bytes() -> bytes:
    """A 512 x 512 12-bit DX file as the demo writes it (the size the ingest benchmark uses)."""
    pixels = np.random.default_rng(0).integers(0, 4096, (512, 512), dtype=np.uint16)
    return encode(build_dataset(pixels, PLANTED), pydicom.uid.ExplicitVRLittleEndian)


def convert_values(mode: int, data: bytes) -> Callable[[], None]:
    """Turn every raw header element of a file into its value (what each first read of one does), with
    pydicom's value validation in `mode`."""
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    raws = [element for element in ds._dict.values() if isinstance(element, RawDataElement)]

    def convert() -> None:
        saved = pydicom_config.settings.reading_validation_mode
        pydicom_config.settings.reading_validation_mode = mode
        try:
            for raw in raws:
                convert_raw_data_element(raw, ds=ds)
        finally:
            pydicom_config.settings.reading_validation_mode = saved

    return convert


def state_entries(files: int) -> dict[str, object]:
    """Ingest-state-like entries: per file its size, mtime, hash, outcome and one image record."""
    rng = np.random.default_rng(1)
    return {
        f"patient{n // 4:04d}/study/{n:05d}.dcm": {
            "size": 524_800 + n,
            "mtime": 1.7e9 + n,
            "hash": f"{rng.integers(2**62):032x}",
            "outcome": ["ok", "", "", ""],
            "meta": {"modality": "DX", "view": "PA", "sex": "F"},
            "images": [[f"{n:016x}", 0, 524_416, f"{rng.integers(2**62):032x}", "a" * 16, n * 524_544]],
        }
        for n in range(files)
    }


def threads(count: int, image: np.ndarray, settings: TransformSettings) -> Callable[[], None]:
    def transform() -> None:
        torch.set_num_threads(count)
        image_to_tensor(image, settings)

    return transform


def progress_redraw(rounds: int) -> float:
    """Best seconds of one redraw of ingest's progress bar, rendered for a terminal and written nowhere."""
    stage_console = progress.console
    progress.console = Console(file=io.StringIO(), force_terminal=True, width=120)
    try:
        with progress.DecodeProgress(10_000) as bar:
            for _ in range(5000):
                bar.advance()  # a bar part-way, with a speed to show
            return min(best(bar._bar.refresh, 200) for _ in range(rounds))
    finally:
        progress.console = stage_console


def interpreter_start(code: str) -> float:
    """Seconds for a fresh interpreter to run `code` (best of 3)."""
    command = [sys.executable, "-c", code]
    return min(timeit.repeat(lambda: subprocess.run(command, cwd=ROOT, check=True), number=1, repeat=3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating timing rounds per row")
    args = parser.parse_args()
    rounds = args.rounds
    data = dicom_bytes()
    ds = pydicom.dcmread(io.BytesIO(data))
    params_text = (ROOT / "params.yaml").read_text()
    entries = state_entries(2000)
    radiograph = np.random.default_rng(2).normal(1000, 200, (512, 512)).astype(np.float32)  # (H, W)
    transform = TransformSettings(96, 0.5, 99.5, "image", "hard", 0.5)  # params.yaml's window
    default_threads = torch.get_num_threads()
    rows = {  # name -> (where, choice, alternative, (choice s, alternative s))
        "params.yaml with libyaml's C loader, vs PyYAML's": (
            "tasks/common/params.py",
            pair(
                lambda: yaml.load(params_text, Loader=FastSafeLoader),
                lambda: yaml.safe_load(params_text),
                5,
                rounds,
            ),
        ),
        "header value by tag, vs Dataset.get(keyword)": (
            "tasks/ingest/dicom.py _get",
            pair(lambda: dicom._get(ds, "Rows"), lambda: ds.get("Rows"), 20_000, rounds),
        ),
        "DICOM date by int slices, vs strptime": (
            "tasks/ingest/dicom.py _date",
            pair(
                lambda: dicom._date("20230415"),
                lambda: dt.datetime.strptime("20230415", "%Y%m%d").date(),
                20_000,
                rounds,
            ),
        ),
        "a DX file's header values converted, validation off vs on": (
            "tasks/ingest/decode.py quiet_decoders",
            pair(
                convert_values(pydicom_config.IGNORE, data),
                convert_values(pydicom_config.WARN, data),
                500,
                rounds,
            ),
        ),
        ".npy record header cached, vs built each time": (
            "tasks/common/shards.py _header",
            pair(
                lambda: shards._header((512, 512), "<u2"),
                lambda: shards._header.__wrapped__((512, 512), "<u2"),
                5000,
                rounds,
            ),
        ),
        "state of 2,000 files as compact JSON, vs indented": (
            "tasks/ingest/state.py put",
            pair(
                lambda: json.dumps(entries, separators=(",", ":")),
                lambda: json.dumps(entries, indent=2),
                3,
                rounds,
            ),
        ),
        "percentiles of a 512 x 512 image with numpy, vs torch.quantile": (
            "tasks/preprocess/transform.py",
            pair(
                lambda: np.percentile(radiograph, [0.5, 99.5]),
                lambda: torch.quantile(torch.from_numpy(radiograph).flatten(), torch.tensor([0.005, 0.995])),
                50,
                rounds,
            ),
        ),
        f"image_to_tensor (512 px -> 96) on 1 torch thread, vs {default_threads}": (
            "tasks/preprocess/stage.py main",
            pair(
                threads(1, radiograph, transform), threads(default_threads, radiograph, transform), 50, rounds
            ),
        ),
    }
    torch.set_num_threads(default_threads)
    table = Table(title="code choices: the choice vs its alternative, best per call")
    for column in ("choice", "where", "choice", "alternative", "alternative / choice"):
        table.add_column(column, justify="left" if column in ("where",) else "right")
    for name, (where, (ours, theirs)) in rows.items():
        table.add_row(name, where, f"{ours * 1e6:.2f} µs", f"{theirs * 1e6:.2f} µs", f"{theirs / ours:.1f}x")
    console = Console(width=150)
    console.print(table)

    interval = progress.DecodeProgress.REDRAW_S
    redraw = progress_redraw(rounds)
    console.print(
        f"ingest progress redraw: {redraw * 1e3:.2f} ms, {redraw / interval:.1%} of the stage process at "
        f"one redraw per {interval} s (tasks/ingest/progress.py)"
    )
    bare, cli = interpreter_start("pass"), interpreter_start("import flows.cli")
    console.print(
        f"importing the radflow entry point in a fresh interpreter: {cli - bare:.2f} s on top of a bare "
        f"start ({bare:.2f} s); a forkserver child would pay it per worker without the main-module swap "
        "(tasks/ingest/isolation.py)"
    )


if __name__ == "__main__":
    main()
