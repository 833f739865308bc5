"""The evaluate stage (`stage.main`): test metrics, plots, Grad-CAM, report and model card."""
