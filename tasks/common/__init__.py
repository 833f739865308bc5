"""Code every stage shares (one home, listed in every stage's dvc.yaml deps): errors, params, paths,
atomic writes, hashing, the image and tensor stores, metrics and scoring."""
