"""SIGKILL of a worker mid-epoch in a multi-worker study: its retry resumes from the last checkpoint.

Slow (worker processes, a dozen epochs per trial): `pytest -m slow tests/e2e/test_resume_workers.py`.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState

from lightning_modules.machine import available_cpus
from search.experiment.spec import validate_experiment
from search.study.prepare import prepare_study
from search.study.runner import TuneOptions, tune
from search.study.storage import open_storage
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.parallel_helpers import mlflow_client, postgres_database, start_cli, trial_runs, wait_for

EPOCHS = 12
WORKERS = 2


def _raw() -> dict[str, Any]:
    raw = tiny_experiment(search__n_trials=3, trainer__max_epochs=EPOCHS, trainer__deterministic=True)
    raw["model"]["dropout"] = 0.3
    return raw


@dataclass
class Watch:
    """What the test saw while the study ran: the largest number of checkpoint files and bytes."""

    folder: Path
    most_files: int = 0
    most_bytes: int = 0
    largest_file: int = 0
    samples: list[tuple[int, int]] = field(default_factory=list)

    def look(self) -> None:
        sizes = []
        for path in self.folder.glob("*.ckpt") if self.folder.is_dir() else []:
            try:
                sizes.append(path.stat().st_size)
            except FileNotFoundError:  # removed between the listing and the stat
                continue
        self.most_files = max(self.most_files, len(sizes))
        self.most_bytes = max(self.most_bytes, sum(sizes))
        self.largest_file = max([self.largest_file, *sizes])


def _load(storage: str | None) -> optuna.Study | None:
    handle = open_storage(storage)
    if "tiny" not in optuna.get_all_study_names(handle.storage):
        return None
    return optuna.load_study(study_name="tiny", storage=handle.storage)


def _victim(storage: str | None, watch: Watch) -> optuna.trial.FrozenTrial | None:
    """A running trial past its second epoch with several epochs still to go (so that the kill lands
    mid-trial even when polling the storage lags), with a checkpoint on disk."""
    study = _load(storage)
    if study is None:
        return None
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        run_id = trial.user_attrs.get("mlflow_run_id")
        reported = len(trial.intermediate_values)
        if run_id and 2 <= reported <= EPOCHS - 4 and (watch.folder / f"{run_id}.ckpt").exists():
            return trial
    return None


def _kill_one_worker_and_finish(workdir: Path, storage: str | None) -> tuple[optuna.Study, int, Watch]:
    path = write_experiment(workdir, _raw())
    args = ["tune", str(path), "--devices", "cpu", "--workers", str(WORKERS), "--quiet"]
    process = start_cli([*args, *(["--storage", storage] if storage else [])], workdir)
    watch = Watch(workdir / ".convtune" / "checkpoints" / "tiny")
    deadline = time.monotonic() + 400
    victim = None
    while victim is None and time.monotonic() < deadline and process.poll() is None:
        watch.look()
        victim = _victim(storage, watch)
        time.sleep(0.1)
    assert victim is not None, process.communicate(timeout=60)
    time.sleep(0.3)  # into the next epoch: killed mid-epoch, not at its end
    os.kill(victim.user_attrs["pid"], signal.SIGKILL)
    while process.poll() is None:
        watch.look()
        time.sleep(0.1)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    study = _load(storage)
    assert study is not None
    return study, victim.number, watch


def _reference_value(workdir: Path, params: dict[str, Any]) -> optuna.trial.FrozenTrial:
    """The same params trained once without interruption, with the threads a worker has."""
    spec = validate_experiment(_raw() | {"name": "reference"})
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, available_cpus() // WORKERS))
    try:
        prepared = prepare_study(spec, TuneOptions(progress=False))
        prepared.study.enqueue_trial(params)
        study = tune(spec, TuneOptions(progress=False, n_trials=1))
    finally:
        torch.set_num_threads(threads)
    return study.get_trials()[0]


def _dump(trials: list[optuna.trial.FrozenTrial]) -> str:
    """Every trial's state, attrs and reports: what a failure of the open PostgreSQL race needs seen."""
    return "\n".join(
        f"#{t.number} id={t._trial_id} {t.state.name} {t.datetime_start} -> {t.datetime_complete} "
        f"attrs={dict(t.user_attrs)} reports={t.intermediate_values}"
        for t in trials
    )


def _check_resumed(workdir: Path, study: optuna.Study, victim: int, watch: Watch) -> None:
    trials = study.get_trials()
    killed = trials[victim]
    assert killed.state == TrialState.FAIL and "died" in killed.user_attrs["died"]
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == victim]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    # killed mid-epoch: the retry starts after the last epoch the dead worker reported and saved
    # (one fewer if the kill fell between the report and the save)
    reported = len(killed.intermediate_values)
    resumed_at = retry.user_attrs["resumed_at_epoch"]
    assert reported - 1 <= resumed_at <= reported and resumed_at >= 1
    assert retry.user_attrs["epochs_trained"] == EPOCHS - resumed_at  # earlier epochs not retrained
    assert sorted(retry.intermediate_values) == list(range(1, EPOCHS + 1)), _dump(trials)
    run_id = killed.user_attrs["mlflow_run_id"]
    assert retry.user_attrs["mlflow_run_id"] == run_id
    client = mlflow_client()
    steps = [m.step for m in client.get_metric_history(run_id, "val/acc")]
    assert sorted(steps) == list(range(EPOCHS))  # one contiguous series, each epoch once
    assert client.get_run(run_id).info.status == "FINISHED"
    assert "RUNNING" not in {r.info.status for r in trial_runs(client, "tiny")}
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    # disk: never more checkpoints than trials that can run at once, none left afterwards
    assert 1 <= watch.most_files <= WORKERS
    assert watch.most_bytes <= WORKERS * watch.largest_file
    assert list(watch.folder.glob("*")) == []
    reference = _reference_value(workdir, dict(killed.params))
    assert retry.value == reference.value
    assert retry.intermediate_values == reference.intermediate_values


@pytest.mark.slow
def test_sigkill_mid_epoch_on_the_journal_resumes_from_the_last_checkpoint(workdir: Path) -> None:
    study, victim, watch = _kill_one_worker_and_finish(workdir, None)
    _check_resumed(workdir, study, victim, watch)


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from postgres_database()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.xfail(
    strict=False,
    reason="open race (issue 18): in about 1 run of 7 on PostgreSQL the resumed retry completes with "
    "the right epochs trained but its intermediate values read back empty; the journal variant above "
    "passes every run",
)
def test_sigkill_mid_epoch_on_postgresql_resumes_from_the_last_checkpoint(workdir: Path, pg_url: str) -> None:
    study, victim, watch = _kill_one_worker_and_finish(workdir, pg_url)
    _check_resumed(workdir, study, victim, watch)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_retry_on_another_machine_downloads_the_checkpoint_from_the_team_server(
    tmp_path: Path, pg_url: str
) -> None:
    """Two folders sharing only PostgreSQL and an `mlflow server --serve-artifacts`: the trial killed
    in the first continues in the second from the checkpoint in its run's artifacts."""
    from mlflow import MlflowClient

    from tests.helpers.mlflow_server import MlflowServer

    server = MlflowServer(tmp_path / "server")
    server.start()
    try:
        env = {"MLFLOW_TRACKING_URI": server.url}
        raw = _raw() | {"search": {**_raw()["search"], "n_trials": 1}}
        first, second = tmp_path / "first", tmp_path / "second"
        for machine in (first, second):
            machine.mkdir()
            write_experiment(machine, raw)
        args = ["tune", "tiny.yaml", "--quiet", "--storage", pg_url]
        process = start_cli(args, first, env)
        client = MlflowClient(server.url, server.url)  # registry named: tests set MLflow's global one

        def uploaded() -> optuna.trial.FrozenTrial | None:
            study = _load(pg_url)
            running = study.get_trials(states=(TrialState.RUNNING,)) if study else []
            for trial in running:
                run_id = trial.user_attrs.get("mlflow_run_id")
                if (
                    run_id
                    and len(trial.intermediate_values) >= 2
                    and client.list_artifacts(run_id, "checkpoint")
                ):
                    return trial
            return None

        victim = wait_for(uploaded, 400, "a checkpoint on the server", every=0.3)
        process.kill()  # the whole first machine goes away
        process.communicate(timeout=60)
        assert not (second / ".convtune").exists()
        _out, err = start_cli(args, second, env).communicate(timeout=600)
        study = _load(pg_url)
        assert study is not None, err
        retry = next(t for t in study.get_trials() if t.user_attrs.get("retry_of") == victim.number)
        assert retry.state == TrialState.COMPLETE, err
        assert retry.user_attrs["resumed_at_epoch"] >= 2
        assert retry.user_attrs["mlflow_run_id"] == victim.user_attrs["mlflow_run_id"]
        assert client.list_artifacts(retry.user_attrs["mlflow_run_id"], "checkpoint") == []
        assert list((second / ".convtune" / "checkpoints" / "tiny").glob("*.ckpt")) == []
    finally:
        server.stop()
