"""Which params.yaml keys a retrain run's `--set` overrides may change, checked before anything is written.

Overrides arrive as a flow run's parameters, from anyone who reaches the Prefect API (it has no
authentication unless configured), and are written into params.yaml, where later runs keep them. So a
run may change what is trained and how it is judged, and nothing else: not what runs (`retrain.*`
notify hooks), where data comes from or goes (`pacs.*`, `paths.*`, `ingest.source`, `ingest.labels`,
`ingest.dask_address`, `registry.*`, `train.rendezvous`, `train.imagenet_path`), nor how patients are
protected (`ingest.salt_env`, `ingest.burned_in`). Those are changed by editing params.yaml, in git.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flows.preflight import check_params
from tasks.common.errors import RadflowError
from tasks.common.params import load_params

OPEN_SECTIONS = ("preprocess", "train", "evaluate", "promote")  # every key, but those in CLOSED_KEYS
CLOSED_KEYS = frozenset({"train.imagenet_path", "train.rendezvous"})  # a file to load; a host to dial
OPEN_KEYS = frozenset(  # what to train on: how images become slices, which split folders count
    {"seed", "ingest.slice_strategy", "ingest.slices", "ingest.voi_lut", "ingest.predefined_split"}
)
SETTABLE = (
    f"{', '.join(sorted(OPEN_KEYS))}, {', '.join(f'{name}.*' for name in OPEN_SECTIONS)} "
    f"(but {', '.join(sorted(CLOSED_KEYS))})"
)


def is_settable(key: str) -> bool:
    """Whether a run may override `key` (dotted, as in `--set KEY=VALUE`)."""
    section, dot, leaf = key.partition(".")
    in_open_section = bool(dot) and section in OPEN_SECTIONS and re.fullmatch(r"\w+", leaf) is not None
    return key in OPEN_KEYS or (in_open_section and key not in CLOSED_KEYS)


def check_settable(overrides: list[str]) -> None:
    """Refuse the first override of a key a run may not change; the message never repeats its value."""
    for override in overrides:
        key = override.partition("=")[0]
        if not is_settable(key):
            name = key if re.fullmatch(r"[\w.]+", key) else "this override's key"
            raise RadflowError(
                f"--set {name}: a run may not change it (it can name a command, host, path or credentials, "
                f"or protects patients); edit params.yaml to change it. A run may set: {SETTABLE}"
            )


def settable_params(path: Path, overrides: list[str]) -> dict[str, Any]:
    """params.yaml at `path` with `overrides` applied, after checking that a run may set each of them,
    and every section parsed strictly; raises RadflowError before anything is written."""
    check_settable(overrides)
    params = load_params(path, overrides=overrides)
    check_params(params)
    return params
