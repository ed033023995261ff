"""A team on one `mlflow server`: machines with nothing in common but the server and PostgreSQL.

Each "machine" is a separate folder (its own working directory, no shared `.convtune/`) running
`convtune` as a user would, with `MLFLOW_TRACKING_URI` pointing at a real `mlflow server
--serve-artifacts` on loopback and `--storage` at the machine's PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from PIL import Image

from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.mlflow_server import MlflowServer
from tests.helpers.parallel_helpers import postgres_database, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PICTURES = {"filters.png", "confusion_matrix.png", "misclassified.png", "architecture.png"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from postgres_database()


def _env(server: MlflowServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVTUNE_")}
    return {**env, "MLFLOW_TRACKING_URI": server.url, "NO_ALBUMENTATIONS_UPDATE": "1"}


def _convtune(args: list[str], machine: Path, server: MlflowServer) -> subprocess.Popen[str]:
    machine.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "search.cli", *args],
        cwd=machine,
        env=_env(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str], timeout: float = 600) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"exit {process.returncode}\n{out[-2000:]}\n{err[-3000:]}"
    return out


def _machine(root: Path, name: str, raw: dict) -> tuple[Path, Path]:
    folder = root / name
    folder.mkdir()
    return folder, write_experiment(folder, raw, "team.yaml")


def _trial_runs(client: MlflowClient, study: str) -> list:
    experiment = client.get_experiment_by_name(study)
    assert experiment is not None, f"no experiment {study} on the server"
    return client.search_runs([experiment.experiment_id], "tags.`convtune.role` = 'trial'")


def test_two_machines_share_one_server_and_a_fifth_folder_predicts_with_the_champion(
    server: MlflowServer, pg_url: str, tmp_path: Path
) -> None:
    raw = tiny_experiment(name="team", search__n_trials=4, search__artifacts=True)
    a, exp_a = _machine(tmp_path, "a", raw)
    b, exp_b = _machine(tmp_path, "b", raw)
    check = _finish(_convtune(["check", str(exp_a)], a, server))
    assert f"runs      -> {server.url}" in check and f"models    -> {server.url}" in check
    assert "artifacts -> the tracking server's artifact store" in check

    machines = [
        _convtune(["tune", str(e), "--storage", pg_url, "--quiet"], m, server)
        for m, e in ((a, exp_a), (b, exp_b))
    ]
    for process in machines:
        _finish(process)
    study = optuna.load_study(study_name="team", storage=pg_url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    assert len({t.user_attrs["pid"] for t in complete}) == 2, "both machines ran trials"

    client = MlflowClient(server.url, server.url)  # registry named: tests set MLflow's global one
    experiment = client.get_experiment_by_name("team")
    assert experiment.artifact_location.startswith("mlflow-artifacts:"), experiment.artifact_location
    runs = {run.info.run_id: run for run in _trial_runs(client, "team")}
    assert {t.user_attrs["mlflow_run_id"] for t in complete} <= set(runs)
    everything = tmp_path / "downloaded"
    for trial in complete:
        run = runs[trial.user_attrs["mlflow_run_id"]]
        assert run.info.status == "FINISHED" and run.data.tags["optuna.state"] == "COMPLETE"
        assert len(client.get_metric_history(run.info.run_id, "val/acc")) == 2  # both epochs
        inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
        assert set(inputs) == {"digits/train", "digits/val"} and all(
            len(d.digest) == 16 for d in inputs.values()
        )
        folder = Path(client.download_artifacts(run.info.run_id, "", str(everything / run.info.run_id)))
        names = {p.name for p in folder.iterdir()}
        assert PICTURES | {"config.yaml", "architecture.md"} <= names
        for picture in PICTURES:
            with Image.open(folder / picture) as image:
                image.verify()
    parent = client.get_run(runs[complete[0].user_attrs["mlflow_run_id"]].data.tags["mlflow.parentRunId"])
    assert {"summary.md", "study_plots.html"} <= {f.path for f in client.list_artifacts(parent.info.run_id)}
    for machine in (a, b):
        assert (
            not (machine / ".convtune" / "mlartifacts").exists()
            and not (machine / ".convtune" / "mlflow.db").exists()
        )
    assert any(server.artifacts.rglob("filters.png")), "pictures live in the server's artifact store"

    c, exp_c = _machine(tmp_path, "c", raw)
    out = _finish(_convtune(["reproduce", str(exp_c), "--storage", pg_url], c, server))
    assert "registered models:/team@champion" in out
    version = client.get_model_version_by_alias("team", "champion")
    assert version.run_id and client.get_run(version.run_id).data.tags["convtune.role"] == "reproduction"
    assert not (c / ".convtune" / "mlflow.db").exists()

    d = tmp_path / "d"  # nothing local: no experiment file, no mlflow.yml, no store
    d.mkdir()
    Image.new("L", (8, 8), 200).save(d / "digit.png")
    out = _finish(_convtune(["predict", "models:/team@champion", "digit.png"], d, server))
    (line,) = out.strip().splitlines()
    assert line.startswith("digit.png\t") and 0 <= float(line.split("\t")[-1]) <= 1
    assert not (d / ".convtune" / "mlflow.db").exists() and not (d / "mlruns").exists()


def test_the_server_stopping_for_ten_seconds_mid_study_loses_no_trial_and_no_epoch(
    server: MlflowServer, pg_url: str, tmp_path: Path
) -> None:
    epochs = 15
    raw = tiny_experiment(name="outage", search__n_trials=4, trainer__max_epochs=epochs)
    machine, path = _machine(tmp_path, "m", raw)
    args = ["tune", str(path), "--storage", pg_url, "--devices", "cpu", "--workers", "2", "--quiet"]
    process = _convtune(args, machine, server)
    client = MlflowClient(server.url, server.url)  # registry named: tests set MLflow's global one

    def an_epoch_logged() -> bool:
        experiment = client.get_experiment_by_name("outage")
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        return any(client.get_metric_history(r.info.run_id, "val/acc") for r in runs)

    wait_for(an_epoch_logged, 300, "the first epoch on the server")
    server.stop()
    stopped = time.monotonic()
    time.sleep(10)
    assert process.poll() is None, "the study ended while the server was away"
    server.start()
    outage = time.monotonic() - stopped
    _finish(process)
    study = optuna.load_study(study_name="outage", storage=pg_url)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4, [(t.number, t.state.name) for t in trials]
    runs = {run.info.run_id: run for run in _trial_runs(client, "outage")}
    for trial in trials:
        run = runs[trial.user_attrs["mlflow_run_id"]]
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val/acc")]
        assert sorted(steps) == list(range(epochs)), f"trial {trial.number}: epochs {steps}"
    print(f"server away for {outage:.1f} s; the study finished with every epoch stored")
