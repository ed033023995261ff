"""The test split, read once: a reproduction's final test, and `convtune evaluate` of a stored model."""

from __future__ import annotations

from torch import Tensor

from lightning_modules.config import DataConfig
from lightning_modules.data import DATASET_NAMES, DatasetNotFoundError
from lightning_modules.data.datamodule import ImageDataModule
from search.errors import ConfigError
from search.inspect.evaluation import Evaluation, evaluate_model
from search.reproduce.images import fit_images
from search.reproduce.selection import AveragingReport, TTAChoice
from search.tracking.model_store import AnyModel, InferenceModel, load_inference_model


def final_test(
    model: AnyModel,
    datamodule: ImageDataModule,
    tta: TTAChoice | None = None,
    averaging: AveragingReport | None = None,
) -> tuple[Evaluation, dict[str, float]]:
    """The one place a reproduction reads the test split, after every decision is taken on the
    validation split: `model`'s evaluation, and (reported, never used to decide) the test accuracy
    with and without test-time augmentation when it was considered, and of the kept and the final
    raw weights under weight averaging."""
    images, labels = datamodule.test_images, datamodule.test_labels
    test = evaluate_model(model, images, labels)
    considered = tta is not None and tta.tta_accuracy is not None
    if not isinstance(model, InferenceModel) or not (considered or averaging is not None):
        return test, {}
    plain = plain_accuracy(model, test.accuracy, images, labels)
    variants: dict[str, float] = {}
    if tta is not None and considered:
        augmented = model.with_tta(tta.transforms)
        tta_accuracy = test.accuracy if tta.kept else evaluate_model(augmented, images, labels).accuracy
        variants = {"test/acc_tta": tta_accuracy, "test/acc_plain": plain}
    if averaging is not None:
        variants |= averaging_test(averaging, plain, images, labels)
    return test, variants


def plain_accuracy(model: InferenceModel, accuracy: float, images: Tensor, labels: Tensor) -> float:
    """`model`'s accuracy without test-time augmentation: `accuracy` (measured on the model as it is)
    when it has none, else measured again without it."""
    return accuracy if not model.tta else evaluate_model(model.with_tta([]), images, labels).accuracy


def averaging_test(
    averaging: AveragingReport, plain: float, images: Tensor, labels: Tensor
) -> dict[str, float]:
    """Test accuracy of the kept weights (`plain`: without test-time augmentation) and of the final
    raw ones, measured likewise without it."""
    raw = evaluate_model(averaging.raw_model, images, labels).accuracy
    return {"test/acc_averaged": plain, "test/acc_raw": raw}


def evaluate_on_dataset(
    model_ref: str, dataset: str | None = None, root: str | None = None
) -> tuple[Evaluation, str]:
    """Loads a model and evaluates it on a dataset's test split (default: the data it was trained on)."""
    model = load_inference_model(model_ref)
    values = dict(model.description.data)
    if dataset is not None and dataset != values.get("dataset"):
        if dataset not in DATASET_NAMES:
            raise ConfigError(f"--dataset must be one of {', '.join(DATASET_NAMES)}, but got {dataset!r}.")
        values |= {"dataset": dataset, "root": None}
    if root is not None:
        values["root"] = root
    datamodule = ImageDataModule(DataConfig.model_validate(values), seed=model.description.seed)
    try:
        datamodule.setup()
    except DatasetNotFoundError as error:
        raise ConfigError(str(error)) from None
    if datamodule.num_classes != len(model.class_names):
        raise ConfigError(
            f"{values['dataset']} has {datamodule.num_classes} classes but the model predicts "
            f"{len(model.class_names)}; evaluate it on a dataset with the same classes."
        )
    images = fit_images(datamodule.test_images, model.in_channels, model.image_size)
    return evaluate_model(model, images, datamodule.test_labels), str(values["dataset"])
