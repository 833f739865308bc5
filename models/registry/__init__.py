"""The model registry: the only code that writes `paths.registry` (see store.py for the on-disk layout)."""

from models.registry.lineage import collect_lineage
from models.registry.store import FAULT_ENV, RegisteredModel, Registry

__all__ = ["FAULT_ENV", "RegisteredModel", "Registry", "collect_lineage"]
