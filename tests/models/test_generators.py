"""The zoo generators: seeded latents, the GAN generator and the VAE decoder.

Latents are property-tested (determinism, shapes, errors); the architectures are exported to
ONNX with a dynamic batch and compared with onnxruntime; both recipes are smoke-trained for
two steps; the committed checkpoints are judged by the zoo classifier at a small size.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vetrina.models import catalog, latents, zoo
from vetrina.models.architectures import get_architecture
from vetrina.models.checkpoint import load_checkpoint
from vetrina.models.training import gan, generative, vae

SEEDS = st.integers(min_value=0, max_value=2**63 - 1)
Z_DIMS = st.integers(min_value=1, max_value=256)


# ------------------------------------------------------------------------------- latents


@settings(max_examples=40, deadline=None)
@given(seed=SEEDS, z_dim=Z_DIMS)
def test_latent_is_a_deterministic_standard_normal_draw(seed, z_dim):
    z = latents.latent(seed, z_dim)
    assert z.shape == (z_dim,) and z.dtype == np.float32
    assert np.array_equal(z, latents.latent(seed, z_dim))
    want = np.random.default_rng(seed).standard_normal(z_dim).astype(np.float32)
    assert np.array_equal(z, want)
    assert np.isfinite(z).all()


@settings(max_examples=25, deadline=None)
@given(seeds=st.lists(SEEDS, min_size=0, max_size=6), z_dim=Z_DIMS)
def test_latents_stack_one_row_per_seed(seeds, z_dim):
    batch = latents.latents(seeds, z_dim)
    assert batch.shape == (len(seeds), z_dim) and batch.dtype == np.float32
    for row, seed in zip(batch, seeds, strict=True):
        assert np.array_equal(row, latents.latent(seed, z_dim))


def test_different_seeds_give_different_latents():
    assert not np.array_equal(latents.latent(7, 64), latents.latent(8, 64))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.one_of(
        st.integers(max_value=-1), st.floats(), st.booleans(), st.text(max_size=3), st.none()
    )
)
def test_bad_seeds_are_rejected(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        latents.latent(seed, 8)


@pytest.mark.parametrize("z_dim", [0, -3, 2.5, True, "8"])
def test_bad_z_dims_are_rejected(z_dim):
    with pytest.raises(ValueError, match="z_dim must be a positive int"):
        latents.latent(0, z_dim)


def test_label_indices_follow_the_catalog_order():
    assert [latents.category_index(c) for c in catalog.CATEGORIES] == list(range(8))
    assert [latents.colour_index(c) for c in catalog.COLOURS] == list(range(11))


@settings(max_examples=30, deadline=None)
@given(name=st.text(max_size=12).filter(lambda s: s not in catalog.CATEGORIES))
def test_unknown_category_lists_the_valid_names(name):
    with pytest.raises(ValueError, match="unknown category") as info:
        latents.category_index(name)
    assert all(c in str(info.value) for c in catalog.CATEGORIES)


@settings(max_examples=30, deadline=None)
@given(name=st.text(max_size=12).filter(lambda s: s not in catalog.COLOURS))
def test_unknown_colour_lists_the_valid_names(name):
    with pytest.raises(ValueError, match="unknown colour") as info:
        latents.colour_index(name)
    assert all(c in str(info.value) for c in catalog.COLOURS)


def test_generator_inputs():
    z, cat, col = latents.generator_inputs([7, 7], ["sneaker", "mug"], ["red", "blue"], 16)
    assert z.shape == (2, 16) and cat.dtype == col.dtype == np.int64
    assert np.array_equal(z[0], z[1]) and cat.tolist() == [3, 1] and col.tolist() == [0, 4]
    with pytest.raises(ValueError, match="same length"):
        latents.generator_inputs([1, 2], ["mug"], ["red"], 4)


# ------------------------------------------------------------------------ architectures


def _tiny(name: str, **config) -> torch.nn.Module:
    torch.manual_seed(0)
    module = get_architecture(name).build({"z_dim": 8, "channels": 16} | config).eval()
    with torch.no_grad():  # non-trivial conditional norms
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return module


def _inputs(n: int, z_dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    z, cat, col = latents.generator_inputs(
        range(n),
        [catalog.CATEGORIES[i % 8] for i in range(n)],
        [tuple(catalog.COLOURS)[i % 11] for i in range(n)],
        z_dim,
    )
    return torch.from_numpy(z), torch.from_numpy(cat), torch.from_numpy(col)


ARCHITECTURES = [
    ("cgan-generator", {}),
    ("cgan-generator", {"upsample": "nearest"}),
    ("cvae-decoder", {}),
]


@pytest.mark.parametrize(("name", "config"), ARCHITECTURES)
def test_generator_shape_range_and_seed_contract(name, config):
    module = _tiny(name, **config)
    with torch.inference_mode():
        out = module(*_inputs(5, 8))
        again = module(*_inputs(5, 8))
        first = module(*(t[:1] for t in _inputs(5, 8)))
    assert out.shape == (5, 3, 64, 64) and out.dtype == torch.float32
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert torch.equal(out, again)
    torch.testing.assert_close(first, out[:1], atol=1e-5, rtol=0)


@pytest.mark.parametrize(("name", "config"), ARCHITECTURES)
def test_generator_exports_to_onnx_with_dynamic_batch(name, config, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from torch.export import Dim

    module = _tiny(name, **config)
    batch = Dim("batch", min=1, max=1024)
    path = tmp_path / f"{name}.onnx"
    program = torch.onnx.export(
        module,
        _inputs(2, 8),
        dynamo=True,
        input_names=["z", "category", "colour"],
        output_names=["image"],
        dynamic_shapes={"z": {0: batch}, "category": {0: batch}, "colour": {0: batch}},
        verbose=False,
    )
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    z, cat, col = _inputs(5, 8)
    (got,) = session.run(None, {"z": z.numpy(), "category": cat.numpy(), "colour": col.numpy()})
    with torch.inference_mode():
        want = module(z, cat, col).numpy()
    assert got.shape == (5, 3, 64, 64)
    assert np.abs(got - want).max() < 1e-4


def test_gan_upsampling_modes():
    assert not any(
        isinstance(m, torch.nn.ConvTranspose2d)
        for m in _tiny("cgan-generator", upsample="nearest").modules()
    )
    with pytest.raises(ValueError, match="transposed, nearest"):
        _tiny("cgan-generator", upsample="bilinear")


def test_pairwise_distances():
    images = np.zeros((4, 2, 2, 3), np.uint8)
    images[1] = 255
    images[3] = 51
    d = generative.pairwise_distances(images, 2)
    np.testing.assert_allclose(d, [1.0, 0.2], atol=1e-6)
    assert generative.samples_per_condition(1) == 2
    assert generative.samples_per_condition(89) == 2
    assert generative.samples_per_condition(264) == 3


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(min_value=3, max_value=60),
    dims=st.integers(min_value=1, max_value=12),
    shift=st.floats(min_value=-3, max_value=3),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_frechet_distance_matches_scipy(n, dims, shift, seed):
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, dims)) @ rng.standard_normal((dims, dims))
    b = rng.standard_normal((n + 5, dims)) * rng.uniform(0.5, 2.0, dims) + shift
    cov_a, cov_b = (np.atleast_2d(np.cov(x, rowvar=False)) for x in (a, b))
    root = scipy_linalg.sqrtm(cov_a @ cov_b).real
    diff = a.mean(0) - b.mean(0)
    want = diff @ diff + np.trace(cov_a + cov_b - 2.0 * root)
    got = generative.frechet_distance(a, b)
    assert got == pytest.approx(want, rel=1e-6, abs=1e-6)
    assert got == pytest.approx(generative.frechet_distance(b, a), rel=1e-6, abs=1e-6)
    # the same set, moved: the distance is the squared shift
    assert generative.frechet_distance(a, a + shift) == pytest.approx(dims * shift**2, abs=1e-6)


def test_frechet_distance_rejects_mismatched_features():
    with pytest.raises(ValueError, match="feature sets"):
        generative.frechet_distance(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="feature sets"):
        generative.frechet_distance(np.zeros((1, 3)), np.zeros((4, 3)))


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=3),
    h=st.integers(min_value=1, max_value=20),
    w=st.integers(min_value=1, max_value=20),
    c=st.sampled_from([1, 3]),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_high_frequency_is_the_mean_residual_of_a_replicated_3x3_box_blur(n, h, w, c, seed):
    cv2 = pytest.importorskip("cv2")
    images = np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)
    x = images.astype(np.float64) / 255.0
    box = [cv2.blur(i, (3, 3), borderType=cv2.BORDER_REPLICATE).reshape(h, w, c) for i in x]
    want = np.abs(x - np.stack(box)).mean()
    assert generative.high_frequency(images) == pytest.approx(want, abs=1e-6)
    flat = np.full((n, h, w, c), 77, np.uint8)
    assert generative.high_frequency(flat) == 0.0


def test_generators_only_draw_64px():
    with pytest.raises(ValueError, match="64x64"):
        gan.evaluate(_tiny("cgan-generator"), size=128)


# ------------------------------------------------------------------------------ recipes


@pytest.mark.parametrize(
    ("recipe", "tiny", "architecture"),
    [
        (gan, {"d_channels": 16}, "cgan-generator"),
        (vae, {"encoder_channels": 16}, "cvae-decoder"),
    ],
)
def test_training_recipe_smoke(recipe, tiny, architecture, tmp_path):
    config = dataclasses.replace(
        recipe.Recipe(),
        steps=2,
        batch=4,
        pool=8,
        z_dim=8,
        channels=16,
        monitor_every=0,
        standing_batches=1,
        eval_images=88,
        **tiny,
    )
    out = recipe.train(tmp_path / "g.pt", config, progress=False, log=lambda _: None)
    ckpt = load_checkpoint(out)
    assert ckpt.architecture == architecture and ckpt.config == {"z_dim": 8, "channels": 16}
    assert ckpt.metadata["recipe"]["steps"] == 2
    assert "not saved" in ckpt.metadata["saved_weights"]
    assert set(ckpt.metadata["metrics"]) >= {
        "category_accuracy",
        "colour_accuracy",
        "diversity",
        "diversity_real",
        "min_pairwise_distance",
        "frechet_distance",
        "frechet_distance_real",
        "high_frequency",
        "high_frequency_real",
        "reproduce_max_diff",
        "batch_size_max_diff",
    }
    get_architecture(architecture).build(ckpt.config).load_state_dict(ckpt.state_dict)


# ------------------------------------------------------------------- committed checkpoints


@pytest.mark.parametrize(
    ("name", "architecture"), [("gan", "cgan-generator"), ("vae", "cvae-decoder")]
)
def test_committed_checkpoint_is_safe_small_and_documented(name, architecture):
    path = zoo.checkpoint_path(name)
    assert path.stat().st_size <= 3_000_000
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["architecture"] == architecture
    meta = raw["metadata"]
    for key in ("training_command", "seed", "data_version", "metrics", "recipe", "saved_weights"):
        assert key in meta, key
    assert meta["training_command"].startswith(f"vetrina zoo train {name}")
    module = zoo.load_module(name)  # strict load: no discriminator / encoder weights inside
    assert module.z_dim == raw["config"]["z_dim"]


@pytest.mark.parametrize("name", ["gan", "vae"])
def test_committed_generator_meets_its_goals(name):
    # 3 fixed latent seeds x all 88 labels: deterministic (fixed seeds, fixed test renders),
    # about 3 s per model, and every label is covered, which is what the goals are about.
    entry = zoo.get_entry(name)
    module = zoo.load_module(name)
    metrics = entry.recipe_module().evaluate(module, entry.make_recipe(), images=264)
    assert metrics["samples_per_condition"] == 3
    failed = [c for c in entry.recipe_module().checks(metrics, name) if c.passed is False]
    assert not failed, failed
    if name == "gan":
        # Pictures as clean as real renders. Measured here: high-frequency energy 0.0186
        # against the renders' 0.0182, Fréchet distance 3.36 against validation renders'
        # 5.29 (both biased up by the small sample); the first zoo GAN (1,200 steps): 0.0252,
        # its checkerboard grain, and 5.52.
        assert metrics["high_frequency"] <= 1.2 * metrics["high_frequency_real"], metrics
        assert metrics["frechet_distance"] <= metrics["frechet_distance_real"], metrics
