"""Freezing the feature extractor of a model: `none`, `backbone` or `until:<layer>`.

The feature extractor is `model.backbone` (a `BackboneClassifier`'s torchvision model, a
`ConvNet`'s conv blocks); everything else (the head) stays trainable. Batch norm layers whose
parameters are all frozen should also keep their running statistics: call `set_frozen_bn_eval`
after every `model.train()` (Lightning: at the start of each training epoch).
"""

from __future__ import annotations

from torch import nn

from lightning_modules.models.config import check_freeze

_BN = nn.modules.batchnorm._BatchNorm


def backbone_of(model: nn.Module) -> nn.Module:
    """The feature extractor of `model` (`model.backbone`)."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise ValueError(
            f"{type(model).__name__} has no .backbone module to freeze; "
            "freezing works on registered models (convnet and torchvision backbones)."
        )
    return backbone


def backbone_and_head(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Parameters split into `backbone` and `head` (everything else)."""
    in_backbone = {id(p) for p in backbone_of(model).parameters()}
    params = list(model.parameters())
    return {
        "backbone": [p for p in params if id(p) in in_backbone],
        "head": [p for p in params if id(p) not in in_backbone],
    }


def top_level_layers(model: nn.Module) -> list[str]:
    """Names of the direct children of the feature extractor (what `until:` usually names)."""
    return [name for name, _ in backbone_of(model).named_children()]


def _until_prefix(model: nn.Module, layer: str) -> str:
    for prefix in ("backbone.", "blocks."):
        if layer.startswith(prefix) and hasattr(model, prefix[:-1]):
            return layer.removeprefix(prefix)
    return layer


def _modules_before(model: nn.Module, layer: str) -> list[nn.Module]:
    """Modules of the feature extractor registered before the first one named `layer*`."""
    prefix = _until_prefix(model, layer)
    before: list[nn.Module] = []
    for name, module in backbone_of(model).named_modules():
        if name and name.startswith(prefix):
            return before
        before.append(module)
    raise ValueError(
        f"freeze=until:{layer} names no layer of the {type(model).__name__} backbone; valid top-level "
        f"layers: {', '.join(top_level_layers(model))}."
    )


def apply_freeze(model: nn.Module, freeze: str) -> list[str]:
    """Set `requires_grad` for `freeze` and return the names of the frozen parameters.

    `none` trains everything; `backbone` freezes the whole feature extractor; `until:X` freezes
    the feature extractor up to, not including, the first module whose name starts with `X`
    (names relative to the backbone, e.g. `layer3`, `features.4`, or `2` / `blocks.2` for a convnet).
    Applying a mode replaces the previous one.
    """
    check_freeze(freeze)
    unfreeze_all(model)
    if freeze == "none":
        return []
    if freeze == "backbone":
        modules = list(backbone_of(model).modules())
    else:
        modules = _modules_before(model, freeze.removeprefix("until:"))
    for module in modules:
        for param in module.parameters(recurse=False):
            param.requires_grad_(False)
    set_frozen_bn_eval(model)
    return [name for name, param in model.named_parameters() if not param.requires_grad]


def unfreeze_all(model: nn.Module) -> None:
    """Make every parameter trainable again; batch norm layers follow the model's train/eval mode."""
    for param in model.parameters():
        param.requires_grad_(True)
    for module in model.modules():
        if isinstance(module, _BN):
            module.train(model.training)


def set_frozen_bn_eval(model: nn.Module) -> list[str]:
    """Put batch norm layers whose parameters are all frozen in eval mode; return their names."""
    names = []
    for name, module in model.named_modules():
        params = list(module.parameters(recurse=False))
        if isinstance(module, _BN) and params and not any(p.requires_grad for p in params):
            module.eval()
            names.append(name)
    return names
