"""Feature maps: what each conv block of a network outputs for a few images, one PNG per block.

`inputs` are images as the network sees them (normalized float), `display` the same images as uint8
`N x C x H x W`, drawn as they are. At most `MAX_BLOCKS` blocks and `MAX_CHANNELS` channels per map.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lightning_modules.models.layer_table import LayerInfo
from search.inspect.drawing import input_rgb, mosaic, rgb, save, short

MAX_CHANNELS = 8
MAX_BLOCKS = 6


def conv_blocks(network: nn.Module, sample: Tensor) -> list[tuple[str, nn.Module]]:
    """The modules whose outputs are "the feature maps of each conv block", in forward order.

    A `convnet` has them as `network.blocks`; for any other network, the last convolution before
    each change of feature-map size (the end of a stage), found with hooks on one forward of `sample`.
    """
    blocks = getattr(network, "blocks", None)
    if isinstance(blocks, nn.ModuleList) and len(blocks):
        return [(f"blocks.{index}", block) for index, block in enumerate(blocks)][:MAX_BLOCKS]
    names = {module: name for name, module in network.named_modules()}
    seen: list[tuple[nn.Module, tuple[int, ...]]] = []
    hooks = [
        m.register_forward_hook(lambda m, _i, out: seen.append((m, tuple(out.shape[-2:]))))
        for m in network.modules()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        with torch.inference_mode():
            network(sample[:1])
    finally:
        for hook in hooks:
            hook.remove()
    stages = [
        module for (module, size), nxt in zip(seen, [*seen[1:], (None, None)], strict=True) if size != nxt[1]
    ]
    return [(names[module], module) for module in stages][-MAX_BLOCKS:]


def capture_outputs(
    network: nn.Module, modules: Sequence[nn.Module], inputs: Tensor
) -> tuple[Tensor, list[Tensor]]:
    """Logits of `inputs` and the output of each of `modules` during that forward (on the CPU)."""
    outputs: dict[int, Tensor] = {}
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, index=index: outputs.__setitem__(index, out.detach().float().cpu())
        )
        for index, module in enumerate(modules)
    ]
    try:
        with torch.inference_mode():
            logits = network(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return logits.float().cpu(), [outputs[index] for index in range(len(modules))]


def receptive_fields(rows: Sequence[LayerInfo]) -> dict[str, int]:
    """Receptive field at the end of each module prefix (`blocks.0` -> its last row's field)."""
    fields: dict[str, int] = {}
    for row in rows:
        if row.receptive_field is None:
            continue
        parts = row.name.split(".")
        for end in range(1, len(parts) + 1):
            fields[".".join(parts[:end])] = row.receptive_field
    return fields


def plot_feature_maps(
    display: Tensor,
    maps: Tensor,
    path: Path,
    *,
    block: str,
    labels: Sequence[str] | None = None,
    receptive_field: int | None = None,
) -> Path:
    """One block's output for a few images: a row per image, the input first, then its most active maps.

    `maps` is `N x C x h x w`; the channels shown are the `MAX_CHANNELS` with the highest mean
    activation over these images, each drawn with its own color scale (brighter: stronger).
    """
    count, channels, height, width = maps.shape
    chosen = maps.mean(dim=(0, 2, 3)).argsort(descending=True)[:MAX_CHANNELS].tolist()
    cells: list[list[np.ndarray | None]] = []
    titles: list[list[str]] = []
    for row in range(count):
        line: list[np.ndarray | None] = [input_rgb(display[row])]
        for channel in chosen:
            picture = maps[row, channel].numpy()
            line.append(rgb(picture, "viridis", vmin=float(picture.min()), vmax=float(picture.max())))
        cells.append(line)
        names = [f"channel {c}" for c in chosen] if row == 0 else []  # column headers on top only
        titles.append([f"input: {short(labels[row])}" if labels else "input", *names])
    seen = f", each pixel sees {receptive_field}x{receptive_field} input pixels" if receptive_field else ""
    title = (
        f"feature maps after {block}: {channels} channels of {height}x{width}{seen}\n"
        f"left: the input image; then the {len(chosen)} most active channels (brighter = stronger)"
    )
    return save(mosaic(cells, titles, title), path)


def block_file_name(block: str) -> str:
    """`blocks.0` -> `feature_maps_block0.png`; other module names with dots as underscores."""
    return "feature_maps_" + block.replace("blocks.", "block").replace(".", "_") + ".png"


def draw_feature_maps(
    network: nn.Module,
    inputs: Tensor,
    display: Tensor,
    folder: Path,
    *,
    titles: Sequence[str] | None = None,
    fields: dict[str, int] | None = None,
) -> list[Path]:
    """One `feature_maps_<block>.png` per conv block for the images `inputs` (drawn as `display`)."""
    blocks = conv_blocks(network, inputs)
    _, maps = capture_outputs(network, [module for _, module in blocks], inputs)
    fields = fields or {}
    return [
        plot_feature_maps(
            display,
            output,
            folder / block_file_name(name),
            block=name,
            labels=titles,
            receptive_field=fields.get(name),
        )
        for (name, _), output in zip(blocks, maps, strict=True)
        if output.dim() == 4
    ]
