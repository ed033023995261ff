"""Models: the families and their registry (`registry`), the configs (`config`), the `convnet`
(`convnet`) and torchvision backbones (`backbones`), loading weights (`weights`), freezing
(`freezing`), and architecture tables (`layer_table`, `shapes` by arithmetic, `tracing` by hooks).

Nothing is imported here: `lightning_modules.models.shapes` and `registry` stay free of torch.
"""
