"""The editor path (fused kernels + ONNX Runtime) against an independent OpenCV/numpy pipeline."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from vetrina.editor import Editor
from vetrina.errors import InputError, ModelError
from vetrina.model import Model


def _reference(model_path, rgb, size):
    """cv2.resize in float32 (same bilinear convention), ORT, resize back, round half up."""
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    h, w = rgb.shape[:2]
    x = cv2.resize(
        rgb.astype(np.float32) / 255.0, (size[1], size[0]), interpolation=cv2.INTER_LINEAR
    )
    y = session.run(None, {"image": x.transpose(2, 0, 1)[None].copy()})[0][0].transpose(1, 2, 0)
    y = cv2.resize(np.ascontiguousarray(y), (w, h), interpolation=cv2.INTER_LINEAR)
    return np.floor(np.clip(y * 255.0, 0, 255) + 0.5).astype(np.uint8)


def test_working_size_follows_contract(small_model):
    editor = Editor(Model.open(small_model), max_side=100)
    assert editor.working_size(48, 64) == (48, 64)
    assert editor.working_size(37, 53) == (38, 54)  # even sides
    assert editor.working_size(1, 1) == (8, 8)  # min size
    h, w = editor.working_size(400, 1000)
    assert w == 100 and h == 40


@pytest.mark.parametrize("shape", [(48, 64), (37, 53), (250, 90)])
def test_edit_matches_reference_pipeline(small_model, shape):
    rng = np.random.default_rng(shape[0])
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    rgb = cv2.GaussianBlur(rgb, (5, 5), 1.5)  # smooth content: resize error stays sub-LSB
    editor = Editor(Model.open(small_model), max_side=128)
    got = editor.edit([rgb])[0]
    want = _reference(small_model, rgb, editor.working_size(*shape))
    assert got.shape == rgb.shape
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_batch_of_mixed_sizes_orders_and_alpha(small_model):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    c = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    editor = Editor(Model.open(small_model), batch_size=2)
    out_rgb = editor.edit([a, b, c], order="RGB")
    assert [o.shape for o in out_rgb] == [(32, 32, 3), (20, 30, 4), (32, 32, 3)]
    np.testing.assert_array_equal(out_rgb[1][:, :, 3], b[:, :, 3])
    # The same pixels given as BGR come back as BGR: the channel swap is fused, not lost.
    out_bgr = editor.edit([a[:, :, ::-1]], order="BGR")[0]
    np.testing.assert_array_equal(out_bgr[:, :, ::-1], out_rgb[0])
    # Batching does not change results.
    np.testing.assert_array_equal(
        Editor(Model.open(small_model), batch_size=1).edit([a])[0], out_rgb[0]
    )


def test_bad_arrays_rejected(small_model):
    editor = Editor(Model.open(small_model))
    with pytest.raises(InputError, match="uint8"):
        editor.edit([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(InputError, match="shape"):
        editor.edit([np.zeros((8, 8, 2), np.uint8)])
    with pytest.raises(InputError, match="zero size"):
        editor.edit([np.zeros((0, 8, 3), np.uint8)])


def test_device_request_never_falls_back(small_model):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has the CUDA provider")
    from vetrina.errors import DeviceError

    with pytest.raises(DeviceError, match="lacks"):
        Model.open(small_model, device="cuda")
    with pytest.raises(DeviceError, match="unknown device"):
        Model.open(small_model, device="tpu")


def test_generator_role_is_not_an_editor(small_model, monkeypatch):
    model = Model.open(small_model)
    monkeypatch.setattr(
        model,
        "contract",
        model.contract.__class__(
            role="generator", inputs=model.contract.inputs, outputs=model.contract.outputs
        ),
    )
    with pytest.raises(ModelError, match="cannot edit"):
        Editor(model)


def test_import_vetrina_is_light():
    code = (
        "import sys, vetrina, vetrina.editor, vetrina.files, vetrina.kernels, vetrina.cli, "
        "vetrina.models.catalog, vetrina.models.architectures\n"
        "heavy = [m for m in ('torch', 'tensorrt', 'onnxruntime', 'onnx', 'cuda')\n"
        "         if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


_STEADY_STATE_PROBE = """
import resource, sys
import numpy as np
from vetrina.editor import Editor
from vetrina.model import Model

editor = Editor(Model.open(sys.argv[1], threads=1), max_side=256)
image = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
for _ in range(3):
    editor.edit([image])
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    editor.edit([image])
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and getrusage faults")
def test_steady_state_edits_take_no_fresh_memory(small_model):
    """After warm-up a request reuses memory: ONNX Runtime's outputs come from its arena and
    the kernels' batches from freed heap blocks, so no page of a 256x256 request is new. The
    control forces glibc to map every large block afresh: the same probe then sees the
    request's pages fault (about 240), so it can tell the two apart."""
    import os

    def faults_per_request(env_extra: dict[str, str]) -> float:
        env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"} | env_extra
        run = subprocess.run(
            [sys.executable, "-c", _STEADY_STATE_PROBE, str(small_model)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
        return float(run.stdout.strip().splitlines()[-1])

    steady = faults_per_request({})
    fresh = faults_per_request({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"})
    print(f"page faults per request: steady {steady:.1f}, fresh memory {fresh:.1f}")
    if fresh < 100:
        pytest.skip(f"the C library ignored the mmap threshold ({fresh:.0f} faults/request)")
    assert steady < 10, f"{steady:.1f} page faults per steady-state request (fresh: {fresh:.0f})"
