"""The ingest stage (`stage.main`): DICOM / NIfTI / plain images in, a pseudonymised image store and
manifest out. `decode.decode_path` is the reusable per-file decoder that predict uses too."""
