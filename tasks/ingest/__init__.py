"""The ingest stage: DICOM / NIfTI / plain images in, a pseudonymised image store and manifest out.

`main(params)` is what `radflow stage ingest` calls; `decode_path(path, settings)` is the reusable
per-file decoder (predict uses it) with `load_settings(params)` to build its settings.
"""

from tasks.ingest.decode import decode_path
from tasks.ingest.records import DecodedImage, ImageMeta, UnusableFile
from tasks.ingest.settings import IngestSettings, load_settings
from tasks.ingest.stage import main, run_ingest

__all__ = [
    "DecodedImage",
    "ImageMeta",
    "IngestSettings",
    "UnusableFile",
    "decode_path",
    "load_settings",
    "main",
    "run_ingest",
]
