"""Networks (configurable AlexNet, MONAI ResNet-18 / DenseNet-121), weight loading and model files.

The stable API other stages use: `build_model`, `load_model`, `to_model_input`, `gradcam_layer`.
"""

from models.config import ModelConfig
from models.inputs import input_spec, to_model_input
from models.store import load_model, read_config, save_model
from models.zoo import build_model, conv_blocks, gradcam_layer, split_backbone_head, top_layers

__all__ = [
    "ModelConfig",
    "build_model",
    "conv_blocks",
    "gradcam_layer",
    "input_spec",
    "load_model",
    "read_config",
    "save_model",
    "split_backbone_head",
    "to_model_input",
    "top_layers",
]
