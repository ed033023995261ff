"""Grad-CAM (Selvaraju et al., 2017): where in the image the network looked for a class.

The class score's gradient with respect to the last conv block's activations, averaged over each
channel, weighs those channels; their positive sum, scaled up to the input, is the map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn

from lightning_modules.models.layer_table import LayerInfo
from search.inspect.architecture_plot import plot_architecture
from search.inspect.drawing import as_picture, hide_axes, save, short
from search.inspect.feature_maps import draw_feature_maps, receptive_fields
from search.inspect.filters import first_conv, plot_filters


def cam_layer(network: nn.Module) -> tuple[str, nn.Module]:
    """The last conv block's activation (a `convnet`: before its pooling), else the last convolution."""
    names = {module: name for name, module in network.named_modules()}
    blocks = getattr(network, "blocks", None)
    if isinstance(blocks, nn.ModuleList) and len(blocks):
        last = blocks[-1]
        acts = [module for name, module in last.named_children() if name.startswith("act")]
        if acts:
            return names[acts[-1]], acts[-1]
    convs = [module for module in network.modules() if isinstance(module, nn.Conv2d)]
    if not convs:
        raise ValueError("Grad-CAM needs a network with at least one nn.Conv2d; this one has none.")
    return names[convs[-1]], convs[-1]


def grad_cam(
    network: nn.Module, inputs: Tensor, layer: nn.Module, class_index: int | None = None
) -> tuple[Tensor, Tensor]:
    """Grad-CAM of one image (`inputs`: 1 x C x H x W): the map (H x W, in [0, 1]) and the probabilities.

    `class_index` defaults to the predicted class.
    """
    if inputs.dim() != 4 or inputs.shape[0] != 1:
        raise ValueError(f"inputs must be one image of shape 1xCxHxW, but got shape {tuple(inputs.shape)}.")
    captured: dict[str, Tensor] = {}

    def keep(_module: nn.Module, _inputs: object, output: Tensor) -> None:
        output.retain_grad()
        captured["activation"] = output

    was_training = network.training
    network.eval()
    hook = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = network(inputs.detach().requires_grad_(True)).float()
            target = int(logits.argmax(dim=1)) if class_index is None else class_index
            logits[0, target].backward()
    finally:
        hook.remove()
        network.train(was_training)
    activation = captured["activation"]
    weights = activation.grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True)).detach().float()
    cam = F.interpolate(cam, size=inputs.shape[-2:], mode="bilinear", align_corners=False)[0, 0].cpu()
    cam = cam / cam.max() if cam.max() > 0 else cam
    network.zero_grad(set_to_none=True)
    return cam, logits.detach().softmax(dim=1)[0].cpu()


def plot_grad_cam(
    display: Tensor,
    cam: Tensor,
    probabilities: Tensor,
    class_names: Sequence[str],
    path: Path,
    *,
    layer: str,
    top: int = 5,
) -> Path:
    """The image, the Grad-CAM overlay for the predicted class, and the top class probabilities."""
    figure = Figure(figsize=(11, 3.8), layout="constrained")
    left, middle, right = figure.subplots(1, 3)
    picture, cmap = as_picture(display)
    predicted = int(probabilities.argmax())
    left.imshow(picture, cmap=cmap, interpolation="nearest")
    left.set_title("input", fontsize=10)
    middle.imshow(picture, cmap=cmap, interpolation="nearest")
    overlay = middle.imshow(cam.numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear")
    figure.colorbar(overlay, ax=middle, shrink=0.8, label="importance for the prediction")
    middle.set_title(f"Grad-CAM at {layer}\nfor '{short(class_names[predicted], 24)}'", fontsize=10)
    for axes in (left, middle):
        hide_axes(axes)
    values, indices = probabilities.topk(min(top, len(probabilities)))
    names = [short(class_names[int(i)], 18) for i in indices]
    right.barh(range(len(names))[::-1], values.numpy(), color="tab:blue")
    right.set_yticks(range(len(names))[::-1], names, fontsize=9)
    right.set_xlim(0, 1)
    right.set_xlabel("probability")
    right.set_title(f"top {len(names)} classes", fontsize=10)
    return save(figure, path)


@dataclass(frozen=True)
class Explanation:
    """What `explain_image` wrote, and the prediction it explained."""

    paths: list[Path]
    probabilities: Tensor
    layer: str

    @property
    def predicted(self) -> int:
        return int(self.probabilities.argmax())


def explain_image(
    network: nn.Module,
    inputs: Tensor,
    display: Tensor,
    class_names: Sequence[str],
    folder: Path,
    rows: Sequence[LayerInfo] = (),
) -> Explanation:
    """The per-trial pictures for one image (`inputs`: 1 x C x H x W as the network sees it,
    `display`: the same uint8 image) plus `gradcam.png`, into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    network.eval()
    paths: list[Path] = []
    conv = first_conv(network)
    if conv is not None:
        paths.append(plot_filters(conv, folder / "filters.png"))
    if rows:
        paths.append(plot_architecture(rows, tuple(display.shape[-2:]), folder / "architecture.png"))
    paths += draw_feature_maps(network, inputs, display, folder, fields=receptive_fields(rows))
    name, layer = cam_layer(network)
    cam, probabilities = grad_cam(network, inputs, layer)
    paths.append(
        plot_grad_cam(display[0], cam, probabilities, class_names, folder / "gradcam.png", layer=name)
    )
    return Explanation(paths, probabilities, name)
