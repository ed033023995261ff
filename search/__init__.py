"""convtune's search side: experiment specs, Optuna studies, MLflow tracking, pictures, CLI."""
