"""A separate process that registers champions, for the fault suite to SIGKILL or run twice at once.

    python -m tests.fault.registry_worker REGISTRY MODEL_DIR COUNT

Registers the model in MODEL_DIR COUNT times (COUNT 0: forever), printing each version number; a
RadflowError (e.g. the lock stayed busy past its timeout) is printed as `error: ...` with exit code 1.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

from models.registry import Registry
from tasks.common.errors import RadflowError


def register(registry: Registry, model_dir: Path, count: int) -> None:
    """Register `count` versions (0: until killed), each with its sequence number in the decision."""
    for step in itertools.count(1) if count == 0 else range(1, count + 1):
        version = registry.register_champion(
            model_dir,
            metrics={"roc_auc": 0.5 + step / 1e6},
            model_card="# fault-suite model\n",
            lineage={"source": "tests.fault.registry_worker"},
            decision={"promoted": True, "step": step},
        )
        print(version, flush=True)


if __name__ == "__main__":
    root, model_dir, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    try:
        register(Registry(root), model_dir, count)
    except RadflowError as error:
        print(f"error: {error}", flush=True)
        sys.exit(1)
