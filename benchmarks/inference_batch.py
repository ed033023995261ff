"""Inference speed of a reproduction's passes: `InferenceModel.predict` against the layout it replaced.

A member's validation passes (its test-time augmentation choice) and the end of `reproduce --top-k`
(each member's test passes) are float32 inference over 6,000 to 10,000 images per view. This times,
for the headline's widest network (two convs per block, 32-64-128, 512 hidden units; untrained, the
speed does not depend on the weights) on Fashion-MNIST-sized images, with the headline's 6 views:
- before: NCHW weights and inputs, 512 images per pass, all views in one batch (3,072 inputs);
- now: `predict` as it is (channels_last weights and inputs, `PREDICT_BATCH` inputs per pass).
Prints the median img/s (images, every view counted) of each and the ratio now / before, and checks
both give the same probabilities.

    python benchmarks/inference_batch.py                   # every thread, 10,000 images, 3 repeats
    python benchmarks/inference_batch.py --threads 1
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from lightning_modules.models.registry import create_model
from lightning_modules.tta import average_views
from search.tracking.model_store import PREDICT_BATCH, InferenceModel, ModelDescription

HEADLINE_TTA = [
    "HorizontalFlip",
    "Affine(translate_px={x: 1, y: 0})",
    "Affine(translate_px={x: -1, y: 0})",
    "Affine(translate_px={x: 0, y: 1})",
    "Affine(translate_px={x: 0, y: -1})",
]
NETWORK = {
    "channels": [32, 64, 128],
    "convs_per_block": 2,
    "kernel_size": 3,
    "padding": "same",
    "batch_norm": True,
    "hidden": [512],
}


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    network = create_model("convnet", in_channels=1, num_classes=10, image_size=28, **NETWORK).eval()
    before = copy.deepcopy(network)
    description = ModelDescription(
        model={"name": "convnet", **NETWORK},
        in_channels=1,
        image_size=(28, 28),
        class_names=[str(i) for i in range(10)],
        mean=[0.286],
        std=[0.353],
        data={"dataset": "fashion-mnist"},
        tta=HEADLINE_TTA,
    )
    model = InferenceModel(network, description)
    images = torch.randint(0, 256, (args.images, 1, 28, 28), dtype=torch.uint8)

    @torch.inference_mode()
    def predict_before(images: torch.Tensor) -> torch.Tensor:
        chunks = []
        for start in range(0, len(images), 512):
            inputs = model.normalize(images[start : start + 512])
            chunks.append(average_views(before, inputs, model.tta, model.black).float().softmax(dim=1))
        return torch.cat(chunks)

    torch.testing.assert_close(predict_before(images), model.predict(images), atol=1e-5, rtol=1e-4)
    views = model.views
    rates = {}
    for name, run in (("before (NCHW, 512 x 6 views)", predict_before), ("now (predict)", model.predict)):
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            run(images)
            seconds.append(time.perf_counter() - started)
        rates[name] = args.images * views / statistics.median(seconds)
    print(f"{args.threads} thread(s), {args.images:,} images x {views} views, PREDICT_BATCH={PREDICT_BATCH}")
    for name, rate in rates.items():
        print(f"  {name:<30} {rate:8,.0f} img/s")
    now, was = rates["now (predict)"], rates["before (NCHW, 512 x 6 views)"]
    print(f"  ratio now / before: x{now / was:.2f}")


if __name__ == "__main__":
    main()
