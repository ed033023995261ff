"""`reproduce --top-k`: an ensemble of tiny digits models chosen on the validation split only, one
registered model that predict, evaluate, export (ONNX, TorchScript) and explain accept.

The module's study is tuned and reproduced with the test split unreadable until the ensemble's final
evaluation: any earlier read (the search, a member's training, the selection) fails the fixture.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import psutil
import pytest
import torch
from PIL import Image

import search.reproduce.ensemble as ensemble_module
import search.reproduce.watch as watch
from lightning_modules.config import RunConfig
from lightning_modules.data.datamodule import ImageDataModule
from lightning_modules.training import build_datamodule
from search.cli.main import main
from search.experiment.spec import load_experiment, validate_experiment
from search.reproduce.ensemble import EnsembleReproduction, reproduce_ensemble
from search.reproduce.ensemble_model import EnsembleModel
from search.reproduce.member import MEMBER_MODEL_PATH
from search.reproduce.options import ReproduceOptions
from search.reproduce.plan import recorded_config
from search.study.runner import TuneOptions, tune
from search.study.storage import open_storage
from search.study.study import find_study
from search.tracking import vocabulary as v
from search.tracking.model_store import InferenceModel, load_inference_model
from search.tracking.settings import load_settings
from search.tracking.tracker import Tracker
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.parallel_helpers import mlflow_client, start_cli, wait_for
from tests.helpers.study_folder import inside_study_folder

NAME = "tiny-ensemble"
URI = f"models:/{NAME}@ensemble"


class SplitReadTooEarly(AssertionError):
    """The test split was read before the final evaluation."""


@dataclass
class Ensembled:
    folder: Path
    result: EnsembleReproduction
    final_reads: int


@contextlib.contextmanager
def unreadable_test_split() -> Iterator[dict[str, int]]:
    """Every read of a test split raises, except inside `final_ensemble_test` (counted)."""
    state = {"open": 0, "calls": 0}
    original_split = ImageDataModule._split
    original_final = ensemble_module.final_ensemble_test

    def guarded_split(self: ImageDataModule, name: str) -> Any:
        if name == "test" and not state["open"]:
            raise SplitReadTooEarly("the test split was read before the final evaluation")
        return original_split(self, name)

    def final(*args: Any, **kwargs: Any) -> Any:
        state["open"] += 1
        state["calls"] += 1
        try:
            return original_final(*args, **kwargs)
        finally:
            state["open"] -= 1

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ImageDataModule, "_split", guarded_split)
        patch.setattr(ensemble_module, "final_ensemble_test", final)
        yield state


@pytest.fixture(scope="module")
def ensembled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ensembled]:
    """A 3-trial digits study (EMA and TTA configured), its 2 best trials ensembled and registered."""
    with inside_study_folder(tmp_path_factory.mktemp("ensemble")) as folder:
        raw = tiny_experiment(
            trainer={"max_epochs": 2, "weight_averaging": {"kind": "ema", "decay": 0.9}},
            evaluate={"tta": ["HorizontalFlip"]},
        )
        raw["search"]["n_trials"] = 3
        raw["name"] = NAME  # not `tiny`: MLflow keeps one store per URI, and other modules register `tiny`
        write_experiment(folder, raw)
        spec = validate_experiment(raw)
        with unreadable_test_split() as state:
            tune(spec, TuneOptions(progress=False))
            result = reproduce_ensemble(spec, ReproduceOptions(), 2)
        yield Ensembled(folder, result, state["calls"])


@pytest.fixture
def in_study(ensembled: Ensembled, monkeypatch: pytest.MonkeyPatch) -> Ensembled:
    monkeypatch.chdir(ensembled.folder)
    return ensembled


def test_nothing_before_the_final_evaluation_reads_the_test_split(in_study: Ensembled) -> None:
    result = in_study.result
    assert in_study.final_reads == 1  # the search, the members and the selection ran with it unreadable
    assert result.test.total > 0 and 0.3 < result.test.accuracy <= 1
    assert all(member.test_accuracy is not None for member in result.members)
    assert len({m.trial.number for m in result.members}) == 2


def test_members_are_the_two_best_distinct_trials_with_averaged_weights(in_study: Ensembled) -> None:
    study = find_study(open_storage(None), NAME)
    ranked = sorted(
        (t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE),
        key=lambda t: (-t.value, t.number),  # type: ignore[operator]
    )
    assert [m.trial.number for m in in_study.result.members] == [t.number for t in ranked[:2]]
    assert all(m.weights == "ema" for m in in_study.result.members)


def test_each_later_member_trains_on_its_own_seed_with_the_same_splits(in_study: Ensembled) -> None:
    client = mlflow_client()
    seeds = [client.get_run(m.run_id).data.params["trainer.seed"] for m in in_study.result.members]
    assert seeds == ["None", "1"]  # member 0 as its trial trained (seed 0), member 1 on seed 0 + 1
    assert ensemble_module.MEMBER_SEEDS_NOTE in in_study.result.notes
    tracker = Tracker(load_settings())
    configs = [recorded_config(tracker, m.run_id) for m in in_study.result.members]
    assert [c.training_seed for c in configs if c is not None] == [0, 1]
    first, second = (build_datamodule(c) for c in configs if c is not None)
    assert torch.equal(first.val_images, second.val_images)
    assert torch.equal(first.val_labels, second.val_labels)


def test_each_member_measures_its_final_raw_weights_beside_the_averaged_ones(in_study: Ensembled) -> None:
    for member in in_study.result.members:
        assert member.averaging is not None and member.averaging.kept == "ema"
        assert member.averaging.kept_accuracy == pytest.approx(member.averaging.metrics()["val/acc_averaged"])
        assert 0 < member.averaging.raw_accuracy <= 1
        assert set(member.averaging_test) == {"test/acc_averaged", "test/acc_raw"}
        assert all(0 < accuracy <= 1 for accuracy in member.averaging_test.values())


def test_the_ensemble_predicts_the_weighted_mean_of_its_members_probabilities(in_study: Ensembled) -> None:
    model = in_study.result.model
    images = torch.randint(0, 256, (9, 1, 8, 8), dtype=torch.uint8)
    weights = model.description.weights
    expected = sum(w * member.predict(images) for w, member in zip(weights, model.members, strict=True))
    assert torch.allclose(model.predict(images), expected, atol=1e-6)  # type: ignore[arg-type]
    assert abs(sum(weights) - 1) < 1e-9


def test_two_members_plain_average_round_trips_through_a_file_onnx_and_torchscript(
    in_study: Ensembled, tmp_path: Path
) -> None:
    import onnxruntime

    first, second = (member.model for member in in_study.result.members)
    model = EnsembleModel([first, second], [1, 1], method="average")
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    expected = (first.predict(images) + second.predict(images)) / 2
    assert torch.allclose(model.predict(images), expected, atol=1e-6)
    loaded = load_inference_model(str(model.save(tmp_path / "ensemble.pt")))
    assert isinstance(loaded, EnsembleModel) and len(loaded.members) == 2
    assert torch.allclose(loaded.predict(images), expected, atol=1e-6)
    assert [m.tta for m in loaded.members] == [first.tta, second.tta]
    onnx_path, script_path = tmp_path / "ensemble.onnx", tmp_path / "ensemble.ts"
    assert main(["export", str(tmp_path / "ensemble.pt"), "--format", "onnx", "--out", str(onnx_path)]) == 0
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {"images": images.numpy()})
    np.testing.assert_allclose(output, expected.numpy(), atol=1e-5)
    assert (
        main(["export", str(tmp_path / "ensemble.pt"), "--format", "torchscript", "--out", str(script_path)])
        == 0
    )
    scripted = torch.jit.load(str(script_path))
    assert torch.allclose(scripted(images), expected, atol=1e-5)


def test_registered_ensemble_loads_predicts_and_evaluates(
    in_study: Ensembled, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = in_study.result
    assert result.registered is not None and result.registered.alias_uri == URI
    loaded = load_inference_model(URI)
    assert isinstance(loaded, EnsembleModel)
    images = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    assert torch.allclose(loaded.predict(images), result.model.predict(images), atol=1e-7)
    path = tmp_path / "digit.png"
    Image.fromarray(images[0, 0].numpy(), mode="L").save(path)
    capsys.readouterr()
    assert main(["predict", URI, str(path)]) == 0
    _, label, probability = capsys.readouterr().out.strip().split("\t")
    row = result.model.predict(images[:1])[0]
    assert label == result.model.class_names[int(row.argmax())]
    assert float(probability) == pytest.approx(float(row.max()), abs=5e-5)
    assert main(["evaluate", URI]) == 0
    assert f"accuracy {result.test.accuracy:.4f}" in capsys.readouterr().out


def test_explain_explains_every_member(
    in_study: Ensembled, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "digit.png"
    Image.fromarray(np.full((8, 8), 128, dtype=np.uint8), mode="L").save(path)
    out = tmp_path / "explained"
    assert main(["explain", URI, str(path), "--out", str(out)]) == 0
    members = len(in_study.result.model.members)
    assert sorted(p.name for p in out.iterdir()) == [f"member-{i}" for i in range(members)]
    assert all((out / f"member-{i}" / "architecture.md").is_file() for i in range(members))
    assert "ensemble (" in capsys.readouterr().out


def test_the_ensemble_run_links_every_member_run(in_study: Ensembled) -> None:
    client = mlflow_client()
    result = in_study.result
    run = client.get_run(result.run_id)
    tags = run.data.tags
    member_runs = [m.run_id for m in result.members]
    assert tags[v.TAG_ROLE] == v.ROLE_ENSEMBLE and run.info.status == "FINISHED"
    assert tags[v.TAG_ENSEMBLE_MEMBERS] == ",".join(member_runs)
    assert [tags[f"{v.TAG_ENSEMBLE_MEMBER_PREFIX}{i}"] for i in range(len(member_runs))] == member_runs
    assert tags[v.TAG_ENSEMBLE_METHOD] == result.choice.method
    assert run.data.metrics["test/acc"] == pytest.approx(result.test.accuracy)
    for member in result.members:
        member_run = client.get_run(member.run_id)
        assert member_run.data.tags[v.TAG_PARENT_RUN] == result.run_id
        assert member_run.data.tags[v.TAG_ENSEMBLE_RUN] == result.run_id
        assert member_run.data.tags[v.TAG_REPRODUCTION_OF] == member.trial.user_attrs[v.ATTR_RUN_ID]
        assert member_run.info.status == "FINISHED"
    description = json.loads(result.model.description.to_json())
    assert description["member_runs"] == [member_runs[i] for i in result.choice.used]


def test_every_member_keeps_its_model_in_its_run_used_or_not(in_study: Ensembled) -> None:
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    for member in in_study.result.members:
        kept = load_inference_model(f"runs:/{member.run_id}/{MEMBER_MODEL_PATH}")
        assert isinstance(kept, InferenceModel) and kept.tta == member.model.tta
        assert torch.allclose(kept.predict(images), member.model.predict(images), atol=1e-6)


def test_the_guard_makes_the_test_split_unreadable() -> None:
    datamodule = build_datamodule(RunConfig.model_validate({"data": {"dataset": "digits"}}))
    with unreadable_test_split():
        assert len(datamodule.val_labels) > 0
        with pytest.raises(SplitReadTooEarly):
            _ = datamodule.test_images
        with pytest.raises(SplitReadTooEarly):
            datamodule.test_dataloader()
    assert len(datamodule.test_labels) > 0


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
    pace of well under a second per epoch, starts with the ceiling's epochs."""
    spec = load_experiment(in_study.folder / "tiny.yaml")
    options = ReproduceOptions(epochs=2, register=False, deadline=time.time() + 600, epoch_ceiling=3)
    lines: list[str] = []
    result = reproduce_ensemble(spec, options, 2, progress=lines.append)
    first, second = (member.trial.number for member in result.members)
    assert f"member 0: trial {first} started, 2 epochs (1 of 2 training)" in lines
    assert f"member 1: trial {second} started, 3 epochs (1 of 2 training)" in lines
    assert f"trial {second}: 3 epochs instead of the 2 planned, at the pace the members before it kept." in (
        result.notes
    )
    assert any(
        note.startswith(f"trial {first}: training lengthened to 3 epochs from the 2 planned")
        for note in result.notes
    )
    client = mlflow_client()
    epochs = [len(client.get_metric_history(m.run_id, "val/acc")) for m in result.members]
    assert epochs == [3, 3]
