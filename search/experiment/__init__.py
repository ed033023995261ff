"""The experiment file: YAML read safely, validated into an `ExperimentSpec`, its search space sampled."""
