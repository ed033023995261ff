"""Several worker processes on one study: device plans, the embedded default, PostgreSQL, SQLite MLflow."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from search.cli.main import main
from search.errors import ConfigError
from search.parallel.workers import WorkerSlot, plan_workers
from search.study.storage import open_storage
from search.tracking import Tracker, load_settings
from search.tracking.resilience import ResilientClient
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.parallel_helpers import mlflow_client, postgres_database, start_cli, trial_runs


def test_cpu_workers_share_the_cores_and_hide_the_gpus() -> None:
    slots = plan_workers("cpu", 2, cores=16, gpus=["0"])
    assert [s.label for s in slots] == ["cpu:0", "cpu:1"]
    assert {s.threads for s in slots} == {8}
    env = slots[1].env({})
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["OMP_NUM_THREADS"] == "8"
    assert plan_workers("cpu", 3, cores=16, gpus=[])[0].loader_workers == 0
    assert plan_workers("cpu", 2, cores=7, gpus=[])[0].loader_workers == 0
    assert plan_workers("auto", None, cores=2, gpus=[]) == [WorkerSlot(0, "cpu")]


def test_gpu_plans_use_physical_ids_and_pack_trials_per_device() -> None:
    slots = plan_workers("0,1", None, 2, gpus=["2", "3"])
    assert [s.label for s in slots] == ["cuda:2", "cuda:2", "cuda:3", "cuda:3"]
    assert slots[2].env({})["CUDA_VISIBLE_DEVICES"] == "3"
    assert [s.label for s in plan_workers("auto", gpus=["0", "1", "2"])] == ["cuda:0", "cuda:1", "cuda:2"]
    pairs = plan_workers("0,1,2,3", gpus_per_trial=2, gpus=["0", "1", "2", "3"])
    assert [s.gpus for s in pairs] == [("0", "1"), ("2", "3")]


@pytest.mark.parametrize(
    ("devices", "workers", "per_device", "message"),
    [
        ("0,1", None, 1, "names GPUs, but this machine has 0 visible GPUs"),
        ("0,x", None, 1, "takes 'auto', 'cpu' or GPU ids"),
        ("0,0", None, 1, "distinct GPU ids"),
        ("cpu", 0, 1, "--workers must be at least 1"),
        ("cpu", 2, 2, "--trials-per-device is for GPUs"),
    ],
)
def test_impossible_device_plans_are_config_errors(
    devices: str, workers: int | None, per_device: int, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_workers(devices, workers, per_device, gpus=[])


def test_naming_a_gpu_beyond_the_visible_ones_says_how_many_there_are() -> None:
    with pytest.raises(ConfigError, match="names GPU 1, but only 1 GPU is visible"):
        plan_workers("0,1", gpus=["0"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without GPUs")
def test_cli_devices_on_a_machine_without_gpus_is_exit_2_and_writes_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_experiment(workdir, tiny_experiment())
    assert main(["tune", str(path), "--devices", "0,1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "0 visible GPUs" in err and "--devices cpu --workers N" in err
    assert not (workdir / ".convtune").exists() and not (workdir / "mlflow.db").exists()


def test_unreachable_storage_is_one_line_exit_1_before_anything_is_written(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_experiment(workdir, tiny_experiment())
    code = main(["tune", str(path), "--quiet", "--storage", "postgresql://postgres@127.0.0.1:1/nothing"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.count("\n") == 0 and "study storage postgresql://" in err and "unreachable" in err
    assert not (workdir / ".convtune").exists() and not (workdir / "mlflow.db").exists()


class _LockedTwice:
    def __init__(self) -> None:
        self.calls = 0

    def log_batch(self, run_id: str) -> str:
        self.calls += 1
        if self.calls < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return run_id

    def get_run(self, run_id: str) -> str:
        raise RuntimeError(f"run {run_id} not found")


def test_resilient_client_retries_database_is_locked_but_not_other_errors() -> None:
    inner = _LockedTwice()
    client = ResilientClient(inner, budget=5)
    assert client.log_batch("abc") == "abc" and inner.calls == 3
    with pytest.raises(RuntimeError, match="not found"):
        client.get_run("abc")


def _hammer(settings: dict[str, str], run_id: str, worker: int, count: int) -> None:
    from search.tracking import TrackingSettings

    tracker = Tracker(TrackingSettings(**settings))
    for step in range(count):
        tracker.log_metrics(run_id, {f"w{worker}": float(step)}, step=step)
        tracker.set_tags(run_id, {f"w{worker}.last": str(step)})


def test_four_processes_writing_to_the_sqlite_tracking_store_lose_nothing(workdir: Path) -> None:
    tracker = Tracker(load_settings())
    run_id = tracker.study_run("hammer")
    settings = {
        k: getattr(tracker.settings, k) for k in ("tracking_uri", "registry_uri", "artifact_location")
    }
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_hammer, args=(settings, run_id, w, 40)) for w in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    client = mlflow_client()
    for worker in range(4):
        assert len(client.get_metric_history(run_id, f"w{worker}")) == 40
        assert client.get_run(run_id).data.tags[f"w{worker}.last"] == "39"


def _check_n_unique_trials(study: optuna.Study, n: int) -> None:
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == n, [(t.number, t.state.name) for t in trials]
    assert len({t.number for t in trials}) == len(trials)
    assert len({t.params["optim.lr"] for t in complete}) == n  # each worker samples its own values
    assert {t.user_attrs["device"] for t in complete} == {"cpu:0", "cpu:1"}
    runs = trial_runs(mlflow_client(), study.study_name)
    assert len(runs) == n
    assert {r.data.tags["optuna.trial_number"] for r in runs} == {str(t.number) for t in complete}
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["convtune.device"] for r in runs} == {"cpu:0", "cpu:1"}


@pytest.mark.slow
def test_two_cpu_workers_on_the_embedded_default_finish_exactly_n_trials(workdir: Path) -> None:
    # trials long enough (30 epochs) that the second worker is up before the first finishes them all
    path = write_experiment(workdir, tiny_experiment(search__n_trials=6, trainer__max_epochs=30))
    process = start_cli(["tune", str(path), "--devices", "cpu", "--workers", "2", "--quiet"], workdir)
    _out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    study = optuna.load_study(study_name="tiny", storage=open_storage(None).storage)
    _check_n_unique_trials(study, 6)


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from postgres_database()


@pytest.mark.slow
def test_two_workers_against_postgresql_finish_exactly_n_trials(workdir: Path, pg_url: str) -> None:
    path = write_experiment(workdir, tiny_experiment(search__n_trials=6, trainer__max_epochs=30))
    args = ["tune", str(path), "--devices", "cpu", "--workers", "2", "--quiet", "--storage", pg_url]
    process = start_cli(args, workdir)
    _out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    study = optuna.load_study(study_name="tiny", storage=pg_url)
    _check_n_unique_trials(study, 6)
