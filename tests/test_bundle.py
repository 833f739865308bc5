"""`radflow registry export-bundle`: MONAI's own bundle tools load the bundle, and its inference config
gives the same probabilities as `radflow predict` for the same image."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

import models
from flows.cli import app
from models.registry import Registry
from tasks.predict import predict_files
from tests.defaults import write_params
from tests.project import init_dvc_folder
from tests.tiny_pipeline import CLASSES, project_params, register_tiny_champion, tiny_config

CARD = "# Model card\n\n## Intended use\n\nResearch on triage of chest radiographs.\n\n## Data summary\n\nx\n"
METRICS = {
    "roc_auc": 0.91,
    "sensitivity": 0.8,
    "specificity": 0.7,
    "threshold": 0.3,
    "ci": {"roc_auc": [0.85, 0.95]},
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, Path, Path]]:
    """A registered (randomly initialised, so not uniform) tiny model, its bundle, and a grayscale PNG."""
    tmp_path = tmp_path_factory.mktemp("bundle")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("RADFLOW_SALT", "test-salt-not-secret-salt-for-tests-32-bytes-long")
    params = project_params(tmp_path)
    init_dvc_folder(write_params(tmp_path, params))  # its dvc.yaml names the artifact
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(3)
    network = models.build_model(tiny_config()["architecture"])
    register_tiny_champion(params, tmp_path / "candidate", network, metrics=METRICS, model_card=CARD)
    result = CliRunner().invoke(app, ["registry", "export-bundle", "champion", str(tmp_path / "bundle")])
    assert result.exit_code == 0, result.output
    rng = np.random.default_rng(0)
    pixels = (np.linspace(0, 200, 90)[None, :] + rng.integers(0, 50, (70, 90))).astype(np.uint8)
    pixels[20:40, 30:60] = 255  # a bright blob; 70 x 90 so the aspect-preserving resize and pad matter
    Image.fromarray(pixels, mode="L").save(tmp_path / "image.png")
    yield params, tmp_path / "bundle", tmp_path / "image.png"
    monkeypatch.undo()


def test_bundle_layout_and_plain_state_dict(exported: tuple[dict, Path, Path]) -> None:
    params, bundle, _ = exported
    assert {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()} == {
        "configs/metadata.json",
        "configs/inference.json",
        "models/model.pt",
        "docs/README.md",
    }
    state = torch.load(bundle / "models/model.pt", weights_only=True)  # no pickle of code
    registered = load_file(
        str(Registry(Path(params["paths"]["registry"])).load(1).path / "model.safetensors")
    )
    assert state.keys() == registered.keys() and all(torch.equal(state[k], registered[k]) for k in state)
    readme = (bundle / "docs/README.md").read_text()
    assert "monai.bundle run" in readme and CARD in readme


def test_monai_parses_the_metadata(exported: tuple[dict, Path, Path]) -> None:
    from monai.bundle import ConfigParser

    _, bundle, _ = exported
    parser = ConfigParser()
    parser.read_meta(str(bundle / "configs/metadata.json"))
    parser.read_config(str(bundle / "configs/inference.json"))
    assert parser["_meta_#version"] == "1.0.0"
    assert parser["_meta_#name"] == "radflow-classifier"
    image = parser["_meta_#network_data_format#inputs#image"]
    assert image["spatial_shape"] == [64, 64] and image["num_channels"] == 1
    pred = parser["_meta_#network_data_format#outputs#pred"]
    assert pred["channel_def"] == {str(i): name for i, name in enumerate(CLASSES)}
    assert parser["_meta_#eval_metrics#roc_auc"] == 0.91
    assert parser["_meta_#intended_use"] == "Research on triage of chest radiographs."
    network = parser.get_parsed_content("network_def")  # instantiated by MONAI from the config
    network.load_state_dict(torch.load(bundle / "models/model.pt", weights_only=True))  # strict: same layers


def test_bundle_inference_matches_radflow_predict(exported: tuple[dict, Path, Path], tmp_path: Path) -> None:
    from monai.bundle import run as run_bundle

    params, bundle, image = exported
    predicted = predict_files(
        [image], params=params, model="champion", out=tmp_path / "p.csv", gradcam_dir=None
    )
    expected = predicted[[f"prob_{name}" for name in CLASSES]].to_numpy()[0]
    assert not np.allclose(expected, 1 / 3, atol=1e-3)  # a real, non-uniform prediction
    out = tmp_path / "bundle-probabilities.json"
    run_bundle(
        config_file=str(bundle / "configs/inference.json"),
        meta_file=str(bundle / "configs/metadata.json"),
        bundle_root=str(bundle),
        image=str(image),
        output_file=str(out),
    )
    got = json.loads(out.read_text())
    assert list(got) == CLASSES
    assert np.allclose([got[name] for name in CLASSES], expected, atol=1e-5), (got, expected)
    assert pd.read_csv(tmp_path / "p.csv")["model_version"].iloc[0] == "v1"


def test_export_refuses_a_non_empty_folder(exported: tuple[dict, Path, Path]) -> None:
    _, bundle, _ = exported
    result = CliRunner().invoke(app, ["registry", "export-bundle", "1", str(bundle)])
    assert result.exit_code == 1 and "not empty" in result.output


def test_a_window_monai_cannot_spell_is_refused_in_one_line(
    exported: tuple[dict, Path, Path], tmp_path: Path
) -> None:
    params, _, _ = exported
    folder = Path.cwd()  # the exported project (the fixture changed into it)
    soft = {**params, "preprocess": {**params["preprocess"], "top_clip": "soft"}}
    write_params(folder, soft)
    try:
        result = CliRunner().invoke(app, ["registry", "export-bundle", "champion", str(tmp_path / "b")])
    finally:
        write_params(folder, params)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "preprocess.window=image, top_clip=soft" in " ".join(result.output.split())
    assert not (tmp_path / "b").exists()
