"""convtune's search side: experiment specs, Optuna studies, MLflow tracking, pictures, CLI."""

import logging
import os
import warnings

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

# Trials run by the dozen: Lightning's per-Trainer banners and MLflow's store notices drown the
# progress display. Warnings and errors still come through.
for _name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "mlflow", "alembic"):
    logging.getLogger(_name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
