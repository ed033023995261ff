"""Warm start: a new study seeded from an earlier one's fitting trials (search.warm_start)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from search.cli.main import main
from search.experiment.spec import validate_experiment
from search.study.storage import open_storage
from search.study.study import best_trial, count_states
from search.study.warm_start import FIXED_OTHERWISE, NEW_PARAMETER, OUT_OF_RANGE, _trained_config, fit
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.parallel_helpers import mlflow_client

OLD_SPACE = {
    "optim.lr": FloatDistribution(1e-3, 1e-2, log=True),
    "model.kernel_size": CategoricalDistribution([3, 5]),
}


def _old_trial(lr: float, kernel: int, value: float | None, state: TrialState = TrialState.COMPLETE) -> Any:
    return create_trial(
        state=state,
        value=value,
        params={"optim.lr": lr, "model.kernel_size": kernel},
        distributions=OLD_SPACE,
        intermediate_values={1: 0.5} if state == TrialState.PRUNED else {},
    )


def _explore(storage: str | None = None, direction: str = "maximize") -> optuna.Study:
    study = optuna.create_study(
        study_name="explore", storage=open_storage(storage).storage, direction=direction
    )
    study.add_trials(
        [
            _old_trial(5e-3, 3, 0.90),
            _old_trial(1.5e-3, 3, 0.95),  # below the narrowed range
            _old_trial(4e-3, 5, 0.97),  # kernel 5, but the new experiment fixes kernel_size 3
            _old_trial(8e-3, 3, 0.70),
            _old_trial(3e-3, 3, None, TrialState.PRUNED),
        ]
    )
    study.add_trial(create_trial(state=TrialState.FAIL, params={}, distributions={}))  # never copied
    return study


def _narrow(**search: Any) -> dict[str, Any]:
    raw = tiny_experiment(search__n_trials=2, trainer__max_epochs=1)
    raw["search"]["space"] = {"optim.lr": {"float": [2e-3, 1e-2], "log": True}}
    raw["search"].update(search)
    return raw


def test_warm_start_adds_fitting_trials_as_priors_enqueues_the_best_and_counts_the_rest(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _explore()
    path = write_experiment(workdir, _narrow(warm_start={"study": "explore", "top_k": 1}))
    assert main(["tune", str(path), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert (
        "warm start from study explore: 3 finished trials added as priors, 2 skipped "
        f"(1: {OUT_OF_RANGE}; 1: {FIXED_OTHERWISE}), top 1 enqueued first." in " ".join(err.split())
    )
    study = optuna.load_study(study_name="tiny", storage=open_storage(None).storage)
    trials = study.get_trials()
    priors = [t for t in trials if "warm_start_of" in t.user_attrs]
    assert sorted(t.user_attrs["warm_start_of"] for t in priors) == ["explore#0", "explore#3", "explore#4"]
    assert {t.state for t in priors} == {TrialState.COMPLETE, TrialState.PRUNED}
    assert all(set(t.distributions) == {"optim.lr"} for t in priors)  # the new space's distributions
    own = [t for t in trials if t not in priors]
    assert len(own) == 2 and all(t.state == TrialState.COMPLETE for t in own)
    assert own[0].params == {"optim.lr": 5e-3} and own[0].user_attrs["seeded_from"] == "explore#0"
    assert count_states(study)["COMPLETE"] == 2  # priors do not count against n_trials
    assert best_trial(study) in own
    parent = mlflow_client().get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.data.tags["convtune.warm_start"] == "study explore"

    assert main(["tune", str(path), "--quiet", "--n-trials", "3"]) == 0  # the rerun adds no priors again
    assert "done when this study began (3 priors)" in capsys.readouterr().err
    study = optuna.load_study(study_name="tiny", storage=open_storage(None).storage)
    assert sum("warm_start_of" in t.user_attrs for t in study.get_trials()) == 3
    assert count_states(study)["COMPLETE"] == 3


def test_cli_warm_start_from_another_storage(workdir: Path) -> None:
    _explore(str(workdir / "old.journal"))
    path = write_experiment(workdir, _narrow())
    args = ["tune", str(path), "--quiet", "--warm-start", "explore", "--warm-storage", "old.journal"]
    assert main(args) == 0
    study = optuna.load_study(study_name="tiny", storage=open_storage(None).storage)
    assert sum("warm_start_of" in t.user_attrs for t in study.get_trials()) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--warm-start", "missing"], "no study named 'missing'"),
        (["--warm-start", "tiny"], "must name another study"),
        (["--warm-storage", "old.journal"], "give --warm-start STUDY too"),
        (["--warm-start", "explore", "--warm-storage", "none.journal"], "must be an existing study storage"),
        (["--warm-start", "../x"], "--warm-start must be"),
    ],
)
def test_unusable_warm_starts_are_exit_2_and_create_no_study(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    _explore()
    path = write_experiment(workdir, _narrow())
    assert main(["tune", str(path), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0
    assert optuna.get_all_study_names(open_storage(None).storage) == ["explore"]
    assert not (workdir / "none.journal").exists()


def test_a_study_of_the_other_direction_cannot_warm_start(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _explore(direction="minimize")
    path = write_experiment(workdir, _narrow())
    assert main(["tune", str(path), "--quiet", "--warm-start", "explore"]) == 2
    assert "same metric" in capsys.readouterr().err


def test_fit_names_why_a_trial_does_not_fit() -> None:
    raw = _narrow()
    raw["search"]["space"]["optim.weight_decay"] = {"float": [1e-6, 1e-2], "log": True}
    spec = validate_experiment(raw)
    assert fit(spec, {"optim.lr": 5e-3}).problem == NEW_PARAMETER
    assert fit(spec, {"optim.lr": 1e-3, "optim.weight_decay": 1e-4}).problem == OUT_OF_RANGE
    found = fit(spec, {"optim.lr": 5e-3, "optim.weight_decay": 1e-4})
    assert found.problem is None and set(found.distributions) == {"optim.lr", "optim.weight_decay"}
    conditional = _narrow()
    conditional["search"]["space"] = {
        "optim.name": {"choice": ["sgd", "adamw"]},
        "optim.momentum": {"float": [0.5, 0.99], "when": {"optim.name": "sgd"}},
    }
    spec = validate_experiment(conditional)
    assert fit(spec, {"optim.name": "adamw"}).problem is None  # momentum is not sampled for adamw
    assert fit(spec, {"optim.name": "sgd"}).problem == NEW_PARAMETER
    assert fit(spec, {"optim.name": "sgd", "optim.momentum": 0.9}).problem is None
    nullable = _narrow()
    nullable["search"]["space"] = {"trainer.gradient_clip_val": {"choice": [None, 1.0]}}
    assert fit(validate_experiment(nullable), {"trainer.gradient_clip_val": None}).problem is None  # a null


def test_a_parameter_the_earlier_study_fixed_takes_its_fixed_value() -> None:
    raw = _narrow()
    raw["search"]["space"]["optim.weight_decay"] = {"float": [1e-6, 1e-2], "log": True}
    raw["model"]["channels"] = [8, 16, 16]
    raw["search"]["space"]["model.channels.2"] = {"choice": [16, 32]}
    spec = validate_experiment(raw)
    earlier = {"optim": {"lr": 1e-3, "weight_decay": 1e-4}, "model": {"channels": [8, 16, 32]}}
    found = fit(spec, {"optim.lr": 5e-3}, earlier)
    assert found.problem is None
    assert found.params == {"optim.lr": 5e-3, "optim.weight_decay": 1e-4, "model.channels.2": 32}
    assert set(found.distributions) == set(found.params)
    earlier["optim"]["weight_decay"] = 0.5
    assert fit(spec, {"optim.lr": 5e-3}, earlier).problem == OUT_OF_RANGE
    two_blocks = {"optim": {"weight_decay": 1e-4}, "model": {"channels": [8, 16]}}
    assert fit(spec, {"optim.lr": 5e-3}, two_blocks).problem == NEW_PARAMETER  # no third block to take
    assert _trained_config({"optim": 3}, {"optim.lr": 5e-3}) is None  # a tree its params do not go into


def test_warm_start_completes_priors_from_the_earlier_experiment(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    earlier = tiny_experiment(search__n_trials=2, trainer__max_epochs=1)
    earlier["name"] = "earlier"
    earlier["optim"]["weight_decay"] = 3e-4
    earlier["search"]["space"] = {"optim.lr": {"float": [2e-3, 1e-2], "log": True}}
    assert main(["tune", str(write_experiment(workdir, earlier, "earlier.yaml")), "--quiet"]) == 0
    narrow = _narrow(warm_start={"study": "earlier", "top_k": 1})
    narrow["search"]["space"]["optim.weight_decay"] = {"float": [1e-4, 1e-3], "log": True}
    capsys.readouterr()
    assert main(["tune", str(write_experiment(workdir, narrow)), "--quiet"]) == 0
    assert "2 finished trials added as priors (2 with values it fixed), 0 skipped" in " ".join(
        capsys.readouterr().err.split()
    )
    study = optuna.load_study(study_name="tiny", storage=open_storage(None).storage)
    priors = [t for t in study.get_trials() if "warm_start_of" in t.user_attrs]
    assert [t.params["optim.weight_decay"] for t in priors] == [3e-4, 3e-4]
    seeded = [t for t in study.get_trials() if "seeded_from" in t.user_attrs]
    assert len(seeded) == 1 and seeded[0].params["optim.weight_decay"] == 3e-4


@pytest.mark.parametrize(
    ("warm", "message"),
    [
        ({"study": "../x"}, "search.warm_start.study must be"),
        ({"study": "explore", "topk": 2}, "topk"),
        ({"study": "explore", "top_k": -1}, "top_k"),
    ],
)
def test_the_yaml_warm_start_is_validated(warm: dict[str, Any], message: str) -> None:
    from search.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        validate_experiment(_narrow(warm_start=warm))
