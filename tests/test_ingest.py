"""The ingest stage on a small demo archive: outputs per contract, quarantine, no leaks, incremental."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from tasks.common.errors import RadflowError
from tasks.demo_data import BROKEN_FILES, REPORT_FILE, write_demo_archive
from tasks.ingest import settings as ingest_settings
from tasks.ingest.assemble import MANIFEST_COLUMNS
from tasks.ingest.stage import main, run_ingest
from tasks.ingest.state import STATE_FILE
from tests.dicom_factory import identity, ramp, write_dicom
from tests.ingest_helpers import ingest_params, settings_for, stored_images
from tests.leakscan import planted_identifiers, scan_for_identifiers

SALT = "test-salt-one-salt-for-tests-32-bytes-long"


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ingest")
    params = ingest_params(root)
    params["demo"].update(image_size=32, nifti_volumes=2)
    write_demo_archive(root / "raw", params, patients=10, seed=11)
    return root


@pytest.fixture
def ingested(
    demo_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> tuple[Path, str]:
    """One run of the stage (through `main`, as the CLI calls it); returns the output root and its logs."""
    monkeypatch.setenv("RADFLOW_SALT", SALT)
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    params = ingest_params(tmp_path)
    params["ingest"]["source"] = str(demo_root / "raw")
    main(params)
    out, err = capsys.readouterr()
    return tmp_path, out + err + caplog.text


def test_manifest_and_images_follow_the_contract(ingested: tuple[Path, str], demo_root: Path) -> None:
    root, _ = ingested
    manifest = pd.read_csv(root / "ingested/manifest.csv", dtype=str, keep_default_na=False)
    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    assert len(manifest) == 10 * 4 + 2  # every radiograph plus the middle slice of each NIfTI volume
    assert list(manifest["image_id"]) == sorted(manifest["image_id"])
    assert manifest["image_id"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert manifest["patient_id"].str.fullmatch(r"P-[0-9a-f]{12}").all()
    assert (
        manifest["study_id"].str.startswith("S-").all() and manifest["series_id"].str.startswith("R-").all()
    )
    assert manifest["patient_id"].nunique() == 10 + 2
    assert set(manifest["label"]) == {"normal", "opacity", "effusion"}
    assert (manifest["decode_status"] == "ok").all()
    assert {p.name for p in (root / "ingested/images").iterdir()} == set(manifest["shard"])
    images = stored_images(root / "ingested")
    for row in manifest.itertuples():
        pixels = images[row.image_id]
        assert pixels.dtype.kind in "iuf" and pixels.shape == (int(row.height), int(row.width))
    linkage = pd.read_csv(root / "private/linkage.csv")
    assert set(linkage["image_id"]) == set(manifest["image_id"])


def test_monochrome1_is_inverted_to_bright_dense(ingested: tuple[Path, str], demo_root: Path) -> None:
    """Lungs (dark, air) must be darker than the body in every stored radiograph, whatever its photometric."""
    root, _ = ingested
    linkage = pd.read_csv(root / "private/linkage.csv")
    images = stored_images(root / "ingested")
    for row in linkage.itertuples():
        if not row.source_path.endswith(".dcm"):
            continue
        photometric = pydicom.dcmread(demo_root / "raw" / row.source_path).PhotometricInterpretation
        pixels = images[row.image_id]  # (32, 32)
        body_centre, corner = pixels[20:24, 14:18].mean(), pixels[:3, :3].mean()
        assert body_centre > corner, photometric  # air outside the body is dark once MONOCHROME1 is inverted


def test_quarantine_names_every_broken_file_with_a_reason(ingested: tuple[Path, str]) -> None:
    root, _ = ingested
    quarantine = pd.read_csv(root / "private/quarantine.csv", dtype=str, keep_default_na=False)
    problems = {
        Path(p).name: row for p, row in zip(quarantine["source_path"], quarantine.itertuples(), strict=True)
    }
    assert set(problems) == {*BROKEN_FILES, REPORT_FILE}
    for name in BROKEN_FILES:
        assert problems[name].disposition == "quarantined" and problems[name].exception_type
    assert problems["truncated.dcm"].reason.startswith("truncated file")
    assert problems["not_dicom.dcm"].reason.startswith("not DICOM")
    assert problems["no_pixels.dcm"].reason.startswith("no pixel data")
    assert problems["short_pixels.dcm"].reason.startswith("pixel data length mismatch")
    assert problems[REPORT_FILE].disposition == "skipped"


def test_no_identifier_reaches_outputs_or_logs(ingested: tuple[Path, str], demo_root: Path) -> None:
    root, logs = ingested
    raw = demo_root / "raw"
    identifiers = planted_identifiers(raw)
    identifiers |= {p.name for p in raw.iterdir() if p.is_dir() and p.name != "nifti"}  # patient folders
    identifiers |= {d.name for p in raw.iterdir() if p.is_dir() for d in p.iterdir() if d.is_dir()}  # dates
    for path in raw.rglob("1.dcm"):
        private_text = str(pydicom.dcmread(path)[0x0011, 0x1001].value)
        identifiers |= {private_text, *(token for token in private_text.split() if len(token) >= 4)}
    identifiers |= set(pd.read_csv(raw / "labels.csv", dtype=str, keep_default_na=False)["patient"]) - {""}
    assert len(identifiers) > 50
    assert "ingest summary" in logs
    assert scan_for_identifiers([root / "ingested"], identifiers, [logs]) == []
    assert not list((root / "ingested").rglob("salt")) and SALT not in logs


def test_pseudonyms_are_stable_per_salt(
    demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def patients(out: str, salt: str) -> list[str]:
        monkeypatch.setenv("RADFLOW_SALT", salt)
        settings = settings_for(demo_root, source=str(demo_root / "raw"))
        run_ingest(settings, tmp_path / out / "ingested", tmp_path / out / "private")
        return list(pd.read_csv(tmp_path / out / "ingested/manifest.csv")["patient_id"])

    first = patients("a", SALT)
    assert patients("b", SALT) == first
    assert set(patients("c", "another-salt-salt-for-tests-32-bytes-long")).isdisjoint(first)


def test_rerun_decodes_nothing_and_follows_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RADFLOW_SALT", raising=False)  # the salt is generated into the private folder
    params = ingest_params(tmp_path)
    params["demo"].update(image_size=32, nifti_volumes=1)
    write_demo_archive(tmp_path / "raw", params, patients=3, seed=5)
    settings = settings_for(tmp_path)
    ingested, private = tmp_path / "ingested", tmp_path / "private"
    first = run_ingest(settings, ingested, private)
    assert first.decoded == first.files and (private / "salt").exists()
    manifest = (ingested / "manifest.csv").read_text()

    again = run_ingest(settings, ingested, private)
    assert again.decoded == 0 and again.reused == first.files
    assert (ingested / "manifest.csv").read_text() == manifest  # same salt file, same pseudonyms

    # A relabelled image: the tables follow the labels file, and nothing is decoded again.
    labels_file = tmp_path / "raw" / "labels.csv"
    header, first_row, *rest = labels_file.read_text().splitlines()
    relabelled_path = first_row.split(",")[0]
    labels_file.write_text("\n".join([header, f"{relabelled_path},relabelled,", *rest]) + "\n")
    relabelled = run_ingest(settings, ingested, private)
    assert relabelled.decoded == 0
    linkage = pd.read_csv(private / "linkage.csv").set_index("source_path")
    rows = pd.read_csv(ingested / "manifest.csv").set_index("image_id")
    assert rows.loc[linkage.loc[relabelled_path, "image_id"], "label"] == "relabelled"

    # What a power cut can leave of a shard written just before it (shards are not fsynced one by
    # one): the files whose images were cut off are decoded again, and the store is whole once more.
    images = stored_images(ingested)
    victim = max((ingested / "images").iterdir(), key=lambda shard: shard.stat().st_size)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    healed = run_ingest(settings, ingested, private)
    assert 1 <= healed.decoded < first.files and healed.decoded + healed.reused == first.files
    healed_images = stored_images(ingested)
    assert healed_images.keys() == images.keys()
    assert all(np.array_equal(healed_images[key], images[key]) for key in images)
    assert not any(name.name.startswith(".") for name in (ingested / "images").iterdir())

    removed = next((tmp_path / "raw").rglob("1.dcm"))
    removed.unlink()
    write_dicom(tmp_path / "raw" / "new" / "extra.dcm")
    changed = run_ingest(settings, ingested, private)
    assert changed.decoded == 1 and changed.pruned == 1 and changed.unlabeled == 1
    linkage = pd.read_csv(private / "linkage.csv")
    assert str(removed.relative_to(tmp_path / "raw")) not in set(linkage["source_path"])
    assert "new/extra.dcm" in set(linkage["source_path"])


def test_too_many_failures_fail_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADFLOW_SALT", SALT)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.dcm").write_text("not dicom")
    write_dicom(tmp_path / "raw" / "b.dcm")
    settings = settings_for(tmp_path, labels="folders", max_failed_fraction=0.25)
    with pytest.raises(RadflowError, match="max_failed_fraction"):
        run_ingest(settings, tmp_path / "ingested", tmp_path / "private")
    quarantine = pd.read_csv(tmp_path / "private/quarantine.csv")  # the report is written before failing
    assert list(quarantine["source_path"]) == ["a.dcm"] and quarantine["reason"][0].startswith("not DICOM")


def test_bad_configuration_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(RadflowError, match=r"valid: middle \| n \| mip \| all$"):
        settings_for(tmp_path, slice_strategy="first")
    (tmp_path / "raw").mkdir()
    with pytest.raises(RadflowError, match=r"labels file .* not found"):
        run_ingest(settings_for(tmp_path), tmp_path / "ingested", tmp_path / "private")


def test_symlinks_out_of_the_source_are_not_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADFLOW_SALT", SALT)
    outside = tmp_path / "elsewhere.dcm"
    write_dicom(outside)
    (tmp_path / "raw").mkdir()
    write_dicom(tmp_path / "raw" / "inside.dcm")
    (tmp_path / "raw" / "escape.dcm").symlink_to(outside)
    (tmp_path / "raw" / "alias.dcm").symlink_to(tmp_path / "raw" / "inside.dcm")
    settings = settings_for(tmp_path, labels="folders")
    run_ingest(settings, tmp_path / "ingested", tmp_path / "private")
    quarantine = pd.read_csv(tmp_path / "private/quarantine.csv").set_index("source_path")
    assert "outside ingest.source" in quarantine.loc["escape.dcm", "reason"]
    linked = set(pd.read_csv(tmp_path / "private/linkage.csv")["source_path"])
    assert "inside.dcm" in linked and "escape.dcm" not in linked


def test_a_file_name_that_is_not_utf8_costs_that_file_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Latin-1 name (`M\xfcller.dcm`, from an old Windows share) cannot go into the UTF-8 tables: it is
    quarantined by its escaped name, the rest is ingested, and once renamed it is ingested too."""
    monkeypatch.setenv("RADFLOW_SALT", SALT)
    (tmp_path / "raw").mkdir()
    write_dicom(tmp_path / "raw" / "plain.dcm")
    latin1 = os.fsencode(tmp_path / "raw") + b"/M\xfcller/1.dcm"
    write_dicom(
        Path(os.fsdecode(latin1)), ramp(maximum=300), who=identity(sop_uid="1.2.826.0.1.3680043.8.498.77")
    )
    settings = settings_for(tmp_path, labels="folders")
    first = run_ingest(settings, tmp_path / "ingested", tmp_path / "private")
    assert first.files == 2 and first.images == 1 and first.quarantined == {"file name not valid UTF-8": 1}
    quarantine = pd.read_csv(tmp_path / "private/quarantine.csv")
    assert list(quarantine["source_path"]) == ["M\\xfcller/1.dcm"]
    assert run_ingest(settings, tmp_path / "ingested", tmp_path / "private").decoded == 0  # stable

    os.rename(os.fsdecode(os.path.dirname(latin1)), tmp_path / "raw" / "Mueller")
    renamed = run_ingest(settings, tmp_path / "ingested", tmp_path / "private")
    assert renamed.images == 2 and not renamed.quarantined and renamed.decoded == 1


def test_the_state_header_alone_answers_an_unchanged_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unchanged run reads only the state's header; any change reads the rest, and a decoder
    upgrade (another fingerprint) decodes everything again."""
    monkeypatch.setenv("RADFLOW_SALT", SALT)
    for index in range(2):
        write_dicom(
            tmp_path / "raw" / f"{index}.dcm", who=identity(sop_uid=f"1.2.826.0.1.3680043.8.498.4{index}")
        )
    settings = settings_for(tmp_path, labels="folders")
    ingested, private = tmp_path / "ingested", tmp_path / "private"
    assert run_ingest(settings, ingested, private).decoded == 2
    with contextlib.closing(sqlite3.connect(private / STATE_FILE)) as state:
        state.execute("DROP TABLE images")  # the files' part broken; the header intact
        state.commit()
    unchanged = run_ingest(settings, ingested, private)
    assert (unchanged.decoded, unchanged.reused, unchanged.images) == (0, 2, 2)

    os.utime(tmp_path / "raw" / "0.dcm")  # a change: the cut state is unreadable, so all decode again
    assert run_ingest(settings, ingested, private).decoded == 2
    assert run_ingest(settings, ingested, private).decoded == 0
    monkeypatch.setattr(ingest_settings, "DECODER_VERSION", ingest_settings.DECODER_VERSION + 1)
    assert run_ingest(settings, ingested, private).decoded == 2
