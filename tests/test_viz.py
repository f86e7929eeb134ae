import matplotlib
import numpy as np
import pytest
import torch

from ganinv import viz
from ganinv.models.stylegan2 import Generator

matplotlib.use("Agg")


def tiny_generator() -> Generator:
    torch.manual_seed(0)
    return Generator(32, 16, 2, channel_multiplier=0.125, channel_max=16).eval()


def test_rgb_skips_accumulate_to_the_generated_image():
    G = tiny_generator()
    w = G.mapping(torch.randn(2, 16))
    skips = viz.rgb_skips(G, w)
    assert sorted(skips) == [4, 8, 16, 32]
    for res, img in skips.items():
        assert img.shape == (2, 3, res, res)
    torch.testing.assert_close(skips[32], G.synthesis(w))
    # each level adds a non-zero detail on top of the upsampled coarser image
    assert not torch.allclose(skips[16], skips[32][:, :, ::2, ::2])
    assert not any(h for m in [G.to_rgb1, *G.to_rgbs] for h in m._forward_hooks)  # hooks removed


def test_image_grid_layout_and_save(tmp_path):
    rows = {"a": torch.zeros(3, 3, 8, 8), "b": torch.ones(2, 3, 16, 16)}
    fig = viz.image_grid(rows, col_titles=["x", "y", "z"])
    assert fig.axes[0].get_ylabel() == "a" and len(fig.axes) == 6
    assert fig.axes[0].get_title() == "x"
    path = viz.save_figure(fig, tmp_path / "g.png", close=True)
    assert path.stat().st_size > 0 and not list(tmp_path.glob(".g.*"))
    assert path.stat().st_mode & 0o777 == 0o644
    with pytest.raises(ValueError, match="at least one row"):
        viz.image_grid([])
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        viz.image_grid([torch.zeros(2, 5, 8, 8)])


def test_part_map_colours_and_errors():
    parts = np.array([[[0, 1], [2, 7]]])
    rgb = viz.part_map(parts)
    assert rgb.shape == (1, 3, 2, 2)
    expected = torch.tensor(viz.PART_COLOURS[7], dtype=torch.float32) / 127.5 - 1
    torch.testing.assert_close(rgb[0, :, 1, 1], expected)
    with pytest.raises(ValueError, match="part labels"):
        viz.part_map(np.array([[9]]))


def test_feature_energy_range():
    f = torch.randn(2, 4, 5, 5)
    e = viz.feature_energy(f)
    assert e.shape == (2, 1, 5, 5)
    assert torch.allclose(e.amin(dim=(1, 2, 3)), torch.tensor(-1.0)) and torch.allclose(
        e.amax(dim=(1, 2, 3)), torch.tensor(1.0)
    )


def test_long_column_titles_wrap_and_the_title_stays_above_the_grid():
    import matplotlib.pyplot as plt

    fig = viz.image_grid(
        [torch.zeros(2, 3, 8, 8)], col_titles=["face 0", "eyes_closed flipped"], title="holes"
    )
    titles = [ax.get_title() for ax in fig.axes[:2]]
    assert titles == ["face 0", "eyes_closed\nflipped"]  # two neighbours' titles would otherwise collide
    fig.canvas.draw()
    top_of_axes = max(ax.get_position().y1 for ax in fig.axes)
    assert fig._suptitle.get_position()[1] > top_of_axes  # the figure title sits above the first row
    plt.close(fig)


def test_ablation_grid_shows_each_output_with_its_error_map_on_one_scale():
    x = torch.zeros(2, 3, 8, 8)
    near, far = torch.full_like(x, 0.25), torch.full_like(x, -1.0)
    fig = viz.ablation_grid(x, {"full": near, "ablated": far}, col_titles=["a", "b"])
    image_axes = [ax for ax in fig.axes if ax.get_images() and ax.get_label() != "<colorbar>"]
    assert len(image_axes) == 2 * 5  # input, full, its error, ablated, its error: 2 faces each
    labels = [ax.get_ylabel() for ax in image_axes[::2]]
    assert labels == ["input", "full", "|error|, full", "ablated", "|error|, ablated"]
    maps = [ax.get_images()[0] for ax in image_axes if ax.get_ylabel().startswith("|error|")]
    assert all(m.get_clim() == (0, 1.0) for m in maps)  # one scale: the 99th percentile of all errors
    assert float(maps[0].get_array().max()) == 0.25
    assert any("mean over RGB" in ax.get_ylabel() for ax in fig.axes)  # the colour bar says what it shows
    fig = viz.ablation_grid(x, {"full": near}, errors=False, shown=("x_erased", far))
    assert [ax.get_ylabel() for ax in fig.axes[::2]] == ["x_erased", "full"]
    assert float(fig.axes[0].get_images()[0].get_array().max()) == 0  # the shown images, not x (-1 -> 0)
    with pytest.raises(ValueError, match=r"output 'bad' has shape \[1, 3, 8, 8\]"):
        viz.ablation_grid(x, {"bad": x[:1]})
    with pytest.raises(ValueError, match="at least one output"):
        viz.ablation_grid(x, {})
