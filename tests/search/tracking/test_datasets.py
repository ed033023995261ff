"""`search.tracking.datasets`: the data a run trained on, as MLflow dataset inputs."""

from __future__ import annotations

import torch

from search.tracking.datasets import digest_of


def test_digests_tell_different_data_apart_and_the_same_data_alike() -> None:
    images = torch.randint(0, 255, (64, 1, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 10, (64,))
    same = digest_of(images.clone(), labels.clone())
    assert digest_of(images, labels) == same and len(same) == 16
    changed = images.clone()
    changed[3, 0, 2, 2] ^= 1
    assert digest_of(changed, labels) != same
    assert digest_of(images[:32], labels[:32]) != same
