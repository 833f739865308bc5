"""The `evaluate` section of params.yaml (every key is documented there), on its own so that the
evaluation, its checks and its writers all import it without importing one another."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from tasks.common.metrics import ThresholdMethod
from tasks.common.params import InvalidValue, section

Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]


@section("evaluate")
class EvaluateParams:
    """params.yaml `evaluate` section (see the comments there)."""

    negative_class: Annotated[
        str, Field(min_length=1, description="auto, or the name of the class that means no finding")
    ]
    threshold_method: ThresholdMethod
    target_sensitivity: Annotated[float, Field(gt=0, lt=1)]
    bootstrap_samples: Annotated[int, Field(ge=10)]  # fewer cannot place a 2.5 % percentile
    calibration_bins: Positive
    subgroup_min_images: Count
    gradcam_per_kind: Count
    batch_size: Positive
    baseline_grid: Positive
    baseline_max_train_images: Positive
    baseline_folds: Annotated[int, Field(ge=2)]
    chance_auc_margin: Annotated[float, Field(ge=0, le=0.5)]
    chance_loss_fraction: Annotated[float, Field(gt=0, le=1)]
    min_images_per_side: Count

    @model_validator(mode="after")
    def _fit_together(self) -> EvaluateParams:
        if self.baseline_max_train_images < self.baseline_folds:
            raise InvalidValue(
                "baseline_max_train_images",
                self.baseline_max_train_images,
                f"at least evaluate.baseline_folds ({self.baseline_folds}): one image per fold",
            )
        return self
