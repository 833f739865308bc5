"""radflow orchestration: the command line and the Prefect flows over the DVC pipeline."""
