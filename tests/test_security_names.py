"""What reaches model configs and weights checks (issue #21, items 8 and 9): class names from folders or
the labels CSV are restricted to a safe character set, the MONAI bundle writer quotes any other name so
MONAI never evaluates it, and the ImageNet check needs the full SHA-256."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from monai.bundle import ConfigParser

from models.bundle import inference_json, metadata_json
from tasks.common.errors import RadflowError
from tasks.common.params import parse_section
from tasks.ingest.labels import LabelIndex
from tasks.train.params import TrainParams
from tests.defaults import repo_params
from tests.ingest_helpers import settings_for

SALT = b"labels-salt-for-tests-32-bytes-long"


def payload(marker: Path) -> str:
    """A class name MONAI would run as Python if it reached a config unquoted."""
    return f"$open({str(marker)!r}, 'w').write('ran')"


def test_a_dollar_class_name_in_the_labels_csv_is_refused_by_row(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    evil = payload(tmp_path / "ran")
    (tmp_path / "raw" / "labels.csv").write_text(f'path,label\na.png,normal\nb.png,"{evil}"\n')
    with pytest.raises(RadflowError, match="data row 2: its label is not a valid class name") as refused:
        LabelIndex(settings_for(tmp_path, labels="labels.csv"), SALT)
    assert "open(" not in str(refused.value) and "\n" not in str(refused.value)


def test_a_class_folder_with_other_characters_is_refused_by_name(tmp_path: Path) -> None:
    index = LabelIndex(settings_for(tmp_path, labels="folders"), SALT)
    assert index.lookup("train/Pleural effusion (left)/x.png").label == "Pleural effusion (left)"
    with pytest.raises(RadflowError, match=r"class folder '\$x' in ingest.source: not a valid class name"):
        index.lookup("train/$x/y.png")
    with pytest.raises(RadflowError, match="rename the folder") as refused:
        index.lookup("a\nb/y.png")
    assert "\n" not in str(refused.value)


def test_the_bundle_writer_quotes_a_class_name_monai_would_evaluate(tmp_path: Path) -> None:
    evil = payload(tmp_path / "ran")
    config: dict[str, Any] = {
        "architecture": {"name": "alexnet"},
        "classes": [evil, "@network", "%macro.json", "normal"],
        "image_size": 32,
        "input": {"channels": 1, "mean": [0.5], "std": [0.25]},
    }
    inference = inference_json(config, 0.5, 99.5)
    metadata = metadata_json("m", 1, config, {}, "# card\n", "0" * 64)
    quoted = [json.dumps(evil), '"@network"', '"%macro.json"', "normal"]
    assert inference["classes"] == quoted and metadata["pred_classes"] == quoted
    assert ConfigParser(inference).get_parsed_content("classes") == quoted  # MONAI resolves it as data
    parsed = ConfigParser(metadata).get_parsed_content("network_data_format")
    assert parsed["outputs"]["pred"]["channel_def"]["0"] == json.dumps(evil)
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("digest", ["", "7be5be79", "7be5be79" * 7 + "7be5be7z"])
def test_the_imagenet_check_needs_the_full_sha256(digest: str) -> None:
    params = repo_params()
    params["train"]["imagenet_sha256"] = digest
    with pytest.raises(RadflowError, match=r"train\.imagenet_sha256: invalid value .*64 hex digits"):
        parse_section(params, "train", TrainParams)


def test_params_yaml_pins_torchvisions_full_alexnet_digest() -> None:
    digest = parse_section(repo_params(), "train", TrainParams).imagenet_sha256
    assert digest == "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02"
