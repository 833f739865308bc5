"""The train stage (`stage.main`): AlexNet (or a comparison network) trained on the tensor store."""
