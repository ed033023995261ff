"""Every name convtune writes into MLflow and Optuna: run tags, trial and study user attrs, metrics.

Other modules read and write these names through the constants here, never as string literals, so
that a name changes in one place and `grep` finds every use. Importing this module costs nothing.
"""

from __future__ import annotations

# --- MLflow run tags --------------------------------------------------------------------------------
TAG_PARENT_RUN = "mlflow.parentRunId"  # MLflow's own: nests a trial's run under its study's run
TAG_RUN_NAME = "mlflow.runName"
TAG_STUDY = "optuna.study"
TAG_TRIAL_NUMBER = "optuna.trial_number"
# a time budget's deadline re-planned the training to this many epochs
TAG_EPOCHS_REPLANNED = "convtune.epochs_replanned"
TAG_STATE = "optuna.state"  # COMPLETE / PRUNED / FAIL (and RUNNING while it runs)
TAG_ROLE = "convtune.role"
ROLE_STUDY = "study"
ROLE_TRIAL = "trial"
ROLE_REPRODUCTION = "reproduction"
ROLE_ENSEMBLE = "ensemble"  # `reproduce --top-k`: the ensemble's run, its members' runs nested under it
TAG_DEVICE = "convtune.device"
TAG_SAMPLED = "convtune.sampled"  # the searched keys, comma-separated
TAG_PRECISION = "convtune.precision"  # what the run trained in; `precision: auto` depends on the machine
TAG_INFEASIBLE = "convtune.infeasible"
TAG_PRUNED_REASON = "convtune.pruned_reason"
TAG_ERROR = "convtune.error"
TAG_STATUS = "convtune.status"  # the study's: running / n_trials / timeout / budget / failures / interrupted
TAG_BEST_TRIAL = "convtune.best_trial"
TAG_REPRODUCTION_OF = "convtune.reproduction_of"
TAG_REPRODUCTION_MATCHES = "convtune.reproduction_matches"
TAG_VERDICT = "convtune.verdict"
TAG_WEIGHTS = "convtune.weights"  # a reproduction's kept weights: raw, ema or swa (weight_averaging)
TAG_ENSEMBLE_RUN = "convtune.ensemble_run"  # on a member's reproduction run: its ensemble's run
TAG_ENSEMBLE_MEMBERS = "convtune.ensemble_members"  # on the ensemble's run: every member run id, in order
TAG_ENSEMBLE_MEMBER_PREFIX = "convtune.ensemble_member."  # + index: one member's run id (a link per member)
TAG_ENSEMBLE_TRIALS = "convtune.ensemble_trials"  # the members' trial numbers, in order
TAG_ENSEMBLE_METHOD = "convtune.ensemble_method"  # greedy / average
TAG_ENSEMBLE_SELECTED_BY = "convtune.ensemble_selected_by"  # accuracy / nll: what chose the method
TAG_ENSEMBLE_GREEDY_MARGIN = "convtune.ensemble_greedy_margin"  # standard errors greedy had to win by
TAG_ENSEMBLE_WEIGHTS = "convtune.ensemble_weights"  # one weight per member, in order (0: left out)
TAG_TTA = "convtune.tta"  # a reproduction's test-time augmentation: its transforms, or "off"
TAG_OVER_BUDGET = "convtune.over_budget"  # why a trial was not trained: its cost is over search.constraints
TAG_ON_FRONT = "convtune.pareto_front"  # a Pareto study's trial run: "true" when on the front at the end
TAG_FRONT_TRIALS = "convtune.pareto_front_trials"  # the study's run: the front's trial numbers
TAG_RESUMED = "convtune.resumed"  # a trial's run continued by a retry: "after epoch 7 (trial 3 -> trial 5)"
TAG_TRIALS = "convtune.trials"  # every Optuna trial that trained into this run, comma-separated
TAG_WARM_START = "convtune.warm_start"  # the study's run: the study (and storage) it started from
# `tune --budget`, on the study's run (tags, not params: a rerun of the study plans anew); seconds
TAG_BUDGET_SECONDS = "convtune.budget.seconds"  # the budget given
TAG_BUDGET_PLAN = "convtune.budget.plan"  # the plan lines printed: at the start, once measured ("|")
TAG_BUDGET_SEARCH_PLANNED = "convtune.budget.search_planned_s"  # in the last plan printed
TAG_BUDGET_REPRODUCE_PLANNED = "convtune.budget.reproduce_planned_s"  # in the last plan printed
TAG_BUDGET_SEARCH_ACTUAL = "convtune.budget.search_s"  # from the command's start to the search's end
TAG_BUDGET_REPRODUCE_ACTUAL = "convtune.budget.reproduce_s"
TAG_BUDGET_TOTAL_ACTUAL = "convtune.budget.total_s"
TAG_BUDGET_SEARCH_STOPPED = "convtune.budget.search_stopped_by"  # budget / n_trials / failures
TAG_BUDGET_REPRODUCTION = "convtune.budget.reproduction"  # what was reproduced: epochs x images, members
TAG_BUDGET_NOTES = "convtune.budget.notes"  # what was reduced, "|"-separated
MODEL_TAG_TEST_ACC = "test_acc"  # on a registered model version
MODEL_TAG_PICK = "pick"  # on a registered model version: the `reproduce --pick` budget it was chosen under

# MLflow experiment tags (the UI's training view, sort and columns): search/tracking/ui_links.py

# --- Optuna trial user attrs ------------------------------------------------------------------------
ATTR_RUN_ID = "mlflow_run_id"  # the trial's MLflow run; the run's TAG_TRIAL_NUMBER points back
ATTR_DEVICE = "device"
ATTR_INFEASIBLE = "infeasible_reason"
ATTR_ERROR = "error"
ATTR_INTERRUPTED = "interrupted"
ATTR_DIVERGED = "diverged"
ATTR_HOST = "host"
ATTR_PID = "pid"
ATTR_WORKER = "worker"
ATTR_HEARTBEAT = "heartbeat"
ATTR_RETRY_OF = "retry_of"
ATTR_RETRY_COUNT = "retry_count"
ATTR_DIED = "died"
ATTR_OVER_BUDGET = "over_budget"
ATTR_RESUMED_AT = "resumed_at_epoch"  # a retry that continued a checkpoint: epochs it did not retrain
ATTR_EPOCHS_TRAINED = "epochs_trained"  # epochs this trial trained itself (a resumed one: the rest)
ATTR_WARM_START_OF = "warm_start_of"  # a prior copied from another study: "study#number"
ATTR_SEEDED_FROM = "seeded_from"  # a trial enqueued by a warm start: the prior ("study#number") it retries
ATTR_CURVE = "metric_curve"  # a Pareto trial's monitored metric per epoch (trial.report is single-objective)
# why a trial ended early
TRIAL_NOTES = (ATTR_INFEASIBLE, ATTR_OVER_BUDGET, ATTR_DIED, ATTR_INTERRUPTED, ATTR_ERROR)

# --- Optuna study user attrs ------------------------------------------------------------------------
STUDY_ATTR_PARENT_RUN = "mlflow_parent_run_id"
STUDY_ATTR_EXPERIMENT = "experiment"  # the experiment file's validated content
STUDY_ATTR_WARM_START = "warm_start"  # {study, storage, added, skipped, enqueued}: done once per study

# --- MLflow artifacts ------------------------------------------------------------------------------
ARTIFACT_CHECKPOINT_DIR = "checkpoint"  # a running trial's latest epoch checkpoint (team servers)

# --- MLflow metrics ---------------------------------------------------------------------------------
EPOCH_METRICS = ("train/loss", "train/acc", "val/loss", "val/acc", "lr", "throughput/img_s")
METRIC_OBJECTIVE = "objective"
METRIC_BEST_EPOCH = "best_epoch"
METRIC_TRAIN_SECONDS = "train_seconds"
METRIC_TEACHER_VAL_ACC = "teacher/val_acc"  # a distilled reproduction's teacher, on its validation split

# --- cost of a trial's network, known before it trains: MLflow metrics and trial user attrs alike -----
COST_PREFIX = "cost/"
COST_PARAMS = "cost/params"
COST_MACS = "cost/macs"  # multiply-accumulates of one image's forward pass
COST_SIZE_BYTES = "cost/size_bytes"  # parameters and buffers as stored
COST_LATENCY_MS = "cost/latency_ms"  # median ms per image, batch 1, float32, eval mode
COST_LATENCY_MS_BATCH = "cost/latency_ms_batch"  # the same per image at a batch of LATENCY_BATCH
COST_LATENCY_MS_TRIAL_PRECISION = "cost/latency_ms_trial_precision"  # batch 1 in the trial's precision
COST_LATENCY_MS_BATCH_TRIAL_PRECISION = "cost/latency_ms_batch_trial_precision"
COST_METRICS = (
    COST_PARAMS,
    COST_MACS,
    COST_SIZE_BYTES,
    COST_LATENCY_MS,
    COST_LATENCY_MS_BATCH,
    COST_LATENCY_MS_TRIAL_PRECISION,
    COST_LATENCY_MS_BATCH_TRIAL_PRECISION,
)  # what search.constraints, search.objectives and `reproduce --pick` may name
METRIC_COST_SECONDS = "cost/measure_seconds"  # what measuring the cost took the trial (not a cost)
