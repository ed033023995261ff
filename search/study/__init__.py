"""Optuna studies: the checks before any trial, one trial's objective, samplers, pruning, budgets, fronts."""
