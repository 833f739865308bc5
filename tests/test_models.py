"""models/: every network variant, the ImageNet-checkpoint path, model files and model inputs."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from models import build_model, gradcam_layer, input_spec, load_model, save_model, to_model_input
from models.registry import Registry
from models.weights import default_imagenet_path
from tasks.common.errors import RadflowError
from tasks.train.network import build_network
from tasks.train.params import TrainParams
from tests.defaults import network_config, train_params

# The state-dict keys and shapes of torchvision's alexnet-owt-7be5be79.pth.
TORCHVISION_SHAPES = {
    "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
    "classifier.1.weight": (4096, 9216), "classifier.1.bias": (4096,),
    "classifier.4.weight": (4096, 4096), "classifier.4.bias": (4096,),
    "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
}  # fmt: skip
HEAD = {"classifier.6.weight", "classifier.6.bias"}

VARIANTS = [
    {"layout": layout, "norm": norm, "activation": activation}
    for layout in ("torchvision", "original")
    for norm in ("lrn", "batchnorm", "batchnorm_fc", "none")
    for activation in ("relu", "leaky_relu")
] + [{"head": "max"}, {"head": "attention"}, {"name": "resnet18"}, {"name": "densenet121"}]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(v.values()))
def test_every_variant_builds_and_runs(variant: dict[str, Any]) -> None:
    config = network_config(**variant, in_channels=1, num_classes=3, hidden_units=32, dropout=0.3)
    model = build_model(config.to_dict()).eval()
    logits = model(torch.rand(2, 1, 64, 64))
    assert logits.shape == (2, 3)
    model.get_submodule(gradcam_layer({"architecture": config.to_dict()}))  # the Grad-CAM layer exists


def test_torchvision_layout_has_the_checkpoint_keys_and_shapes() -> None:
    model = build_model(network_config(norm="none", head="flatten", hidden_units=4096, num_classes=1000))
    assert {key: tuple(value.shape) for key, value in model.state_dict().items()} == TORCHVISION_SHAPES


def test_original_layout_is_the_2012_network() -> None:
    model = build_model(network_config(layout="original", norm="lrn"))
    convs = [layer for layer in model.modules() if isinstance(layer, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert convs[0].kernel_size == (11, 11) and convs[0].stride == (4, 4)
    assert sum(isinstance(m, torch.nn.LocalResponseNorm) for m in model.modules()) == 2


@pytest.fixture(scope="module")
def imagenet_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor], str]:
    """A torchvision-format AlexNet checkpoint made here (random values, the real keys and shapes)."""
    generator = torch.Generator().manual_seed(0)
    state = {key: torch.randn(shape, generator=generator) for key, shape in TORCHVISION_SHAPES.items()}
    path = tmp_path_factory.mktemp("hub") / "alexnet-owt.pth"
    torch.save(state, path)
    return path, state, hashlib.sha256(path.read_bytes()).hexdigest()


def imagenet_params(path: Path, digest: str, **extra: Any) -> TrainParams:
    return train_params(
        weights="imagenet", imagenet_path=str(path), imagenet_sha256=digest, hidden_units=4096, **extra
    )


@pytest.mark.parametrize("norm", ["none", "batchnorm", "batchnorm_fc"])
def test_imagenet_weights_arrive_and_only_the_new_head_is_fresh(
    imagenet_file: tuple[Path, dict[str, torch.Tensor], str], tmp_path: Path, norm: str
) -> None:
    path, state, digest = imagenet_file
    torch.manual_seed(1)
    network = build_network(imagenet_params(path, digest, norm=norm), num_classes=3, registry_root=tmp_path)
    loaded = network.model.state_dict()
    for key, tensor in state.items():
        if key not in HEAD:
            assert torch.equal(loaded[key], tensor), key
    # Everything the checkpoint lacks is freshly initialised: the 3-class head, plus batch norm if asked for.
    fresh = {key for key in loaded if key not in state or key in HEAD}
    assert fresh >= HEAD and all(
        key in HEAD or re.fullmatch(r"(features|classifier)\.\d+\.0\.\w+", key) for key in fresh
    )
    torch.manual_seed(1)
    scratch = build_model(network.config).state_dict()
    assert all(torch.equal(loaded[key], scratch[key]) for key in fresh)
    assert network.pretrained


@pytest.mark.parametrize("head", ["max", "attention"])
def test_a_pooling_head_takes_any_input_size_with_256_fc6_inputs(head: str) -> None:
    model = build_model(network_config(head=head, in_channels=1, num_classes=3, hidden_units=32)).eval()
    fc6 = model.get_submodule("classifier.1")
    assert isinstance(fc6, torch.nn.Linear) and fc6.in_features == 256  # conv5's channels, not 9,216
    for size in (64, 96, 256):
        assert model(torch.rand(2, 1, size, size)).shape == (2, 3)
    # One position's finding counts wherever it is: a bright spot moved elsewhere gives the same max.
    if head == "max":
        pool = model.get_submodule("pool")
        spot = torch.zeros(1, 256, 5, 5)
        spot[0, :, 1, 1] = 1.0
        moved = torch.roll(spot, shifts=(2, 2), dims=(2, 3))
        assert torch.equal(pool(spot), pool(moved))


@pytest.mark.parametrize("head", ["max", "attention"])
def test_imagenet_conv_weights_arrive_in_a_pooling_head_and_fc6_is_fresh_with_a_log_line(
    imagenet_file: tuple[Path, dict[str, torch.Tensor], str],
    tmp_path: Path,
    head: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, state, digest = imagenet_file
    network = build_network(
        imagenet_params(path, digest, norm="none", head=head), num_classes=3, registry_root=tmp_path
    )
    loaded = network.model.state_dict()
    assert all(torch.equal(loaded[key], state[key]) for key in state if key.startswith("features."))
    assert torch.equal(loaded["classifier.4.weight"], state["classifier.4.weight"])  # FC7 fits as is
    assert loaded["classifier.1.weight"].shape == (4096, 256) and network.pretrained
    err = capsys.readouterr().err.replace("\n", " ")
    assert "classifier.1.weight: (4096, 9216) -> (4096, 256)" in " ".join(err.split())


def test_a_wrong_imagenet_file_is_refused_by_its_hash(
    imagenet_file: tuple[Path, dict[str, torch.Tensor], str], tmp_path: Path
) -> None:
    path, _, digest = imagenet_file
    wrong = "0" * 64 if not digest.startswith("0") else "1" * 64
    with pytest.raises(RadflowError, match="SHA-256"):
        build_network(imagenet_params(path, wrong), num_classes=3, registry_root=tmp_path)


def test_missing_imagenet_file_names_where_to_put_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(RadflowError, match=str(default_imagenet_path())):
        build_network(train_params(weights="imagenet"), num_classes=3, registry_root=tmp_path)
    with pytest.raises(
        RadflowError, match=r"^train.weights: invalid value 'imagenett'; valid: none \| imagenet"
    ):
        build_network(train_params(weights="imagenett"), num_classes=3, registry_root=tmp_path)


def test_saved_model_round_trips(tmp_path: Path) -> None:
    architecture = network_config(in_channels=3, num_classes=2, hidden_units=16).to_dict()
    model = build_model(architecture).eval()
    config = {"architecture": architecture, "classes": ["a", "b"], "image_size": 64, "input": input_spec(3)}
    save_model(model, config, tmp_path / "model")
    loaded, loaded_config = load_model(tmp_path / "model")
    batch = to_model_input(torch.rand(2, 1, 64, 64), loaded_config)  # grayscale -> 3 normalised channels
    assert batch.shape == (2, 3, 64, 64) and loaded_config == config
    assert torch.equal(model(batch), loaded(batch))
    with pytest.raises(RadflowError, match="no model in"):
        load_model(tmp_path / "nowhere")


def test_registry_warm_start_loads_the_champion(tmp_path: Path) -> None:
    params = train_params(in_channels=1, hidden_units=16, weights="registry:champion")
    architecture = params.model_config(num_classes=3).to_dict()
    champion = build_model(architecture)
    config = {
        "architecture": architecture,
        "classes": ["a", "b", "c"],
        "image_size": 64,
        "input": input_spec(1),
    }
    save_model(champion, config, tmp_path / "candidate")
    registry = Registry(tmp_path / "registry")
    registry.register_champion(tmp_path / "candidate", metrics={}, model_card="", lineage={}, decision={})
    network = build_network(params, num_classes=3, registry_root=tmp_path / "registry")
    assert network.pretrained
    for key, tensor in champion.state_dict().items():
        assert torch.equal(network.model.state_dict()[key], tensor), key
    with pytest.raises(RadflowError, match="no registry version"):
        build_network(
            replace(params, weights="registry:v9"), num_classes=3, registry_root=tmp_path / "registry"
        )
