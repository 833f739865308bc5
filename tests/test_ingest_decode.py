"""Per-file decoding (`decode_path`): pixel pipeline, skip/quarantine reasons, NIfTI and plain images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
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

# The ramp's columns (0, 132, 264, ..., 1189, 1321, ...) through Window Center 1000, Width 401: LINEAR
# (PS3.3 C.11.2.1.2.1) maps 799.5 < x <= 1199.5 onto the output range, linearly; below and above clip.
# The output range is pydicom's: the stored values' nominal range (0-4095 for 12 bits), rescaled when
# the file rescales. MONOCHROME1 is then mirrored within that range (bright = dense). By hand, one row:
WINDOWED = {
    ("MONOCHROME2", None): [0.0] * 7 + [1284.80625, 2636.15625, 3987.50625] + [4095.0] * 22,
    ("MONOCHROME1", None): [4095.0] * 7 + [2810.19375, 1458.84375, 107.49375] + [0.0] * 22,
    # Rescale 2x - 1000 first: columns 0..1189 become -1000, -736, ..., 850, 1114, 1378; range -1000-7190.
    ("MONOCHROME2", (2.0, -1000.0)): [-1000.0] * 7 + [33.9875, 5439.3875] + [7190.0] * 23,
    ("MONOCHROME1", (2.0, -1000.0)): [7190.0] * 7 + [6156.0125, 750.6125] + [-1000.0] * 23,
}


@pytest.fixture
def ingest_settings(tmp_path: Path) -> IngestSettings:
    """params.yaml's ingest settings (voi_lut off), source tmp_path/raw."""
    return settings_for(tmp_path)


def _only(path: Path, settings: IngestSettings) -> np.ndarray:
    (image,) = decode_path(path, settings)
    return image.pixels


@pytest.mark.parametrize(
    "syntax", [ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, RLELossless, JPEG2000Lossless]
)
def test_lossless_syntaxes_decode_to_the_same_pixels(
    tmp_path: Path, ingest_settings: IngestSettings, syntax: UID
) -> None:
    pixels = _only(write_dicom(tmp_path / "a.dcm", transfer_syntax=syntax), ingest_settings)
    assert pixels.dtype == ramp().dtype and pixels.shape == (32, 32)  # identity rescale: stored integers
    np.testing.assert_array_equal(pixels, ramp())


def test_rescale_and_monochrome1(tmp_path: Path, ingest_settings: IngestSettings) -> None:
    rescaled = _only(write_dicom(tmp_path / "r.dcm", rescale=(2.0, -1000.0)), ingest_settings)
    np.testing.assert_allclose(rescaled, ramp() * 2.0 - 1000.0)
    inverted = _only(write_dicom(tmp_path / "m1.dcm", photometric="MONOCHROME1"), ingest_settings)
    np.testing.assert_allclose(inverted, 4095.0 - ramp())  # bright = dense, within the 12-bit range


@pytest.mark.parametrize(
    ("photometric", "rescale"),
    [
        ("MONOCHROME2", None),
        ("MONOCHROME1", None),
        ("MONOCHROME2", (2.0, -1000.0)),
        ("MONOCHROME1", (2.0, -1000.0)),  # the window's output is in the rescaled range: mirrored there
    ],
)
def test_voi_window_then_monochrome1_inversion_by_hand(
    tmp_path: Path, photometric: str, rescale: tuple[float, float] | None
) -> None:
    path = write_dicom(
        tmp_path / "w.dcm", photometric=photometric, rescale=rescale, WindowCenter=1000, WindowWidth=401
    )
    plain = _only(path, settings_for(tmp_path))  # ingest.voi_lut false: the window is not applied
    slope, intercept = rescale or (1.0, 0.0)
    unwindowed = ramp() * slope + intercept
    expected_plain = (
        unwindowed.max() + unwindowed.min() - unwindowed if photometric == "MONOCHROME1" else unwindowed
    )
    np.testing.assert_allclose(plain, expected_plain)
    windowed = _only(path, settings_for(tmp_path, voi_lut=True))
    assert windowed.dtype == np.float32 and windowed.shape == (32, 32)
    expected = np.tile(WINDOWED[(photometric, rescale)], (32, 1))  # every row of the ramp is the same
    np.testing.assert_allclose(windowed, expected, rtol=0, atol=1e-3)


def test_a_voi_lut_table_then_monochrome1_inversion_by_hand(tmp_path: Path) -> None:
    """A VOI LUT Sequence (a table, not a window) with 12-bit output: x -> min(2x, 4095), then mirrored."""
    table = Dataset()
    table.add_new("LUTDescriptor", "US", [4096, 0, 12])  # entries, first stored value mapped, bits out
    table.add_new("LUTData", "US", [min(2 * x, 4095) for x in range(4096)])
    path = write_dicom(tmp_path / "t.dcm", photometric="MONOCHROME1", VOILUTSequence=[table])
    windowed = _only(path, settings_for(tmp_path, voi_lut=True))
    # The ramp's columns 0, 132, 264, ..., 1981 doubled, mirrored: 4095 - 2x; from 2114 on, 4095 - 4095.
    row = [4095, 3831, 3567, 3303, 3039, 2775, 2509, 2245, 1981, 1717, 1453, 1189, 925, 661, 397, 133]
    np.testing.assert_array_equal(windowed, np.tile(row + [0] * 16, (32, 1)))


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


def test_rgb_and_attributes(tmp_path: Path, ingest_settings: IngestSettings) -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200
    path = write_dicom(
        tmp_path / "rgb.dcm", rgb, photometric="RGB", modality="OT", bits_stored=8, PatientAge="045Y"
    )
    (image,) = decode_path(path, ingest_settings)
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


def test_not_dicom_and_non_image_files(tmp_path: Path, ingest_settings: IngestSettings) -> None:
    (tmp_path / "scan.dcm").write_bytes(b"\x00" * 10 + b"hello")
    (tmp_path / "notes.txt").write_text("notes")
    with pytest.raises(UnusableFile, match="not DICOM"):
        decode_path(tmp_path / "scan.dcm", ingest_settings)
    with pytest.raises(UnusableFile, match="not an image file") as caught:
        decode_path(tmp_path / "notes.txt", ingest_settings)
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


def test_plain_images(tmp_path: Path, ingest_settings: IngestSettings) -> None:
    sixteen = _only(write_plain(tmp_path / "a.png", ramp(dtype=np.uint16) * 16), ingest_settings)
    assert sixteen.max() == 4095 * 16 and sixteen.shape == (32, 32)
    rgb = _only(write_plain(tmp_path / "b.jpg", np.full((16, 16, 3), 120, np.uint8)), ingest_settings)
    assert rgb.shape == (16, 16, 3)
    tiff = _only(write_plain(tmp_path / "c.tif", ramp(dtype=np.uint16)), ingest_settings)
    np.testing.assert_array_equal(tiff, ramp().astype(np.float32))
