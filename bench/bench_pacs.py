"""PACS pull throughput: `radflow pull` (DICOMweb) vs a bare dicomweb-client retrieve loop, same Orthanc,
same studies, same run (`python -m bench.bench_pacs`; target: pull >= 0.8x the loop's instances/s).

The loop is what a script would do given the instance UIDs: `retrieve_instance` then `dcmwrite` into a
folder, one instance at a time, no query, no state. The pull does all of its real work: the change
feed and study queries, an instance query per study, the held-instance check, a whole-series
multipart retrieval where nothing of a series is held, atomic Part 10 writes under opaque names, one
sync and the state file. Rounds alternate the two sides (fresh output each time) and the median ratio
is reported, so load from other processes hits both alike. Orthanc runs as in the tests (a private
network namespace where the machine allows it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from rich.console import Console
from rich.table import Table

from tasks.common.params import load_params
from tasks.pacs.pull import run_pull
from tasks.pacs.settings import load_pacs_settings
from tests.dicom_factory import identity, ramp, write_dicom
from tests.orthanc import PASSWORD, USER, missing_reason, running_orthanc

ROOT_UID = "1.2.826.0.1.3680043.8.498.77"


def write_studies(folder: Path, studies: int, per_study: int, side: int) -> list[tuple[str, str, str, Path]]:
    """`studies` studies of `per_study` 16-bit side x side radiographs (one series each)."""
    instances = []
    for study in range(studies):
        study_uid = f"{ROOT_UID}.{study + 1}"
        series_uid = f"{study_uid}.1"
        for index in range(per_study):
            sop = f"{series_uid}.{index + 1}"
            who = identity(study_uid=study_uid, series_uid=series_uid, sop_uid=sop)
            path = write_dicom(folder / f"{study}_{index}.dcm", ramp(side, side, 4000 - index), who=who)
            instances.append((study_uid, series_uid, sop, path))
    return instances


def baseline(client: DICOMwebClient, instances: list[tuple[str, str, str, Path]], out: Path) -> float:
    """Seconds for the bare loop: retrieve each instance by its UIDs, write it."""
    out.mkdir(parents=True)
    start = time.perf_counter()
    for number, (study, series, sop, _) in enumerate(instances):
        dataset = client.retrieve_instance(study, series, sop, media_types=(("application/dicom", "*"),))
        pydicom.dcmwrite(out / f"{number}.dcm", dataset)
    return time.perf_counter() - start


def radflow_pull(params: dict, out: Path) -> float:
    """Seconds for one complete first pull into `out`."""
    settings = load_pacs_settings(params)
    start = time.perf_counter()
    summary = run_pull(settings, out / "archive", out / "private", show_progress=False)
    elapsed = time.perf_counter() - start
    assert summary.failed == 0 and summary.left_for_next == 0
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=40, help="studies in the PACS")
    parser.add_argument("--per-study", type=int, default=8, help="instances per study (one series)")
    parser.add_argument("--side", type=int, default=256, help="image side in pixels (16-bit)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median reported)")
    args = parser.parse_args()
    if missing_reason():
        raise SystemExit(missing_reason())
    console = Console()
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        instances = write_studies(work / "studies", args.studies, args.per_study, args.side)
        megabytes = sum(path.stat().st_size for *_, path in instances) / 1e6
        with running_orthanc(work / "orthanc") as server:
            server.upload([path for *_, path in instances])
            os.environ["RADFLOW_PACS_AUTH"] = f"{USER}:{PASSWORD}"
            params = load_params()
            params["pacs"].update({"url": server.dicomweb_url, "lookback_days": None})
            session = requests.Session()
            session.auth = (USER, PASSWORD)
            client = DICOMwebClient(server.dicomweb_url, session=session)
            rows = []
            for round_ in range(args.rounds):
                for side in ("loop", "pull") if round_ % 2 == 0 else ("pull", "loop"):
                    out = work / f"out-{round_}-{side}"
                    seconds = (
                        baseline(client, instances, out) if side == "loop" else radflow_pull(params, out)
                    )
                    rows.append((round_, side, seconds))
                    shutil.rmtree(out)
    per_round = {
        r: {side: len(instances) / seconds for rr, side, seconds in rows if rr == r}
        for r in range(args.rounds)
    }
    table = Table(title=f"{len(instances)} instances ({megabytes:.0f} MB), {args.studies} studies, DICOMweb")
    table.add_column("round")
    table.add_column("bare loop, instances/s")
    table.add_column("radflow pull, instances/s")
    table.add_column("pull / loop")
    ratios = []
    for r, speeds in per_round.items():
        ratios.append(speeds["pull"] / speeds["loop"])
        table.add_row(str(r + 1), f"{speeds['loop']:.0f}", f"{speeds['pull']:.0f}", f"{ratios[-1]:.2f}x")
    console.print(table)
    median = statistics.median(ratios)
    console.print(f"median pull / loop throughput: [bold]{median:.2f}x[/] (target >= 0.8x)")


if __name__ == "__main__":
    main()
