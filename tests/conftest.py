"""Shared pytest setup: `cuda` tests skip without a GPU; every other test (incl. `slow`) always runs.

Shared fixtures: ``one_thread`` (not autouse: a module opts in with
``pytestmark = pytest.mark.usefixtures("one_thread")``), ``G``, the trainers' "tiny-random" generator
(a module may define its own ``G`` instead), and ``tiny_generator``, a factory of tiny generators of the
same family (other sizes, style widths, seeds) so that tests do not repeat the constructor arguments, and
``tiny_psp_sfn``, a factory of the benchmarks' tiny pSp encoder and SFN for a given generator.
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


@pytest.fixture(scope="session")
def tiny_psp_sfn():
    """``make(G, sfn_class=SFN)``: a tiny pSp encoder for ``G`` (its ``w_avg`` set) and a tiny 32 px SFN (or
    a subclass with the same constructor), drawn in that order from seed 5 without touching the global RNG:
    the stand-ins of the evaluation benchmarks' tests."""
    from ganinv.models.encoders import PSPEncoder, WPlusEncoderConfig
    from ganinv.models.sfn import SFN, SFNConfig

    def make(G, sfn_class=SFN):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(5)
            enc = PSPEncoder(WPlusEncoderConfig.for_generator(G, backbone="tiny", zero_init=False)).eval()
            sfn = sfn_class(SFNConfig(size=32, widths=(4, 8), embed_dim=8)).eval()
        enc.set_w_avg(G.get_w_avg())
        return enc, sfn

    return make
