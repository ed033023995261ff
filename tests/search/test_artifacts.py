"""Per-trial pictures, per-study plots, Grad-CAM and `convtune explain`, on tiny digits runs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
import pytest
import torch
from mlflow import MlflowClient
from PIL import Image
from torch import nn

from lightning_modules.callbacks import BestWeights
from lightning_modules.config import RunConfig
from lightning_modules.models.config import ConvNetConfig
from lightning_modules.models.convnet import ConvNet
from lightning_modules.models.shapes import architecture_table
from lightning_modules.training import build_run, create_trainer
from search.cli.main import main
from search.experiment.spec import validate_experiment
from search.inspect.gradcam import cam_layer, explain_image, grad_cam
from search.inspect.pictures import conv_blocks
from search.study.runner import TuneOptions, tune
from search.tracking import load_settings
from search.tracking.artifacts import draw_pictures
from search.tracking.study_plots import PLOTS, StudyPlotsRefresher, summary_markdown, write_study_plots
from tests.conftest import tiny_experiment

TRIAL_PICTURES = {
    "architecture.png",
    "filters.png",
    "feature_maps_block0.png",
    "feature_maps_block1.png",
    "confusion_matrix.png",
    "misclassified.png",
}


def _client() -> MlflowClient:
    settings = load_settings()
    return MlflowClient(settings.tracking_uri, settings.registry_uri)


def _assert_png(path: Path) -> None:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) >= 100, f"{path.name} is only {image.size}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A convnet trained for one epoch on digits, with its datamodule."""
    spec = validate_experiment(tiny_experiment(trainer={"max_epochs": 1}))
    config = spec.run_config()
    parts = build_run(config)
    best = BestWeights()
    create_trainer(config.trainer, callbacks=[best]).fit(parts.module, datamodule=parts.datamodule)
    best.restore(parts.module)
    return parts, config


def test_every_finished_trial_has_valid_pictures_and_the_study_its_plots(workdir: Path) -> None:
    spec = validate_experiment(tiny_experiment(search={**tiny_experiment()["search"], "artifacts": True}))
    study = tune(spec, TuneOptions(progress=False))
    client = _client()
    for trial in study.trials:
        run_id = trial.user_attrs["mlflow_run_id"]
        names = {artifact.path for artifact in client.list_artifacts(run_id)}
        assert TRIAL_PICTURES | {"architecture.md", "config.yaml"} <= names, names
        folder = Path(client.download_artifacts(run_id, "", str(workdir / f"run{trial.number}")))
        for name in TRIAL_PICTURES:
            _assert_png(folder / name)
        table = (folder / "architecture.md").read_text()
        for column in (
            "kind",
            "filter",
            "stride",
            "padding",
            "output",
            "receptive field",
            "dense equivalent",
            "multiply-adds",
        ):
            assert column in table
    parent = study.user_attrs["mlflow_parent_run_id"]
    folder = Path(client.download_artifacts(parent, "", str(workdir / "parent")))
    for name in ("optimization_history", "parallel_coordinate", "slice"):
        _assert_png(folder / f"{name}.png")
    html = (folder / "study_plots.html").read_text()
    assert (
        html.startswith("<!DOCTYPE html>") and "Plotly.newPlot" in html and html.rstrip().endswith("</html>")
    )
    summary = (folder / "summary.md").read_text()
    assert "trial-0000" in summary and "trial-0001" in summary


def test_no_artifacts_leaves_only_the_config(workdir: Path) -> None:
    spec = validate_experiment(tiny_experiment(search={**tiny_experiment()["search"], "artifacts": True}))
    study = tune(spec, TuneOptions(progress=False, n_trials=1, artifacts=False))
    names = {a.path for a in _client().list_artifacts(study.trials[0].user_attrs["mlflow_run_id"])}
    assert names == {"config.yaml"}


@pytest.mark.parametrize(
    "fields",
    [
        {"channels": [4, 8], "kernel_size": 3, "stride": 1, "padding": "same", "pool": "avg"},
        {"channels": [4, 8, 8], "kernel_size": 5, "stride": 2, "padding": "valid", "pool": "none"},
        {"channels": [4, 8], "kernel_size": 3, "convs_per_block": 2, "padding": 1, "pool": "avg"},
    ],
)
def test_shapes_and_receptive_fields_of_the_table_match_torch(fields: dict) -> None:
    """Output shapes from hooks; receptive field as the support of one output's input gradient."""
    config = ConvNetConfig(name="convnet", activation="relu", batch_norm=False, dropout=0.0, **fields)
    size = (48, 48)
    network = ConvNet(config, in_channels=1, num_classes=3, image_size=size).eval()
    rows = {row.name: row for row in architecture_table(config, 1, size, 3)}
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.constant_(module.weight, 0.1)
            nn.init.constant_(module.bias, 0.01)
    modules = dict(network.named_modules())
    for name, row in rows.items():
        if row.kind not in ("conv", "pool"):
            continue
        image = torch.ones(1, 1, *size, requires_grad=True)
        captured: list[torch.Tensor] = []
        hook = modules[name].register_forward_hook(lambda _m, _i, out, keep=captured: keep.append(out))
        network(image)
        hook.remove()
        output = captured[0]
        assert tuple(output.shape[1:]) == row.out_shape, name
        y, x = output.shape[-2] // 2, output.shape[-1] // 2
        output[0, 0, y, x].backward()
        rows_hit = image.grad[0, 0].abs().sum(dim=1).nonzero().flatten()
        cols_hit = image.grad[0, 0].abs().sum(dim=0).nonzero().flatten()
        assert int(rows_hit[-1] - rows_hit[0] + 1) == row.receptive_field, name
        assert int(cols_hit[-1] - cols_hit[0] + 1) == row.receptive_field, name


def test_pictures_of_a_trained_module(trained: tuple, tmp_path: Path) -> None:
    parts, _ = trained
    datamodule = parts.datamodule
    paths = draw_pictures(
        parts.module.eval(), datamodule.val_images, datamodule.val_labels, datamodule.class_names, tmp_path
    )
    assert {p.name for p in paths} == TRIAL_PICTURES - {"architecture.png"}
    for path in paths:
        _assert_png(path)


def test_feature_map_blocks_of_a_network_without_blocks_are_its_stages() -> None:
    network = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
    )  # fmt: skip
    names = [name for name, _ in conv_blocks(network, torch.zeros(1, 1, 8, 8))]
    assert names == ["2", "4"]


def test_grad_cam_lights_up_where_the_evidence_for_the_class_is() -> None:
    conv = nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        conv.bias.zero_()
    head = nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        head.bias.zero_()
    network = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    image = torch.zeros(1, 1, 8, 8)
    image[..., :3, 5:] = 1.0  # the only evidence: a bright patch at the top right
    name, layer = cam_layer(network)
    assert name == "0"
    cam, probabilities = grad_cam(network, image, layer)
    assert cam.shape == (8, 8)
    assert float(cam[:3, 5:].min()) == pytest.approx(1.0)
    assert float(cam[3:].max()) == 0 and float(cam[:, :5].max()) == 0
    assert int(probabilities.argmax()) == 0 and float(probabilities.sum()) == pytest.approx(1.0)


def test_explain_image_on_a_trained_module(trained: tuple, tmp_path: Path) -> None:
    parts, config = trained
    module, datamodule = parts.module.eval(), parts.datamodule
    image = datamodule.val_images[:1]
    rows = architecture_table(config.model, 1, datamodule.image_size, datamodule.num_classes)
    result = explain_image(module.model, module.prepare(image), image, datamodule.class_names, tmp_path, rows)
    names = {p.name for p in result.paths}
    assert {"gradcam.png", "filters.png", "architecture.png", "feature_maps_block0.png"} <= names
    for path in result.paths:
        _assert_png(path)
    assert result.predicted == int(module(image).argmax())


def test_convtune_explain_on_a_saved_model(
    trained: tuple, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from search.tracking.model_store import inference_model_from_run

    parts, config = trained
    datamodule = parts.datamodule
    model = inference_model_from_run(
        parts.module.model,
        model_config=config.model.model_dump(mode="json"),
        data_config=config.data.model_dump(mode="json"),
        in_channels=datamodule.in_channels,
        image_size=datamodule.image_size,
        class_names=datamodule.class_names,
        mean=datamodule.mean,
        std=datamodule.std,
    )
    model.save(workdir / "model.pt")
    Image.fromarray(datamodule.val_images[0, 0].numpy()).resize((32, 32)).save(workdir / "digit.png")
    assert main(["explain", "model.pt", "digit.png", "--out", "out"]) == 0
    printed = capsys.readouterr().out
    assert "receptive field" in printed and "prediction:" in printed
    for name in ("gradcam.png", "filters.png", "architecture.png", "feature_maps_block1.png"):
        _assert_png(workdir / "out" / name)
    assert "blocks.0.conv0" in (workdir / "out" / "architecture.md").read_text()


def _toy_study(n_trials: int) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_user_attr("experiment", {"search": {"metric": "val/acc", "artifacts": True}})
    study.optimize(
        lambda t: t.suggest_int("width", 1, 9) / 10 + t.suggest_float("lr", 1e-4, 1e-1, log=True),
        n_trials=n_trials,
    )
    return study


def test_study_plots_are_valid_png_and_html(tmp_path: Path) -> None:
    result = write_study_plots(_toy_study(8), tmp_path)
    assert result.skipped == {}
    for name in PLOTS:
        _assert_png(tmp_path / f"{name}.png")
    html = (tmp_path / "study_plots.html").read_text()
    assert html.count("Plotly.newPlot") == len(PLOTS)
    assert html.count("plotly.js v") <= 2  # plotly.js embedded once, for offline viewing


def test_study_plots_of_a_one_trial_study_are_drawn_without_failing(tmp_path: Path) -> None:
    result = write_study_plots(_toy_study(1), tmp_path)
    for path in result.written:
        if path.suffix == ".png":
            _assert_png(path)
    assert (tmp_path / "study_plots.html").is_file()
    summary = (tmp_path / "summary.md").read_text()
    assert "1 complete" in summary and "trial-0000" in summary


def test_summary_lists_the_best_trials_first() -> None:
    study = _toy_study(6)
    lines = [line for line in summary_markdown(study).splitlines() if line.startswith("| 1 |")]
    assert lines and f"trial-{study.best_trial.number:04d}" in lines[0]


def test_refresher_waits_for_enough_trials_and_keeps_its_share_small() -> None:
    calls: list[int] = []
    study = _toy_study(2)

    def slow_write(s: optuna.Study, *_: object) -> None:
        calls.append(len(s.trials))

    refresher = StudyPlotsRefresher(None, "parent", every=2, max_share=0.05, write=slow_write)  # type: ignore[arg-type]
    refresher(study)
    assert calls == [2]
    refresher.last_cost = 1000.0  # the last refresh was slow: wait 20000 s before the next
    study.optimize(lambda t: t.suggest_float("lr", 1e-4, 1e-1, log=True), n_trials=2)
    refresher(study)
    assert calls == [2]
    refresher.last_cost = 0.0
    refresher(study)
    assert calls == [2, 4]
    off = StudyPlotsRefresher(None, "parent", write=slow_write, enabled=False)  # type: ignore[arg-type]
    off(study)
    assert calls == [2, 4]


def test_ui_refuses_a_busy_port_before_starting_anything(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_ui_warns_about_exposure_only_off_loopback() -> None:
    from search.cli.commands.ui import exposure_warning, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    warning = exposure_warning("0.0.0.0", 5000)
    assert "--allowed-hosts" in warning and "basic-auth" in warning


def test_pictures_reuse_the_best_epochs_validation_predictions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The confusion matrix comes from the best validation epoch, with no second pass over the images."""
    import search.tracking.artifacts as artifacts_module

    config = RunConfig.model_validate(
        {"data": {"dataset": "digits"}, "model": {"channels": [8, 16]}, "trainer": {"max_epochs": 2}}
    )
    parts = build_run(config)
    best = BestWeights("val/acc", "max")
    create_trainer(config.trainer, callbacks=[best]).fit(parts.module, datamodule=parts.datamodule)
    predicted, confidence = best.best_predictions
    assert bool(((confidence > 0) & (confidence <= 1)).all())
    labels = parts.datamodule.val_labels
    assert len(predicted) == len(labels)
    assert float((predicted == labels).float().mean()) == pytest.approx(best.best_value, abs=1e-6)

    def no_second_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("predict() ran again")

    monkeypatch.setattr(artifacts_module, "predict", no_second_pass)
    with tempfile.TemporaryDirectory() as folder:
        artifacts_module.write_pictures(parts, config, best, Path(folder))
        assert (Path(folder) / "confusion_matrix.png").stat().st_size > 0
