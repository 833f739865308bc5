"""radflow pipeline stages: one module (or small package) per DVC stage."""
