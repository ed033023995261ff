"""`reproduce --top-k`: an ensemble of tiny digits models chosen on the validation split only, one
registered model that predict, evaluate, export (ONNX, TorchScript) and explain accept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from PIL import Image

import search.reproduce.ensemble as ensemble_module
from lightning_modules.config import RunConfig
from lightning_modules.training import build_datamodule
from search.cli.main import main
from search.reproduce.ensemble_model import EnsembleModel
from search.reproduce.member import MEMBER_MODEL_PATH
from search.reproduce.plan import recorded_config
from search.study.storage import open_storage
from search.study.study import find_study
from search.tracking import vocabulary as v
from search.tracking.model_store import InferenceModel, load_inference_model
from search.tracking.settings import load_settings
from search.tracking.tracker import Tracker
from tests.e2e.ensemble.study import NAME, URI, Ensembled, SplitReadTooEarly, unreadable_test_split
from tests.helpers.parallel_helpers import mlflow_client


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
