"""`reproduce --top-k` as a command: what it prints, members trained at once by workers, stopped by a
signal, and paced under a deadline."""

from __future__ import annotations

import re
import signal
import time
from typing import Any

import psutil
import pytest

import search.reproduce.watch as watch
from search.cli.main import main
from search.experiment.spec import load_experiment
from search.reproduce.ensemble import reproduce_ensemble
from search.reproduce.options import ReproduceOptions
from search.reproduce.pace import MemberPace, ceiling_in_time
from search.study.trial_time import seconds_per_epoch
from search.tracking import vocabulary as v
from tests.e2e.ensemble.study import NAME, Ensembled
from tests.helpers.parallel_helpers import mlflow_client, start_cli, wait_for


def test_cli_top_k_says_which_selection_it_made(
    in_study: Ensembled, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = str(in_study.folder / "tiny.yaml")
    capsys.readouterr()
    assert main(["reproduce", experiment, "--top-k", "2", "--epochs", "1", "--no-register"]) == 0
    out = capsys.readouterr().out
    assert out.count("member ") >= 2 and "ensemble chosen on the validation split by accuracy (" in out
    first, second = (m.trial.number for m in in_study.result.members)
    assert f"member 0: trial {first} started, 1 epoch (1 of 2 training)" in out  # one after another
    assert f"member 1: trial {second} trained in " in out and "(2 of 2 done)" in out
    assert "plain average" in out and "greedy" in out and "test split: accuracy" in out
    assert "model logged, not registered: models:/m-" in out
    assert main(["reproduce", experiment, "--top-k", "2", "--trial", "0"]) == 2
    capsys.readouterr()
    args = ["reproduce", experiment, "--top-k", "2", "--epochs", "1", "--no-register", "--select-by", "nll"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ensemble chosen on the validation split by nll (greedy must lead by 2 SE; it led by " in out
    assert "validation NLL " in out
    run = mlflow_client().get_run(out.split("mlflow run: ")[1].split()[0])
    assert run.data.tags[v.TAG_ENSEMBLE_SELECTED_BY] == "nll" and "val/greedy_lead_se" in run.data.metrics
    assert run.data.tags[v.TAG_ENSEMBLE_GREEDY_MARGIN] == "2", "the default margin"
    assert {"val/nll_average", "val/nll_greedy", "val/nll_best_single"} <= set(run.data.metrics)


def test_workers_retrain_the_members_at_the_same_time(
    in_study: Ensembled, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--workers 2`: both members train at once in worker processes; the ensemble is chosen and
    tested as with one worker, and every member's run is closed. The live line, read from the
    members' runs, follows both."""
    spec = load_experiment(in_study.folder / "tiny.yaml")
    # 100 tiny epochs (~0.15 s each on a slow 2-core machine, ~15 s): the second worker may start its
    # first epoch ~3 s after the first one under load, which 12 epochs (2 s) could not cover
    lines: list[str] = []
    shown: list[str] = []
    monkeypatch.setattr(watch, "INTERVAL_SECONDS", 0.2)
    options = ReproduceOptions(epochs=100, register=False, workers=2)
    result = reproduce_ensemble(spec, options, 2, progress=lines.append, show=shown.append)
    first, second = (member.trial.number for member in result.members)
    member = r"epoch (\d+)/100 val/acc 0\.\d{4}"
    both = re.compile(rf"^trial {first} {member} · trial {second} {member}$")
    together = [match for line in shown if (match := both.match(line))]
    assert together, shown[:5]  # both members' epochs in one line while both trained
    firsts = [int(match.group(1)) for match in together]
    assert firsts == sorted(firsts) and max(firsts) > min(firsts)  # read again as the epochs go on
    assert [line.split(" (")[-1] for line in lines] == [
        "1 of 2 training)",
        "2 of 2 training)",
        "1 of 2 done)",
        "2 of 2 done)",
    ]
    assert all(" started, 100 epochs " in line for line in lines[:2])
    client = mlflow_client()
    runs = [client.get_run(member.run_id) for member in result.members]
    assert {run.info.status for run in runs} == {"FINISHED"}
    first_epoch = [
        min(m.timestamp for m in client.get_metric_history(run.info.run_id, "val/acc")) for run in runs
    ]
    ends = [run.info.end_time for run in runs]
    assert runs[1].info.start_time < ends[0]  # the second member started before the first ended
    assert first_epoch[0] < ends[1] and first_epoch[1] < ends[0]  # each trained before the other ended
    assert [m.trial.number for m in result.members] == [m.trial.number for m in in_study.result.members]
    assert 0.0 < result.test.accuracy <= 1.0 and result.choice.used


def test_sigterm_to_the_command_alone_stops_the_members_training_beside_it(in_study: Ensembled) -> None:
    """`kill PID` (the command's process, not its group) while `--workers 2` members train: their
    processes stop too, their runs end as killed, and the command exits as interrupted."""
    args = ["reproduce", "tiny.yaml", "--top-k", "2", "--workers", "2", "--epochs", "5000", "--no-register"]
    process = start_cli(args, in_study.folder)
    client = mlflow_client()
    experiment_id = client.get_experiment_by_name(NAME).experiment_id

    def members_training() -> list[Any]:
        running = client.search_runs([experiment_id], "attributes.status = 'RUNNING'")
        members = [run for run in running if v.TAG_ENSEMBLE_RUN in run.data.tags]
        trained = all(client.get_metric_history(run.info.run_id, "val/acc") for run in members)
        return members if len(members) == 2 and trained else []

    try:
        members = wait_for(members_training, 180, "both members training")
        workers = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=90)
    finally:  # never leave 5,000 epochs training behind a failed test
        if process.poll() is None:
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
            process.kill()
            process.communicate()
    assert process.returncode == 130, err[-3000:]
    assert "interrupted" in err
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, [worker.cmdline()[:3] for worker in alive]
    assert {client.get_run(run.info.run_id).info.status for run in members} == {"KILLED"}


def test_under_a_deadline_a_later_member_gets_the_epochs_that_fit_at_the_earlier_ones_pace(
    in_study: Ensembled,
) -> None:
    """`tune --budget`'s reproduction: the first member starts with the planned epochs and, far ahead of
    its deadline, is lengthened to the ceiling; the second, with ten minutes left at the first one's
    pace of well under a second per epoch, starts with the ceiling's epochs (more if its trial trained
    faster per epoch than the first's: the ceiling is the first's time for 3 epochs)."""
    spec = load_experiment(in_study.folder / "tiny.yaml")
    options = ReproduceOptions(epochs=2, register=False, deadline=time.time() + 600, epoch_ceiling=3)
    lines: list[str] = []
    result = reproduce_ensemble(spec, options, 2, progress=lines.append)
    trials = [member.trial for member in result.members]
    first, second = (trial.number for trial in trials)
    paced = [MemberPace(1.0, 1, seconds_per_epoch(trials[0], 2) or 0.0)]
    ceiling = ceiling_in_time(paced, seconds_per_epoch(trials[1], 2), 3)  # the first's time for 3 epochs
    assert f"member 0: trial {first} started, 2 epochs (1 of 2 training)" in lines
    assert f"member 1: trial {second} started, {ceiling} epochs (1 of 2 training)" in lines
    paced_note = (
        f"trial {second}: {ceiling} epochs instead of the 2 planned, at the pace the members before it kept."
    )
    assert paced_note in result.notes
    assert any(
        note.startswith(f"trial {first}: training lengthened to 3 epochs from the 2 planned")
        for note in result.notes
    )
    client = mlflow_client()
    epochs = [len(client.get_metric_history(m.run_id, "val/acc")) for m in result.members]
    assert epochs == [3, ceiling]
