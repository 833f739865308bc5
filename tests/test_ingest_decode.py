"""Per-file decoding (`decode_path`): pixel pipeline, skip/quarantine reasons, NIfTI and plain images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from tasks.ingest.decode import decode_path
from tasks.ingest.records import UnusableFile
from tasks.ingest.settings import IngestSettings
from tests.dicom_factory import ramp, write_dicom, write_nifti, write_plain
from tests.ingest_helpers import settings_for


@pytest.fixture
def settings(tmp_path: Path) -> IngestSettings:
    return settings_for(tmp_path)


def _only(path: Path, settings: IngestSettings) -> np.ndarray:
    (image,) = decode_path(path, settings)
    return image.pixels


@pytest.mark.parametrize(
    "syntax", [ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, RLELossless, JPEG2000Lossless]
)
def test_lossless_syntaxes_decode_to_the_same_pixels(
    tmp_path: Path, settings: IngestSettings, syntax: UID
) -> None:
    pixels = _only(write_dicom(tmp_path / "a.dcm", transfer_syntax=syntax), settings)
    assert pixels.dtype == ramp().dtype and pixels.shape == (32, 32)  # identity rescale: stored integers
    np.testing.assert_array_equal(pixels, ramp())


def test_rescale_and_monochrome1(tmp_path: Path, settings: IngestSettings) -> None:
    rescaled = _only(write_dicom(tmp_path / "r.dcm", rescale=(2.0, -1000.0)), settings)
    np.testing.assert_allclose(rescaled, ramp() * 2.0 - 1000.0)
    inverted = _only(write_dicom(tmp_path / "m1.dcm", photometric="MONOCHROME1"), settings)
    np.testing.assert_allclose(inverted, 4095.0 - ramp())  # bright = dense, within the 12-bit range


def test_voi_lut_only_when_configured(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "w.dcm", WindowCenter=1000, WindowWidth=400)
    plain = _only(path, settings_for(tmp_path))
    windowed = _only(path, settings_for(tmp_path, voi_lut=True))
    assert plain.max() == 4095
    assert windowed[:, 0].max() == windowed.min() and windowed[:, -1].min() == windowed.max()  # clipped ends
    assert (np.diff(windowed[0]) >= 0).all() and np.unique(windowed).size < np.unique(plain).size


def test_frame_strategies(tmp_path: Path) -> None:
    frames = np.stack([np.full((8, 8), value, np.uint16) for value in (10, 20, 30, 40, 50)])  # (F, H, W)
    path = write_dicom(tmp_path / "mf.dcm", frames, modality="OT", NumberOfFrames=5)
    picks = {}
    for strategy in ("middle", "n", "mip", "all"):
        images = decode_path(path, settings_for(tmp_path, slice_strategy=strategy))
        picks[strategy] = [(image.frame, float(image.pixels.mean())) for image in images]
    assert picks["middle"] == [(2, 30.0)]
    assert picks["n"] == [(0, 10.0), (2, 30.0), (4, 50.0)]
    assert picks["mip"] == [(-1, 50.0)]
    assert len(picks["all"]) == 5


def test_rgb_and_attributes(tmp_path: Path, settings: IngestSettings) -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200
    path = write_dicom(
        tmp_path / "rgb.dcm", rgb, photometric="RGB", modality="OT", bits_stored=8, PatientAge="045Y"
    )
    (image,) = decode_path(path, settings)
    assert image.pixels.shape == (8, 8, 3) and image.pixels[..., 0].min() == 200
    assert (image.meta.modality, image.meta.age_band, image.meta.sex, image.meta.spacing_row) == (
        "OT",
        "40-49",
        "F",
        0.7,
    )


@pytest.mark.parametrize(
    ("kwargs", "disposition", "reason"),
    [
        ({"modality": "SR"}, "skipped", "no image"),
        ({"no_pixels": True}, "quarantined", "no pixel data"),
        ({"burned_in": "YES"}, "quarantined", "burned-in annotation"),
        ({"pixels": np.zeros((600, 600), np.uint16)}, "quarantined", "too large"),
    ],
)
def test_unusable_dicom(tmp_path: Path, kwargs: dict, disposition: str, reason: str) -> None:
    path = write_dicom(tmp_path / "x.dcm", **kwargs)
    with pytest.raises(UnusableFile) as caught:
        decode_path(path, settings_for(tmp_path, max_pixels=300_000))
    assert (caught.value.disposition, caught.value.reason.split(":")[0]) == (disposition, reason)
    assert str(tmp_path) not in str(caught.value)


def test_burned_in_kept_when_configured(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "b.dcm", burned_in="YES")
    assert len(decode_path(path, settings_for(tmp_path, burned_in="keep"))) == 1


def test_not_dicom_and_non_image_files(tmp_path: Path, settings: IngestSettings) -> None:
    (tmp_path / "scan.dcm").write_bytes(b"\x00" * 10 + b"hello")
    (tmp_path / "notes.txt").write_text("notes")
    with pytest.raises(UnusableFile, match="not DICOM"):
        decode_path(tmp_path / "scan.dcm", settings)
    with pytest.raises(UnusableFile, match="not an image file") as caught:
        decode_path(tmp_path / "notes.txt", settings)
    assert caught.value.disposition == "skipped"


def test_nifti_is_reoriented_and_cleaned(tmp_path: Path) -> None:
    volume = np.arange(4 * 6 * 5, dtype=np.float32).reshape(4, 6, 5)  # (X, Y, Z)
    volume[0, 0, 2] = np.nan
    volume[1, 0, 2] = np.inf
    ras = write_nifti(tmp_path / "ras.nii.gz", volume, np.diag([1.0, 2.0, 3.0, 1.0]))
    flipped = np.diag([-1.0, 2.0, 3.0, 1.0])
    flipped[0, 3] = 3.0  # same world grid, x axis stored right-to-left
    las = write_nifti(tmp_path / "las.nii", volume[::-1].copy(), flipped)
    settings = settings_for(tmp_path)
    (a,), (b,) = decode_path(ras, settings), decode_path(las, settings)
    assert a.frame == 2 and a.pixels.shape == (6, 4)  # middle axial slice, (rows=Y, cols=X)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert np.isfinite(a.pixels).all() and a.pixels.max() == np.nanmax(volume[np.isfinite(volume)])
    assert (a.meta.spacing_row, a.meta.spacing_col) == (2.0, 1.0)
    four_d = write_nifti(tmp_path / "t.nii.gz", np.zeros((4, 4, 3, 2), np.int16))
    assert len(decode_path(four_d, settings_for(tmp_path, slice_strategy="all"))) == 6


def test_plain_images(tmp_path: Path, settings: IngestSettings) -> None:
    sixteen = _only(write_plain(tmp_path / "a.png", ramp(dtype=np.uint16) * 16), settings)
    assert sixteen.max() == 4095 * 16 and sixteen.shape == (32, 32)
    rgb = _only(write_plain(tmp_path / "b.jpg", np.full((16, 16, 3), 120, np.uint8)), settings)
    assert rgb.shape == (16, 16, 3)
    tiff = _only(write_plain(tmp_path / "c.tif", ramp(dtype=np.uint16)), settings)
    np.testing.assert_array_equal(tiff, ramp().astype(np.float32))
