"""Transposed conv (+ fused input LeakyReLU): the op (Triton kernels in the interpreter pass, the
reference otherwise) against torch.nn.ConvTranspose1d after a separate torch LeakyReLU, forward and
backward, for every upsampling layer MelGAN, HiFi-GAN V1-V3 and MB-MelGAN build; the module as a
drop-in for torch's; every bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import fastgan
from fastgan.functional import conv_transpose1d
from fastgan.references import conv_transpose1d_backward_reference, conv_transpose1d_reference
from tests.conftest import DEVICE
from tests.tolerances import REDUCTION, assert_close_scaled

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def melgan_layer(s: int) -> tuple[int, int, int, int]:
    """(kernel, stride, padding, output_padding) of parallel_wavegan's MelGAN / MB-MelGAN / HiFi-GAN upsampler."""
    return 2 * s, s, s // 2 + s % 2, s % 2


def hifigan_layer(k: int, s: int) -> tuple[int, int, int, int]:
    """HiFi-GAN's (parallel_wavegan's HiFiGANGenerator): padding s//2 + s%2 = (k - s)//2 for its (k, s)."""
    return k, s, s // 2 + s % 2, s % 2


GEOMETRIES = {
    # MelGAN (scales 8, 8, 2, 2), MB-MelGAN (8, 4, 2), and the odd scale 5 of 24 kHz configurations.
    **{f"melgan_s{s}": melgan_layer(s) for s in (2, 4, 5, 8)},
    # HiFi-GAN V1/V2 (k 16, 16, 4, 4; s 8, 8, 2, 2) and V3 (k 16, 16, 8; s 8, 8, 4).
    "hifigan_k16_s8": hifigan_layer(16, 8),
    "hifigan_k4_s2": hifigan_layer(4, 2),
    "hifigan_k8_s4": hifigan_layer(8, 4),
    "stride1_k3_p1": (3, 1, 1, 0),
    "stride1_k1": (1, 1, 0, 0),
    "k_lt_stride": (3, 4, 0, 2),  # phases with no tap: bias only
    "stride3_k7_p0_op2": (7, 3, 0, 2),
    "wide_padding": (4, 2, 3, 1),
}


def torch_pair(x, weight, bias, stride, padding, output_padding, slope):
    """The oracle: torch's LeakyReLU, then torch's ConvTranspose1d."""
    y = x if slope is None else F.leaky_relu(x, slope)
    return F.conv_transpose1d(y, weight, bias, stride, padding, output_padding)


def make_inputs(batch, c_in, c_out, k, length, dtype=torch.float32, bias=True, generator=None):
    bound = 1.0 / (c_in * k) ** 0.5
    x = torch.randn(batch, c_in, length, generator=generator)
    weight = (torch.rand(c_in, c_out, k, generator=generator) * 2 - 1) * bound * 2
    b = torch.randn(c_out, generator=generator) * 0.1 if bias else None
    return x.to(dtype), weight.to(dtype), None if b is None else b.to(dtype)


def run_op(x, weight, bias, geometry, slope, grad_out):
    # detach, not clone: the leaves keep the tensors' layouts (clone makes a non-dense view, e.g. b[::2], contiguous)
    leaves = [t.detach().requires_grad_() if t is not None else None for t in (x, weight, bias)]
    out = conv_transpose1d(leaves[0], leaves[1], leaves[2], *geometry[1:], negative_slope=slope)
    out.backward(grad_out)
    return out, *[t.grad if t is not None else None for t in leaves]


def run_oracle(x, weight, bias, geometry, slope, grad_out):
    """torch's pair in fp32 (on the same, possibly rounded, inputs)."""
    leaves = [t.detach().float().clone().requires_grad_() if t is not None else None for t in (x, weight, bias)]
    out = torch_pair(leaves[0], leaves[1], leaves[2], *geometry[1:], slope)
    out.backward(grad_out.float())
    return out, *[t.grad if t is not None else None for t in leaves]


def check_parity(x, weight, bias, geometry, slope, dtype=torch.float32, grad_out=None, generator=None):
    expected_shape = torch_pair(x.float(), weight.float(), None, *geometry[1:], None).shape
    if grad_out is None:
        grad_out = torch.randn(expected_shape, generator=generator).to(x.dtype)
    actual = run_op(x, weight, bias, geometry, slope, grad_out)
    expected = run_oracle(x, weight, bias, geometry, slope, grad_out)
    for name, a, e in zip(("out", "grad_x", "grad_weight", "grad_bias"), actual, expected, strict=True):
        if e is None:
            assert a is None, name
            continue
        assert a.dtype == dtype, f"{name} dtype {a.dtype}"
        try:
            assert_close_scaled(a, e, REDUCTION, dtype)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None


@pytest.mark.parametrize("slope", [None, 0.2])
@pytest.mark.parametrize("geometry", list(GEOMETRIES.values()), ids=list(GEOMETRIES))
def test_every_layer_geometry_fp32(geometry, slope):
    x, weight, bias = make_inputs(2, 16, 16, geometry[0], 11)
    check_parity(x, weight, bias, geometry, slope)


@pytest.mark.parametrize("length", [1, 2, 7, 33])
def test_lengths_and_batch_one(length):
    geometry = melgan_layer(5)
    x, weight, bias = make_inputs(1, 16, 24, geometry[0], length)
    check_parity(x, weight, bias, geometry, 0.2)


def test_channels_not_multiple_of_tiles():
    geometry = melgan_layer(4)
    x, weight, bias = make_inputs(2, 37, 19, geometry[0], 9)
    check_parity(x, weight, bias, geometry, 0.1)


@pytest.mark.parametrize("c_out", [33, 72])
def test_wide_output_channels(c_out):
    """C_out > 32 takes the kernels' 64-channel tiles (two tiles for 72), C_in past one K-slice."""
    geometry = melgan_layer(4)
    x, weight, bias = make_inputs(2, 40, c_out, geometry[0], 6)
    check_parity(x, weight, bias, geometry, 0.2)


def test_no_bias():
    geometry = hifigan_layer(16, 8)
    x, weight, _ = make_inputs(2, 16, 16, 16, 6)
    check_parity(x, weight, None, geometry, 0.1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("geometry", [melgan_layer(8), hifigan_layer(4, 2), melgan_layer(5)], ids=str)
def test_half_precision_against_fp32_oracle(dtype, geometry):
    x, weight, bias = make_inputs(2, 32, 16, geometry[0], 9, dtype)
    check_parity(x, weight, bias, geometry, 0.2, dtype)


def test_non_contiguous_input_and_gradient():
    geometry = melgan_layer(2)
    base = torch.randn(2, 13, 16)  # (B, T, C) in memory, used as (B, C, T)
    x = base.transpose(1, 2)
    assert not x.is_contiguous()
    _, weight, bias = make_inputs(2, 16, 16, geometry[0], 13)
    grad_out = torch.randn(2, 16, 52)[:, :, ::2]
    assert not grad_out.is_contiguous()
    check_parity(x, weight, bias, geometry, 0.2, grad_out=grad_out)
    # A non-contiguous weight (a transposed view) too.
    weight_t = weight.transpose(0, 1).contiguous().transpose(0, 1)
    assert not weight_t.is_contiguous()
    check_parity(x, weight_t, bias, geometry, None, grad_out=grad_out)


def test_strided_bias_and_weight_and_expanded_gradient():
    # A strided bias and weight (every other element of wider buffers) and grad_out expanded (stride 0 over
    # batch and time, as autograd hands out for out.sum()).
    geometry = melgan_layer(2)
    x, weight, bias = make_inputs(2, 16, 16, geometry[0], 13)
    weight_s = torch.stack((weight, torch.full_like(weight, 100.0)), dim=-1)[..., 0]
    bias_s = torch.stack((bias, torch.full_like(bias, 100.0)), dim=-1)[..., 0]
    assert not (weight_s.is_contiguous() or bias_s.is_contiguous())
    grad_out = torch.randn(1, 16, 1).expand(2, 16, 26)
    check_parity(x, weight_s, bias_s, geometry, 0.2, grad_out=grad_out)


@given(
    batch=st.integers(1, 2),
    c_in=st.integers(1, 20),
    c_out=st.integers(1, 20),
    stride=st.integers(1, 6),
    k_extra=st.integers(-2, 6),
    length=st.integers(1, 12),
    slope=st.sampled_from([None, 0.0, 0.2]),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_fuzz(batch, c_in, c_out, stride, k_extra, length, slope, dtype, seed, data):
    kernel = max(1, stride + k_extra)
    output_padding = data.draw(st.integers(0, stride - 1))
    max_padding = ((length - 1) * stride + kernel + output_padding - 1) // 2
    padding = data.draw(st.integers(0, min(max_padding, kernel)))
    generator = torch.Generator(device=DEVICE).manual_seed(seed)
    x, weight, bias = make_inputs(batch, c_in, c_out, kernel, length, dtype, seed % 2 == 0, generator)
    check_parity(x, weight, bias, (kernel, stride, padding, output_padding), slope, dtype, generator=generator)


@pytest.mark.reference
@pytest.mark.parametrize("slope", [None, 0.2])
@pytest.mark.parametrize("geometry", [melgan_layer(5), (3, 4, 0, 2), (4, 2, 3, 1)], ids=str)
def test_reference_backward_gradcheck_float64(geometry, slope):
    kernel, stride, padding, output_padding = geometry
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    x = (x + torch.sign(x) * 0.05).requires_grad_()  # keep LeakyReLU's kink out of finite differences
    weight = torch.randn(3, 4, kernel, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, requires_grad=True)
    args = (stride, padding, output_padding, slope)
    assert torch.autograd.gradcheck(lambda *t: conv_transpose1d_reference(*t, *args), (x, weight, bias))
    out = conv_transpose1d_reference(x, weight, bias, *args)
    grad_out = torch.randn_like(out)
    expected = torch.autograd.grad(out, (x, weight, bias), grad_out)
    actual = conv_transpose1d_backward_reference(grad_out, x.detach(), weight.detach(), *args)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e)


@pytest.mark.parametrize("slope", [None, 0.2])
def test_opcheck(slope):
    x = torch.randn(2, 16, 7, requires_grad=True)
    weight = torch.randn(16, 16, 4, requires_grad=True)
    bias = torch.randn(16, requires_grad=True)
    torch.library.opcheck(torch.ops.fastgan.conv_transpose1d.default, (x, weight, bias, 2, 1, 0, slope))
    torch.library.opcheck(torch.ops.fastgan.conv_transpose1d.default, (x, weight, None, 2, 1, 0, slope))
    grad_out = torch.randn(2, 16, 14)
    torch.library.opcheck(
        torch.ops.fastgan.conv_transpose1d_backward.default, (grad_out, x.detach(), weight.detach(), 2, 1, 0, slope)
    )


def test_torch_compile_fullgraph_forward_and_backward():
    torch._dynamo.reset()
    module = fastgan.nn.ConvTranspose1d(16, 16, 4, 2, padding=1, negative_slope=0.2)

    def step(x):
        return (module(x) * 3.0).sum()

    compiled = torch.compile(step, fullgraph=True)
    x = torch.randn(2, 16, 9)
    x_compiled = x.clone().requires_grad_()
    x_eager = x.clone().requires_grad_()
    compiled(x_compiled).backward()
    compiled_weight_grad = module.weight.grad.clone()
    module.weight.grad = None
    step(x_eager).backward()
    torch.testing.assert_close(x_compiled.grad, x_eager.grad, rtol=0, atol=0)
    torch.testing.assert_close(compiled_weight_grad, module.weight.grad, rtol=0, atol=0)


class TestModule:
    def make_pair(self, *args, slope=None, **kwargs):
        ours = fastgan.nn.ConvTranspose1d(*args, negative_slope=slope, **kwargs)
        theirs = torch.nn.ConvTranspose1d(*args, **kwargs)
        theirs.load_state_dict(ours.state_dict())
        return ours, theirs

    def test_is_a_torch_conv_transpose_with_the_same_state_dict(self):
        ours, theirs = self.make_pair(16, 8, 16, 8, padding=4)
        assert isinstance(ours, torch.nn.ConvTranspose1d)
        assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight", "bias"]
        assert "negative_slope=0.2" in repr(fastgan.nn.ConvTranspose1d(2, 2, 2, negative_slope=0.2))

    @pytest.mark.parametrize("geometry", [melgan_layer(8), melgan_layer(5), hifigan_layer(4, 2)], ids=str)
    def test_matches_torch_module_after_leaky_relu(self, geometry):
        kernel, stride, padding, output_padding = geometry
        ours, theirs = self.make_pair(16, 16, kernel, stride, padding=padding, output_padding=output_padding, slope=0.2)
        x = torch.randn(2, 16, 7)
        assert_close_scaled(ours(x), theirs(F.leaky_relu(x, 0.2)), REDUCTION)

    @pytest.mark.parametrize("kind", ["old", "parametrizations"])
    def test_weight_norm(self, kind):
        ours, theirs = self.make_pair(16, 16, 8, 4, padding=2, slope=0.2)
        if kind == "old":
            ours = torch.nn.utils.weight_norm(ours)
            theirs = torch.nn.utils.weight_norm(theirs)
        else:
            ours = torch.nn.utils.parametrizations.weight_norm(ours)
            theirs = torch.nn.utils.parametrizations.weight_norm(theirs)
        theirs.load_state_dict(ours.state_dict())
        x = torch.randn(2, 16, 6)
        out, expected = ours(x), theirs(F.leaky_relu(x, 0.2))
        assert_close_scaled(out, expected, REDUCTION)
        grad = torch.randn_like(out)
        out.backward(grad)
        expected.backward(grad)
        for (name, p_ours), (_, p_theirs) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
            try:
                assert_close_scaled(p_ours.grad, p_theirs.grad, REDUCTION)
            except AssertionError as error:
                raise AssertionError(f"{name}: {error}") from None

    def test_output_size_and_unbatched_input(self):
        ours, theirs = self.make_pair(16, 16, 4, 3, padding=1)
        x = torch.randn(16, 5)  # unbatched (C, T)
        out = ours(x, output_size=[15])
        expected = theirs(x, output_size=[15])
        assert out.shape == expected.shape == (16, 15)
        assert_close_scaled(out, expected, REDUCTION)

    @pytest.mark.parametrize("kwargs", [{"groups": 2}, {"dilation": 2}], ids=str)
    def test_unfused_combinations_take_torch_path(self, kwargs):
        ours, theirs = self.make_pair(4, 4, 3, 2, slope=0.2, **kwargs)
        assert not ours.fused
        x = torch.randn(2, 4, 6)
        torch.testing.assert_close(ours(x), theirs(F.leaky_relu(x, 0.2)), rtol=0, atol=0)

    def test_float64_takes_torch_path_like_the_parent_class(self):
        """The functional op takes fp32/fp16/bf16 (and says so); the drop-in module runs float64 as torch does."""
        ours, theirs = self.make_pair(4, 3, 4, 2, slope=0.2)
        ours, theirs = ours.double(), theirs.double()
        x = torch.randn(2, 4, 7, dtype=torch.float64, requires_grad=True)
        torch.testing.assert_close(ours(x), theirs(F.leaky_relu(x, 0.2)), rtol=0, atol=0)
        assert torch.autograd.gradcheck(ours, (x,))

    def test_bad_input_rank(self):
        with pytest.raises(ValueError, match=r"input must be \(batch, channels, time\)"):
            fastgan.nn.ConvTranspose1d(2, 2, 2)(torch.randn(1, 1, 2, 2))


class TestBadInput:
    def call(self, x=None, weight=None, bias=None, stride=2, padding=1, output_padding=0, slope=None):
        x = torch.randn(2, 4, 5) if x is None else x
        weight = torch.randn(4, 3, 4) if weight is None else weight
        return conv_transpose1d(x, weight, bias, stride, padding, output_padding, slope)

    def test_wrong_ndim(self):
        with pytest.raises(ValueError, match=r"x must have 3 dimensions, got shape \(4, 5\)"):
            self.call(x=torch.randn(4, 5))
        with pytest.raises(ValueError, match="weight must have 3 dimensions"):
            self.call(weight=torch.randn(4, 3))

    def test_channel_mismatch(self):
        with pytest.raises(ValueError, match=r"C_in = x.shape\[1\] = 4 \(groups=1\), got \(5, 3, 4\)"):
            self.call(weight=torch.randn(5, 3, 4))
        with pytest.raises(ValueError, match=r"bias must have shape \(C_out,\) = \(3,\), got \(4,\)"):
            self.call(bias=torch.randn(4))

    def test_dtypes(self):
        with pytest.raises(TypeError, match="x has dtype torch.float64"):
            self.call(x=torch.randn(2, 4, 5, dtype=torch.float64))
        with pytest.raises(TypeError, match="weight has dtype torch.float16; supported: float32"):
            self.call(weight=torch.randn(4, 3, 4, dtype=torch.float16))

    def test_geometry(self):
        with pytest.raises(ValueError, match=r"output_padding must be in \[0, stride=2\), got 2"):
            self.call(output_padding=2)
        with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
            self.call(stride=0)
        with pytest.raises(ValueError, match="padding must be >= 0, got -1"):
            self.call(padding=-1)
        with pytest.raises(ValueError, match="output length .* = -2 < 1"):
            self.call(x=torch.randn(2, 4, 1), padding=3)
        with pytest.raises(ValueError, match="non-empty time axis"):
            self.call(x=torch.randn(2, 4, 0))

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for a CPU/CUDA mismatch")
    def test_device_mismatch(self):
        with pytest.raises(ValueError, match="one device"):
            self.call(weight=torch.randn(4, 3, 4, device="cuda"))


@pytest.mark.parametrize("geometry", [melgan_layer(5), hifigan_layer(16, 8), (3, 4, 0, 2)], ids=str)
def test_custom_op_itself_forward_and_backward(geometry):
    """The functional form calls the reference directly in eager mode on the reference path; the
    registered op (what torch.compile and CUDA run) and its backward op must match the oracle too."""
    x, weight, bias = make_inputs(2, 16, 16, geometry[0], 7)
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]
    out = torch.ops.fastgan.conv_transpose1d(*leaves, *geometry[1:], 0.2)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    expected = run_oracle(x, weight, bias, geometry, 0.2, grad_out)
    for a, e in zip((out, *[t.grad for t in leaves]), expected, strict=True):
        assert_close_scaled(a, e, REDUCTION)
