"""After the search: retrain the best trials deterministically, test them once, ensemble and register
them; evaluate, export and feed the stored models.

- `options`, `plan`: what `reproduce` is asked; which trial, which config, and the run it records into
- `retrain`: deterministic retraining of a planned trial (no test split)
- `selection`: decisions on the validation split only: test-time augmentation, ensemble weights
- `evaluate`: the test split, read once (`final_test`), and `convtune evaluate` of a stored model
- `reproduce`: `convtune reproduce` of one trial, from plan to registry
- `ensemble`, `ensemble_model`: `reproduce --top-k`, and the ensemble as one inference module
- `export`, `images`: `convtune export` (TorchScript, ONNX); image files fitted to a model (`predict`)
"""
