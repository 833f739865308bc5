"""The preprocess stage (`stage.main`): MONAI transforms to a fixed-size tensor store, patient splits."""
