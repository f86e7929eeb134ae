"""Shared pytest setup: `cuda` tests skip without a GPU; every other test (incl. `slow`) always runs.

Shared fixtures: ``one_thread`` (not autouse: a module opts in with
``pytestmark = pytest.mark.usefixtures("one_thread")``), ``G``, the trainers' "tiny-random" generator
(a module may define its own ``G`` instead), and ``tiny_generator``, a factory of tiny generators of the
same family (other sizes, style widths, seeds) so that tests do not repeat the constructor arguments.
"""

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none present)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """torch on one thread during the test (tiny models: more threads only add contention), then restored."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY = dict(channel_multiplier=0.125, channel_max=16)  # a few channels per layer: the tests' generators


@pytest.fixture(scope="session")
def tiny_generator():
    """``make(size=32, style_dim=16, n_mlp=2, **kw)``: a fresh tiny Generator in eval mode (weights from the
    global RNG, which the autouse ``_seed`` fixture sets per test)."""
    from ganinv.models.stylegan2 import Generator

    def make(size: int = 32, style_dim: int = 16, n_mlp: int = 2, **kw):
        return Generator(size, style_dim, n_mlp, **{**TINY, **kw}).eval()

    return make


@pytest.fixture(scope="module")
def G():
    """The trainers' "tiny-random" generator (32 px, style_dim 16, weights from seed 0, global RNG untouched):
    eval mode, frozen, ``w_avg`` computed. One per test module."""
    from ganinv.training.contrastive import TINY_RANDOM, build_generator

    G = build_generator(TINY_RANDOM, seed=0)
    G.get_w_avg()
    return G
