"""Model registry and models: `convnet` and torchvision backbones, weights loading, freezing."""

from lightning_modules.models.backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneClassifier,
    ClassifierHead,
    InputAdapter,
    adapt_input_conv,
    build_backbone,
    load_weights,
    pretrained_state_dict,
    pretraining_normalization,
)
from lightning_modules.models.convnet import ConvNet
from lightning_modules.models.freezing import (
    apply_freeze,
    backbone_of,
    parameter_groups,
    set_frozen_bn_eval,
    top_level_layers,
    unfreeze_all,
)
from lightning_modules.models.registry import create_model, list_models, model_from_config, register_model

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BackboneClassifier",
    "ClassifierHead",
    "ConvNet",
    "InputAdapter",
    "adapt_input_conv",
    "apply_freeze",
    "backbone_of",
    "build_backbone",
    "create_model",
    "list_models",
    "load_weights",
    "model_from_config",
    "parameter_groups",
    "pretrained_state_dict",
    "pretraining_normalization",
    "register_model",
    "set_frozen_bn_eval",
    "top_level_layers",
    "unfreeze_all",
]
