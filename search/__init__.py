"""convtune's search side: experiment specs, Optuna studies, MLflow tracking, pictures, CLI.

Importing any `search` module first sets the process-wide environment defaults (`ENV_DEFAULTS`; a
value the user set wins), before MLflow or albumentations can read them: the command line, a fresh
worker (`python -m search.parallel.worker`) and the workers' forkserver alike; a forked worker gets
the environment of the `convtune` process that started it.
"""

import logging
import os
import warnings

ENV_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",  # machines may be offline; no usage reports
    "DO_NOT_TRACK": "true",
    "NO_ALBUMENTATIONS_UPDATE": "1",  # no update check over the network
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # no progress bars between trials and results
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # convtune prints its own links
}
for _name, _value in ENV_DEFAULTS.items():
    os.environ.setdefault(_name, _value)

# Trials run by the dozen: Lightning's per-Trainer banners and MLflow's store notices drown the
# progress display. Warnings and errors still come through.
for _name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "mlflow", "alembic"):
    logging.getLogger(_name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
