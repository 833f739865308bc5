"""The ingest stage: DICOM / NIfTI / plain images in, a pseudonymised image store and manifest out.

`main(params)` is what `radflow stage ingest` calls; `decode_path(path, settings)` is the reusable
per-file decoder (predict uses it) with `load_settings(params)` to build its settings.

The stage entry points are imported on first use (PEP 562), so decoding worker processes, which import
only `tasks.ingest.decode`, start without the stage's table machinery (pandas).
"""

from typing import TYPE_CHECKING, Any

from tasks.ingest.decode import decode_path
from tasks.ingest.records import DecodedImage, ImageMeta, UnusableFile
from tasks.ingest.settings import IngestSettings, load_settings

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    """`main` and `run_ingest` come from `tasks.ingest.stage`, loaded when first asked for."""
    if name in ("main", "run_ingest"):
        from tasks.ingest import stage

        return getattr(stage, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
