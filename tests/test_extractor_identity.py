"""FID rows name their extractor by the content of its weights (not only its name) and by how many images it
was trained on: a retrained or other extractor changes the hash; the same weights loaded again keep it."""
from __future__ import annotations

import torch

from trainers import metric_keys as K
from trainers.data import load_split
from trainers.evaluation.evaluator import calculate_metrics
from trainers.evaluation.feature_domain import DomainExtractor
from trainers.evaluation.weights_hash import weights_sha256


def test_weights_hash_follows_the_weights_not_the_object() -> None:
    torch.manual_seed(0)
    a = torch.nn.Linear(4, 3)
    b = torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    assert weights_sha256(a) == weights_sha256(b) and len(weights_sha256(a)) == 16
    with torch.no_grad():
        b.weight[0, 0] += 1e-6
    assert weights_sha256(a) != weights_sha256(b)


def test_domain_extractor_hash_and_training_size_reach_the_metrics(tmp_path) -> None:
    train = load_split("phantom", "train", 32, limit=64, seed=0)
    ex = DomainExtractor(train, tmp_path)
    again = DomainExtractor(train, tmp_path)  # loaded from the cache file: the same weights, the same hash
    assert not again.trained_now and again.weights_sha256 == ex.weights_sha256 and ex.train_n == 64
    other = DomainExtractor(train, tmp_path, seed=1)  # another extractor seed: other weights
    assert other.weights_sha256 != ex.weights_sha256
    images = torch.as_tensor(train.to_tensor()[:32])
    out = calculate_metrics(images, images.flip(0), extractor=ex)
    assert out[K.EVAL_EXTRACTOR_SHA256] == ex.weights_sha256 and out[K.EVAL_EXTRACTOR_TRAIN_N] == 64


def test_the_domain_extractor_does_not_depend_on_the_callers_thread_count(tmp_path) -> None:
    """A 2-thread driver (gan-study yardstick) and a 1-thread trial must build the same extractor under one name."""
    train = load_split("phantom", "train", 32, limit=64, seed=0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = DomainExtractor(train, tmp_path / "a")
        torch.set_num_threads(2)
        two = DomainExtractor(train, tmp_path / "b")
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(before)
    assert one.trained_now and two.trained_now and one.weights_sha256 == two.weights_sha256
