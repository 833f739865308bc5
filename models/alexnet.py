"""Configurable AlexNet: the torchvision layout (ImageNet-checkpoint compatible) and the 2012 original.

State-dict keys of the torchvision layout are those of `alexnet-owt-7be5be79.pth` whatever the
normalisation: conv layers stay at features.0/3/6/8/10 and linear layers at classifier.1/4/6, because a
normalisation layer shares its slot with the activation (`features.1 = Sequential(norm, act)`) instead
of shifting the indices. So ImageNet weights load into the batch-norm and LRN variants too.
"""

from __future__ import annotations

import torch
from torch import nn

from models.config import ModelConfig

# (out_channels, kernel, stride, padding, max-pool after) per conv layer.
LAYOUTS = {
    "torchvision": [(64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False),
                    (256, 3, 1, 1, False), (256, 3, 1, 1, True)],
    "original": [(96, 11, 4, 2, True), (256, 5, 1, 2, True), (384, 3, 1, 1, False),
                 (384, 3, 1, 1, False), (256, 3, 1, 1, True)],
}  # fmt: skip
LRN_LAYERS = 2  # Krizhevsky et al. 2012 normalise the responses of conv1 and conv2 only


def _activation(config: ModelConfig) -> nn.Module:
    if config.activation == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=True)
    return nn.ReLU(inplace=True)


def _conv_slot(config: ModelConfig, index: int, channels: int) -> nn.Module:
    """The module after conv `index`: activation alone, or normalisation and activation in one slot."""
    act = _activation(config)
    if config.norm in ("batchnorm", "batchnorm_fc"):
        return nn.Sequential(nn.BatchNorm2d(channels), act)
    if config.norm == "lrn" and index < LRN_LAYERS:
        # 2012 paper: ReLU, then LRN (size 5, alpha 1e-4, beta 0.75, k 2).
        return nn.Sequential(act, nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))
    return act


def _hidden_slot(config: ModelConfig, units: int) -> nn.Module:
    """The module after a hidden fully connected layer: activation, with batch norm first (batchnorm_fc).

    Why: FC6 sums 9,216 non-negative inputs (at small images the adaptive pool repeats each conv5 value
    up to 9 times), so one Adam step of size lr on every weight moves a unit's pre-activation by about
    lr x 9,216 x its mean input, more than its whole initial spread even at lr 1e-4: the logits swing,
    units die, and the loss sits at ln K. Batch norm removes that common shift and rescales, so the
    step size no longer depends on the fan-in. Sharing the activation's slot keeps ImageNet keys.
    """
    if config.norm == "batchnorm_fc":
        return nn.Sequential(nn.BatchNorm1d(units), _activation(config))
    return _activation(config)


class AttentionPool(nn.Module):
    """Gated attention pooling over the positions of a feature map (Ilse et al. 2018, multiple-instance
    learning): (B, C, H, W) -> (B, C), a weighted mean whose weights the network learns per position, so
    one position holding a finding can carry the image, wherever it is."""

    def __init__(self, channels: int, hidden: int = 128) -> None:
        super().__init__()
        self.value = nn.Linear(channels, hidden)
        self.gate = nn.Linear(channels, hidden)
        self.score = nn.Linear(hidden, 1)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        positions = maps.flatten(2).transpose(1, 2)  # (B, H * W, C)
        scores = self.score(torch.tanh(self.value(positions)) * torch.sigmoid(self.gate(positions)))
        return (torch.softmax(scores, dim=1) * positions).sum(dim=1)  # (B, C)


def _pool(config: ModelConfig, channels: int) -> tuple[nn.Module, int]:
    """The module between conv5 and FC6, and FC6's input width.

    flatten (torchvision's): a 6 x 6 grid, each cell with its own FC6 weights (9,216 inputs for 256
    channels): the head can learn where things are, and memorise a small data set's layout. max /
    attention: one C-vector per image whatever the input size (256 inputs), the same weights for every
    position: a finding counts wherever it is, and a larger input costs no head parameters.
    """
    if config.head == "max":
        return nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(1)), channels
    if config.head == "attention":
        return AttentionPool(channels), channels
    # any input >= 63 px gives a (B, C, 6, 6) map
    return nn.Sequential(nn.AdaptiveAvgPool2d((6, 6)), nn.Flatten(1)), channels * 6 * 6


class AlexNet(nn.Module):
    """AlexNet with switchable layout, normalisation, activation, head pooling, dropout, input channels
    and classes."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = config.in_channels
        for index, (out, kernel, stride, padding, pool) in enumerate(LAYOUTS[config.layout]):
            layers += [nn.Conv2d(channels, out, kernel, stride, padding), _conv_slot(config, index, out)]
            if pool:
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2))  # overlapping pooling
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool, pooled = _pool(config, channels)
        hidden = config.hidden_units
        self.classifier = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(pooled, hidden),
            _hidden_slot(config, hidden),
            nn.Dropout(config.dropout),
            nn.Linear(hidden, hidden),
            _hidden_slot(config, hidden),
            nn.Linear(hidden, config.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))  # (B, num_classes) logits
