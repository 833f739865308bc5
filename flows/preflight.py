"""Every params.yaml section checked before a retrain run starts anything (a Prefect server, DVC, a
stage): a bad value anywhere is one line naming the valid choices and exit code 1, not a failed flow
run with a traceback, and not a failure at the evaluate stage after hours of training.

Each stage still parses its own section when it runs; this only runs the same strict parsers early.
"""

from __future__ import annotations

from typing import Any

from flows.settings import RetrainParams
from flows.study.params import StudyParams
from models.registry.mlflow_mirror import RegistryParams
from tasks.common.params import parse_section
from tasks.common.paths import ProjectPaths
from tasks.demo_data import DemoParams
from tasks.evaluate.params import EvaluateParams
from tasks.ingest.settings import IngestSettings
from tasks.monitor.settings import MonitorParams
from tasks.pacs.settings import PacsSettings, endpoint
from tasks.predict import PredictParams
from tasks.preprocess.stage import PreprocessParams
from tasks.promote.gate import PromoteParams
from tasks.train.params import TrainParams

SECTIONS: dict[str, type] = {
    "paths": ProjectPaths,
    "demo": DemoParams,
    "ingest": IngestSettings,
    "preprocess": PreprocessParams,
    "train": TrainParams,
    "evaluate": EvaluateParams,
    "promote": PromoteParams,
    "registry": RegistryParams,
    "predict": PredictParams,
    "retrain": RetrainParams,
    "pacs": PacsSettings,
    "monitor": MonitorParams,
    "study": StudyParams,
}


def check_params(params: dict[str, Any]) -> None:
    """Parse every section strictly (and the PACS URL, when set); the first bad value raises RadflowError."""
    for name, cls in SECTIONS.items():
        parse_section(params, name, cls)
    pacs = parse_section(params, "pacs", PacsSettings)
    if pacs.url:
        endpoint(pacs)
