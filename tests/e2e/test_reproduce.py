"""`convtune reproduce`, `predict`, `evaluate`, `export` end to end on a tiny digits study.

One module-scoped study is tuned once and reproduced twice; the other tests read what it left.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from search.cli.main import main
from search.experiment.spec import validate_experiment
from search.reproduce.options import ReproduceOptions
from search.reproduce.plan import precision_notes
from search.reproduce.reproduce import Reproduction, reproduce
from search.study.runner import TuneOptions, tune
from search.study.study import best_trial
from search.tracking import Tracker, load_settings
from search.tracking.model_store import InferenceModel, load_inference_model
from search.tracking.vocabulary import TAG_REPRODUCTION_OF
from tests.conftest import tiny_experiment, write_experiment
from tests.helpers.parallel_helpers import mlflow_client
from tests.helpers.study_folder import inside_study_folder
from tests.helpers.tiny_runs import write_digit_pngs


@dataclass
class Reproduced:
    folder: Path
    experiment: Path
    best_trial: int
    best_run_id: str
    best_value: float
    first: Reproduction
    second: Reproduction


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reproduced]:
    """A 2-trial digits study, its best trial reproduced twice (registered as versions 1 and 2)."""
    with inside_study_folder(tmp_path_factory.mktemp("reproduce")) as folder:
        raw = tiny_experiment()
        experiment = write_experiment(folder, raw)
        spec = validate_experiment(raw)
        study = tune(spec, TuneOptions(progress=False))
        best = best_trial(study)
        assert best is not None
        first = reproduce(spec, ReproduceOptions())
        second = reproduce(spec, ReproduceOptions())
        yield Reproduced(
            folder, experiment, best.number, best.user_attrs["mlflow_run_id"], best.value, first, second
        )


@pytest.fixture
def in_study(reproduced: Reproduced, monkeypatch: pytest.MonkeyPatch) -> Reproduced:
    monkeypatch.chdir(reproduced.folder)
    return reproduced


def test_two_reproductions_are_identical_and_match_the_trial(in_study: Reproduced) -> None:
    first, second = in_study.first, in_study.second
    assert first.trial.number == in_study.best_trial
    assert first.value == second.value
    assert first.matches and second.matches, (first.verdict(), second.verdict())
    assert first.value == in_study.best_value
    assert first.test.confusion.equal(second.test.confusion)
    for (name, a), b in zip(
        first.model.network.state_dict().items(), second.model.network.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_reproduction_run_is_tagged_and_holds_test_results(in_study: Reproduced) -> None:
    client = mlflow_client()
    run = client.get_run(in_study.first.run_id)
    assert run.data.tags[TAG_REPRODUCTION_OF] == in_study.best_run_id
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test/acc"] == pytest.approx(in_study.first.test.accuracy)
    assert run.data.metrics["objective"] == in_study.first.value
    assert sum(key.startswith("test/acc_class/") for key in run.data.metrics) == 10
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"confusion_matrix.png", "confusion_matrix.json", "config.yaml", "reproduction.json"} <= artifacts
    matrix = json.loads(Path(client.download_artifacts(run.info.run_id, "confusion_matrix.json")).read_text())
    assert sum(map(sum, matrix["matrix"])) == in_study.first.test.total
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "tiny"


def test_registry_holds_a_new_version_per_reproduction_with_the_champion_alias(in_study: Reproduced) -> None:
    client = mlflow_client()
    versions = sorted(int(v.version) for v in client.search_model_versions("name='tiny'"))
    assert versions == [1, 2]
    champion = client.get_model_version_by_alias("tiny", "champion")
    assert str(champion.version) == "2"
    assert champion.tags[TAG_REPRODUCTION_OF] == in_study.best_run_id
    assert in_study.second.registered is not None
    assert in_study.second.registered.alias_uri == "models:/tiny@champion"


def test_loaded_champion_matches_the_reproduced_model(in_study: Reproduced) -> None:
    loaded = load_inference_model("models:/tiny@champion")
    assert isinstance(loaded, InferenceModel)
    assert loaded.class_names == [str(i) for i in range(10)]
    assert (loaded.in_channels, loaded.image_size) == (1, (8, 8))
    images = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    assert torch.equal(loaded.predict(images), in_study.second.model.predict(images))
    by_run = load_inference_model(f"runs:/{in_study.first.run_id}/model")
    assert torch.equal(by_run.predict(images), in_study.first.model.predict(images))
    state = loaded.network.state_dict()  # what fine-tuning reads as model.weights
    assert "mean" not in state and all(not key.startswith("network.") for key in state)


def test_mlflow_pyfunc_serves_the_pt2_model_without_convtune(in_study: Reproduced) -> None:
    import mlflow.pyfunc

    pyfunc = mlflow.pyfunc.load_model("models:/tiny@champion")  # torch.export graph, checked pickle-free
    images = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    output = pyfunc.predict(images.numpy())
    np.testing.assert_allclose(output, in_study.second.model.predict(images).numpy(), atol=1e-6)


def test_predict_on_png_files_agrees_with_the_models_own_evaluation(
    in_study: Reproduced, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths, images, _ = write_digit_pngs(tmp_path, 12)
    model = in_study.second.model
    probabilities = model.predict(images)
    assert main(["predict", "models:/tiny@champion", *map(str, paths)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(paths)
    for line, path, row in zip(lines, paths, probabilities, strict=True):
        name, label, probability = line.split("\t")
        assert name == str(path)
        assert label == model.class_names[int(row.argmax())]
        assert float(probability) == pytest.approx(float(row.max()), abs=5e-5)


def test_evaluate_prints_the_test_accuracy_of_reproduce(
    in_study: Reproduced, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "models:/tiny@champion", "--dataset", "digits"]) == 0
    out = capsys.readouterr().out
    assert f"accuracy {in_study.second.test.accuracy:.4f}" in out
    assert f"({in_study.second.test.total} images)" in out


def test_export_torchscript_and_onnx_match_the_model(in_study: Reproduced, tmp_path: Path) -> None:
    import onnx
    import onnxruntime

    model = in_study.second.model
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    expected = model.predict(images)
    script_path, onnx_path = tmp_path / "model.pt", tmp_path / "model.onnx"
    assert (
        main(["export", "models:/tiny@champion", "--format", "torchscript", "--out", str(script_path)]) == 0
    )
    assert main(["export", "models:/tiny@champion", "--format", "onnx", "--out", str(onnx_path)]) == 0

    extra = {"convtune.json": ""}
    scripted = torch.jit.load(str(script_path), _extra_files=extra)
    assert torch.allclose(scripted(images), expected, atol=1e-6)
    assert torch.allclose(scripted(images.float() / 255), expected, atol=1e-5)
    assert json.loads(extra["convtune.json"])["class_names"] == model.class_names

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {"images": images.numpy()})
    np.testing.assert_allclose(output, expected.numpy(), atol=1e-5)
    metadata = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(metadata["convtune"])["image_size"] == [8, 8]


def test_saved_model_file_round_trips_with_weights_only(in_study: Reproduced, tmp_path: Path) -> None:
    model = in_study.first.model
    path = model.save(tmp_path / "model.pt")
    assert isinstance(torch.load(path, weights_only=True), dict)
    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    assert torch.equal(load_inference_model(str(path)).predict(images), model.predict(images))


def test_truncated_model_file_is_a_clear_error(in_study: Reproduced, tmp_path: Path) -> None:
    from search.errors import ConvtuneError

    path = in_study.first.model.save(tmp_path / "model.pt")
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ConvtuneError, match="is not a readable model file"):
        load_inference_model(str(path))


def test_unknown_registered_model_is_one_line(
    in_study: Reproduced, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "models:/no-such-model@champion"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot load model models:/no-such-model@champion" in err


def test_reproduce_cli_reports_the_match(in_study: Reproduced, capsys: pytest.CaptureFixture[str]) -> None:
    trial = str(in_study.best_trial)
    assert main(["reproduce", str(in_study.experiment), "--trial", trial, "--no-register", "--strict"]) == 0
    out = capsys.readouterr().out
    assert "matches the original to the last digit" in out
    assert f"test split: accuracy {in_study.first.test.accuracy:.4f}" in out
    logged = out.split("model logged, not registered: ")[1].split()[0]
    assert logged.startswith("models:/m-") and "registered models:/" not in out
    assert main(["evaluate", logged]) == 0  # --no-register still stores the model in the run
    assert f"{in_study.first.test.accuracy:.4f}" in capsys.readouterr().out


def test_unknown_trial_number_is_a_config_error(
    in_study: Reproduced, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reproduce", str(in_study.experiment), "--trial", "9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "has no trial 9 (trials 0..1)" in err


def test_a_difference_is_shown_with_its_likely_cause(in_study: Reproduced) -> None:
    per_image = [{"Affine": {"translate_percent": [-0.1, 0.1]}}, {"CoarseDropout": {}}]
    augmented = in_study.first.config.model_copy(update={"augment": per_image})
    differing = replace(in_study.first, config=augmented, original_value=in_study.first.value - 0.01)
    assert not differing.matches
    verdict = differing.verdict()
    assert verdict.startswith(f"differs from the original: {in_study.first.value!r} vs ")
    assert "(difference +0.01)" in verdict and "set data.num_workers" in verdict
    batched = in_study.first.config.model_copy(update={"augment": per_image[:1]})  # no worker count matters
    assert "num_workers" not in replace(differing, config=batched).verdict()


def test_a_machine_that_resolves_precision_otherwise_is_noted(in_study: Reproduced) -> None:
    tracker = Tracker(load_settings())
    assert tracker.run_tag(in_study.first.run_id, "convtune.precision") == "32"
    assert precision_notes(tracker, in_study.best_run_id, "32") == []
    tracker.set_tags(in_study.best_run_id, {"convtune.precision": "bf16-mixed"})
    try:
        notes = precision_notes(tracker, in_study.best_run_id, "32")
    finally:
        tracker.set_tags(in_study.best_run_id, {"convtune.precision": "32"})
    assert notes == [
        "trains in precision 32 here, but the trial trained in bf16-mixed; expect another result."
    ]


def test_changed_epochs_or_fields_make_a_reproduction_not_comparable(
    in_study: Reproduced, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["reproduce", str(in_study.experiment), "--no-register", "--strict"]
    assert main([*command, "--epochs", "1", "--set", "data.batch_size=32"]) == 0  # --strict: no verdict
    out = capsys.readouterr().out
    assert "not comparable: the reproduction changed the trial's data.batch_size, trainer.max_epochs." in out
    assert in_study.first.changed == [] and in_study.first.comparable
