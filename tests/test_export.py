"""ONNX export through the reference path: the file holds only standard operators and onnxruntime
reproduces the model's own output (a length other than the traced one: the axes are dynamic).

onnxruntime and PyTorch sum the same fp32 convolution products in different orders: the REDUCTION
table on outputs scaled to max |expected| = 1.
"""

from __future__ import annotations

import pytest
import torch

import fastgan
from tests.conftest import DEVICE, INTERPRETER
from tests.small_generators import MEL, small_generators
from tests.tolerances import REDUCTION, assert_close_scaled

onnx = pytest.importorskip("onnx", reason="onnx is a test extra (pip install onnx onnxruntime)")
onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is a test extra (pip install onnxruntime)")


# One generator of each family (the streaming tests' set is wider).
EXPORTED = ("melgan", "mb-melgan", "hifigan-resblock1", "pwg", "pwg-causal")


@pytest.mark.parametrize("name", EXPORTED)
def test_onnx_round_trip(name, tmp_path):
    generator = small_generators()[name]().eval()
    path = fastgan.export_onnx(generator, tmp_path / f"{name}.onnx", frames=16)
    model = onnx.load(path)
    onnx.checker.check_model(model)
    assert not [n.op_type for n in model.graph.node if n.domain not in ("", "ai.onnx")], "non-standard ops in the graph"

    frames = 27  # not the traced length
    g = torch.Generator().manual_seed(3)
    mel = torch.randn(frames, MEL, generator=g, device="cpu")  # onnxruntime's input; moved to DEVICE below
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"mel": mel.t()[None].numpy()}
    with torch.no_grad():
        model_on_device = generator.to(DEVICE)
        if name.startswith("pwg"):
            noise = torch.randn(frames * generator.upsample_factor, 1, generator=g, device="cpu")
            feeds["noise"] = noise.t()[None].numpy()
            expected = model_on_device.inference(mel.to(DEVICE), x=noise.to(DEVICE)).reshape(-1).cpu()
        else:
            expected = model_on_device.inference(mel.to(DEVICE)).reshape(-1).cpu()
    (audio,) = session.run(["audio"], feeds)
    assert_close_scaled(torch.from_numpy(audio).reshape(-1), expected, REDUCTION, torch.float32)


def test_export_leaves_the_model_and_backend_alone(tmp_path):
    generator = small_generators()["melgan"]()
    keys = set(generator.state_dict())
    backend = fastgan.get_backend()
    fastgan.export_onnx(generator, tmp_path / "m.onnx", check=False)
    assert set(generator.state_dict()) == keys  # weight norm still there (folded in a copy)
    assert fastgan.get_backend() == backend
    assert not hasattr(torch.ops.fastgan, "__export_leftover__")
    assert "OpOverloadPacket" in type(torch.ops.fastgan.conv_transpose1d).__name__  # the real op again


@pytest.mark.skipif(
    INTERPRETER,
    reason="graph capture does not depend on the op's path (fastgan's ops are opaque custom ops to dynamo); "
    "the fallback pass checks it",
)
@pytest.mark.parametrize("name", ["melgan", "hifigan-resblock1", "pwg"])
def test_generators_compile_fullgraph(name):
    """torch.compile(fullgraph=True) captures each generator whole: the custom ops make that possible."""
    generator = small_generators()[name]().to(DEVICE).eval()
    generator.remove_weight_norm()
    g = torch.Generator(device=DEVICE).manual_seed(4)
    mel = torch.randn(1, MEL, 20, generator=g, device=DEVICE)
    if name == "pwg":
        args = (torch.randn(1, 1, 20 * generator.upsample_factor, generator=g, device=DEVICE),
                torch.nn.functional.pad(mel, (2, 2), mode="replicate"))  # fmt: skip
    else:
        args = (mel,)
    torch._dynamo.reset()
    compiled = torch.compile(generator, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        assert_close_scaled(compiled(*args), generator(*args), REDUCTION, torch.float32)


@pytest.mark.parametrize("frames", [0, 1, 3])
def test_too_few_example_frames_name_the_minimum(frames, tmp_path):
    generator = small_generators()["melgan"]().eval()  # reflection padding of 3: at least 4 frames
    with pytest.raises(ValueError, match=rf"export_onnx: frames={frames} is too short for MelGANGenerator, "
                                         rf"which needs at least 4 frames"):  # fmt: skip
        fastgan.export_onnx(generator, tmp_path / "m.onnx", frames=frames)
    assert not (tmp_path / "m.onnx").exists()
    for bad in (2.5, "32", None):
        with pytest.raises(TypeError, match=rf"export_onnx: frames must be an integer, got {bad!r}"):
            fastgan.export_onnx(generator, tmp_path / "m.onnx", frames=bad)
