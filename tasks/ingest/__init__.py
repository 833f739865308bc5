"""The ingest stage (`stage.main`): DICOM / NIfTI / plain images in, a pseudonymised image store and
manifest out. `runner.decode_files` is the isolated per-file decoding that predict uses too."""
