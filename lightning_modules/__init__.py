"""CNN LightningModules, models, data and augmentation for convtune (no Optuna, no MLflow here)."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations: no update check over the network
