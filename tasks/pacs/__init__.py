"""Where radflow meets a PACS: pull new studies in (DICOMweb or DIMSE), receive pushed ones, push results out.

Not a DVC stage: raw patient data never enters the DVC cache. `pull` writes plain DICOM files into
`ingest.source`, and from there the pipeline runs as for any archive.
"""
