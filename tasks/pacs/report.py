"""The result report radflow sends back to the PACS: a DICOM Comprehensive SR (TID 1500 measurement
report) built with highdicom, as a new series of the classified study.

It states the finding (the predicted class of the study's most suspicious image), the probability of
an abnormal finding, the operating threshold and the decision at it, the algorithm (model name and
registry version), and, unless configured otherwise, that it is not for diagnostic use. It carries the
study's patient and study identifiers, as any object of that study must: it is only ever sent to the
PACS, never written to a file or a log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

SCHEME = "99RADFLOW"  # private coding scheme for radflow's own concepts
FINDING = hd.sr.CodedConcept("121071", "DCM", "Finding")
PROBABILITY = hd.sr.CodedConcept("RF001", SCHEME, "Probability of abnormal finding")
THRESHOLD = hd.sr.CodedConcept("RF002", SCHEME, "Operating threshold")
DECISION = hd.sr.CodedConcept("RF003", SCHEME, "Decision at operating threshold")
ABNORMAL = hd.sr.CodedConcept("263654008", "SCT", "Abnormal")
NORMAL = hd.sr.CodedConcept("17621005", "SCT", "Normal")
COMMENT = hd.sr.CodedConcept("121106", "DCM", "Comment")
NO_UNITS = hd.sr.CodedConcept("1", "UCUM", "no units")
PROCEDURE = hd.sr.CodedConcept("363679005", "SCT", "Imaging procedure")
SERIES_NUMBER = 9901  # high, so the report series sorts after the acquired ones
MAX_LO = 64  # DICOM LO / code meaning length


@dataclass(frozen=True)
class StudyResult:
    """What radflow concluded about one study."""

    finding: str  # class name predicted for the study's most suspicious image
    probability: float  # highest probability of "not the negative class" over the study's images
    threshold: float  # operating threshold chosen on validation (registry metrics), as a probability
    abnormal: bool  # predict's decision for that image at the threshold (made on log-odds, exactly)
    model_name: str  # e.g. "radflow alexnet"
    model_version: int  # registry version
    images: int  # images of the study that were classified


# Type 2 study and patient attributes the SR copies from its evidence: present, if empty, in any SR.
TYPE2_COPIED = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "StudyDate", "StudyTime",
    "AccessionNumber", "ReferringPhysicianName",
)  # fmt: skip


def build_report(evidence: Sequence[Dataset], result: StudyResult, disclaimer: str) -> Dataset:
    """The SR for one study; `evidence` are the classified instances' headers (all of that study)."""
    evidence = [_with_type2(dataset) for dataset in evidence]
    algorithm = hd.sr.AlgorithmIdentification(name=result.model_name, version=f"v{result.model_version}")
    finding = hd.sr.CodedConcept(result.finding[:16], SCHEME, result.finding[:MAX_LO])
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="radflow classification"),
        algorithm_id=algorithm,
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(FINDING, finding),
            hd.sr.QualitativeEvaluation(DECISION, ABNORMAL if result.abnormal else NORMAL),
        ],
        measurements=[
            hd.sr.Measurement(PROBABILITY, round(result.probability, 4), NO_UNITS, algorithm_id=algorithm),
            hd.sr.Measurement(THRESHOLD, round(result.threshold, 4), NO_UNITS, algorithm_id=algorithm),
        ],
    )
    if disclaimer:
        group[0].ContentSequence.append(  # the group container (TID 1501)
            hd.sr.TextContentItem(COMMENT, disclaimer[:1024], relationship_type="HAS OBS CONTEXT")
        )
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(), name="radflow", model_name=result.model_name[:MAX_LO]
    )
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )
    content = hd.sr.MeasurementReport(
        observation_context=context, procedure_reported=PROCEDURE, imaging_measurements=[group]
    )
    description = "radflow AI result" + (f" - {disclaimer}" if disclaimer else "")
    return hd.sr.ComprehensiveSR(
        evidence=list(evidence),
        content=content[0],
        series_instance_uid=generate_uid(),
        series_number=SERIES_NUMBER,
        series_description=description[:MAX_LO],
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="radflow",
        is_complete=True,
    )


def _with_type2(dataset: Dataset) -> Dataset:
    """A copy of `dataset` with every attribute in TYPE2_COPIED present (empty where the source lacks it)."""
    copy = Dataset(dataset)
    if hasattr(dataset, "file_meta"):
        copy.file_meta = dataset.file_meta
    for keyword in TYPE2_COPIED:
        if keyword not in copy:
            setattr(copy, keyword, "")
    return copy
