"""Parallel WaveGAN's conditioning upsampler: the fused stretch + smoothing op (Triton kernels in the
interpreter pass, the reference otherwise) against the stretched formulation, and the modules against
parallel_wavegan 0.6.1's UpsampleNetwork / ConvInUpsampleNetwork with state_dicts loaded across."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import fastgan
from fastgan.functional import smoothing_to_taps, stretch_conv1d
from fastgan.references import stretch_conv1d_backward_reference, stretch_conv1d_reference
from tests.conftest import DEVICE
from tests.oracle import parallel_wavegan
from tests.tolerances import REDUCTION, assert_close_scaled

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def stretched_oracle(c, smoothing, scale, causal, slope):
    """parallel_wavegan's formulation, written out: repeat each frame s times, then the padded (2s+1)-tap conv."""
    u = c.repeat_interleave(scale, dim=-1)
    pad = (2 * scale, 0) if causal else (scale, scale)
    out = F.conv1d(F.pad(u.reshape(-1, 1, u.shape[-1]), pad), smoothing.reshape(1, 1, -1)).reshape(u.shape)
    return out if slope is None else F.leaky_relu(out, slope)


def run_op(c, smoothing, scale, causal, slope, grad_out):
    c = c.detach().clone().requires_grad_()
    smoothing = smoothing.detach().clone().requires_grad_()
    out = stretch_conv1d(c, smoothing_to_taps(smoothing, scale, causal), causal, slope)
    out.backward(grad_out)
    return out, c.grad, smoothing.grad


def run_oracle(c, smoothing, scale, causal, slope, grad_out):
    c = c.detach().float().clone().requires_grad_()
    smoothing = smoothing.detach().float().clone().requires_grad_()
    out = stretched_oracle(c, smoothing, scale, causal, slope)
    out.backward(grad_out.float())
    return out, c.grad, smoothing.grad


def check_parity(c, smoothing, scale, causal, slope, dtype=torch.float32, grad_out=None, generator=None):
    shape = (*c.shape[:2], c.shape[2] * scale)
    if grad_out is None:
        grad_out = torch.randn(shape, generator=generator).to(dtype)
    actual = run_op(c, smoothing, scale, causal, slope, grad_out)
    expected = run_oracle(c, smoothing, scale, causal, slope, grad_out)
    for name, a, e in zip(("out", "grad_c", "grad_smoothing"), actual, expected, strict=True):
        assert a.dtype == (dtype if name != "grad_smoothing" else smoothing.dtype), f"{name} dtype {a.dtype}"
        try:
            assert_close_scaled(a, e, REDUCTION, dtype)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("slope", [None, 0.0, 0.4])
@pytest.mark.parametrize("scale", [1, 2, 3, 4, 5, 8, 10, 20])  # 20 > MAX_SCALE: the reference
def test_op_matches_stretched_formulation(scale, slope, causal):
    c = torch.randn(2, 5, 7)
    smoothing = torch.randn(2 * scale + 1)
    check_parity(c, smoothing, scale, causal, slope)


@pytest.mark.parametrize("length", [1, 2, 33])
def test_lengths_and_batch_one(length):
    check_parity(torch.randn(1, 3, length), torch.randn(9), 4, False, 0.1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("causal", [False, True])
def test_half_precision_against_fp32_oracle(dtype, causal):
    c = torch.randn(2, 6, 9).to(dtype)
    smoothing = torch.randn(11).to(dtype)
    check_parity(c, smoothing, 5, causal, 0.2, dtype)


def test_non_contiguous_input_and_gradient():
    c = torch.randn(2, 9, 6).transpose(1, 2)
    assert not c.is_contiguous()
    grad_out = torch.randn(2, 6, 72)[..., ::2]
    assert not grad_out.is_contiguous()
    check_parity(c, torch.randn(9), 4, False, 0.2, grad_out=grad_out)


@pytest.mark.parametrize("slope", [None, 0.2])
def test_expanded_gradient(slope):
    # grad_out expanded (stride 0 over channels, as autograd hands out for a broadcast product); without an
    # activation the kernel also reads it as the sign source, by position: the launcher must make it contiguous.
    grad_out = torch.randn(2, 1, 28).expand(2, 5, 28)
    check_parity(torch.randn(2, 5, 7), torch.randn(9), 4, False, slope, grad_out=grad_out)


@given(
    batch=st.integers(1, 2),
    channels=st.integers(1, 9),
    length=st.integers(1, 20),
    scale=st.integers(1, 12),
    causal=st.booleans(),
    slope=st.sampled_from([None, 0.0, 0.2]),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_fuzz(batch, channels, length, scale, causal, slope, dtype, seed):
    generator = torch.Generator(device=DEVICE).manual_seed(seed)
    c = torch.randn(batch, channels, length, generator=generator).to(dtype)
    smoothing = torch.randn(2 * scale + 1, generator=generator).to(dtype)
    check_parity(c, smoothing, scale, causal, slope, dtype, generator=generator)


@pytest.mark.reference
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("slope", [None, 0.2])
def test_reference_backward_gradcheck_float64(causal, slope):
    c = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    taps = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)

    def forward(c, taps):
        # An out-of-place copy of the reference (it applies the LeakyReLU in place).
        out = stretch_conv1d_reference(c, taps, causal, None)
        return out if slope is None else F.leaky_relu(out, slope)

    assert torch.autograd.gradcheck(forward, (c, taps))
    out = forward(c, taps)
    grad_out = torch.randn_like(out)
    expected = torch.autograd.grad(out, (c, taps), grad_out)
    actual = stretch_conv1d_backward_reference(grad_out, c.detach(), taps.detach(), out.detach(), causal, slope)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e)


@pytest.mark.parametrize("slope", [None, 0.2])
def test_opcheck(slope):
    c = torch.randn(2, 3, 7, requires_grad=True)
    taps = torch.randn(4, 3, requires_grad=True)
    torch.library.opcheck(torch.ops.fastgan.stretch_conv1d.default, (c, taps, False, slope))
    torch.library.opcheck(torch.ops.fastgan.stretch_conv1d.default, (c, taps, True, slope))
    grad_out = torch.randn(2, 3, 28)
    out = stretch_conv1d(c.detach(), taps.detach(), False, slope) if slope is not None else None
    torch.library.opcheck(
        torch.ops.fastgan.stretch_conv1d_backward.default, (grad_out, c.detach(), taps.detach(), out, False, slope)
    )


def test_torch_compile_fullgraph_forward_and_backward():
    torch._dynamo.reset()
    module = fastgan.nn.UpsampleNetwork([2, 3], nonlinear_activation="LeakyReLU",
                                        nonlinear_activation_params={"negative_slope": 0.4})  # fmt: skip
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()

    def step(c):
        return (module(c) * 3.0).sum()

    compiled = torch.compile(step, fullgraph=True)
    c = torch.randn(2, 4, 5)
    c_compiled = c.clone().requires_grad_()
    c_eager = c.clone().requires_grad_()
    compiled(c_compiled).backward()
    grads = [p.grad.clone() for p in module.parameters()]
    module.zero_grad()
    step(c_eager).backward()
    assert_close_scaled(c_compiled.grad, c_eager.grad, REDUCTION)
    for g, p in zip(grads, module.parameters(), strict=True):
        assert_close_scaled(g, p.grad, REDUCTION)


UPSAMPLE_CONFIGS = {
    "pwg_default": {"upsample_scales": [4, 4, 4, 4]},
    "pwg_24k": {"upsample_scales": [4, 5, 3, 5]},
    "causal": {"upsample_scales": [4, 5, 3, 5], "use_causal_conv": True},
    "leaky": {"upsample_scales": [2, 3], "nonlinear_activation": "LeakyReLU",
              "nonlinear_activation_params": {"negative_slope": 0.2}},
    "relu": {"upsample_scales": [3, 2], "nonlinear_activation": "ReLU"},
    "tanh_unfused": {"upsample_scales": [2, 2], "nonlinear_activation": "Tanh"},
    "freq_kernel_3": {"upsample_scales": [2, 3], "freq_axis_kernel_size": 3},
    "bilinear": {"upsample_scales": [2, 3], "interpolate_mode": "bilinear"},
}  # fmt: skip


def _randomize(module):
    generator = torch.Generator(device=DEVICE).manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) / p[0].numel() ** 0.5)


def compare_modules(ours, theirs, c):
    theirs.load_state_dict(ours.state_dict())
    c_ours = c.clone().requires_grad_()
    c_theirs = c.clone().requires_grad_()
    out, expected = ours(c_ours), theirs(c_theirs)
    assert_close_scaled(out, expected, REDUCTION)
    grad = torch.randn_like(expected)
    out.backward(grad)
    expected.backward(grad)
    assert_close_scaled(c_ours.grad, c_theirs.grad, REDUCTION)
    for (name, p_ours), (_, p_theirs) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        try:
            assert_close_scaled(p_ours.grad, p_theirs.grad, REDUCTION)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None


@pytest.mark.parametrize("config", list(UPSAMPLE_CONFIGS.values()), ids=list(UPSAMPLE_CONFIGS))
def test_upsample_network_matches_parallel_wavegan(config):
    upsample = parallel_wavegan("layers.upsample")
    ours = fastgan.nn.UpsampleNetwork(**config)
    theirs = upsample.UpsampleNetwork(**config)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    # The default (box filter) initialisation is parallel_wavegan's too.
    for (_, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items(), strict=True):
        assert torch.equal(a, b)
    _randomize(ours)
    compare_modules(ours, theirs, torch.randn(2, 3, 5))


@pytest.mark.parametrize("causal", [False, True])
def test_conv_in_upsample_network_matches_parallel_wavegan(causal):
    upsample = parallel_wavegan("layers.upsample")
    config = {"upsample_scales": [4, 5, 3, 5], "aux_channels": 8, "aux_context_window": 2, "use_causal_conv": causal}
    ours = fastgan.nn.ConvInUpsampleNetwork(**config)
    theirs = upsample.ConvInUpsampleNetwork(**config)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    _randomize(ours)
    compare_modules(ours, theirs, torch.randn(1, 8, 9))


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
def test_old_style_weight_norm_weights_are_current():
    """torch.nn.utils.weight_norm recomputes ``weight`` only when the conv is called; the fused path
    reads the weights without calling it, so it must compute them (a loaded checkpoint's g/v)."""
    upsample = parallel_wavegan("layers.upsample")
    config = {"upsample_scales": [2, 3]}
    ours, theirs = fastgan.nn.UpsampleNetwork(**config), upsample.UpsampleNetwork(**config)
    for module in (ours, theirs):
        for layer in module.up_layers:
            if isinstance(layer, torch.nn.Conv2d):
                torch.nn.utils.weight_norm(layer)
    c = torch.randn(2, 3, 5)
    ours(c)  # a call caches the initial weights in the old form
    _randomize(ours)  # then new g/v, as load_state_dict would bring
    theirs.load_state_dict(ours.state_dict())
    with torch.no_grad():
        assert_close_scaled(ours(c), theirs(c), REDUCTION)


def test_fused_path_is_taken_for_published_configurations():
    assert fastgan.nn.UpsampleNetwork([4, 5, 3, 5]).fused
    assert not fastgan.nn.UpsampleNetwork([4], freq_axis_kernel_size=3).fused
    assert not fastgan.nn.UpsampleNetwork([4], interpolate_mode="bilinear").fused


class TestBadInput:
    def test_wrong_ndim(self):
        with pytest.raises(ValueError, match=r"c must have 3 dimensions, got shape \(3, 5\)"):
            stretch_conv1d(torch.randn(3, 5), torch.randn(2, 3))
        with pytest.raises(ValueError, match=r"c must be \(batch, channels, time\)"):
            fastgan.nn.UpsampleNetwork([2])(torch.randn(3, 5))

    def test_taps_shape(self):
        with pytest.raises(ValueError, match=r"taps must have shape \(scale, 3\) with scale >= 1, got \(2, 5\)"):
            stretch_conv1d(torch.randn(1, 3, 5), torch.randn(2, 5))

    def test_dtype(self):
        with pytest.raises(TypeError, match="c has dtype torch.float64"):
            stretch_conv1d(torch.randn(1, 3, 5, dtype=torch.float64), torch.randn(2, 3))

    def test_negative_slope(self):
        with pytest.raises(ValueError, match="negative_slope must be >= 0"):
            stretch_conv1d(torch.randn(1, 3, 5), torch.randn(2, 3), False, -0.1)

    def test_module_arguments(self):
        with pytest.raises(ValueError, match="freq_axis_kernel_size must be odd"):
            fastgan.nn.UpsampleNetwork([2], freq_axis_kernel_size=2)
        with pytest.raises(ValueError, match="every upsample scale must be >= 1"):
            fastgan.nn.UpsampleNetwork([2, 0])

    def test_non_integer_scales_are_refused_not_truncated(self):
        for scales in ([2.5], [4, 1.5], [float("nan")], [float("inf")]):
            with pytest.raises(ValueError, match=r"upsample scales must be integers, got \["):
                fastgan.nn.UpsampleNetwork(scales)
        for scales in (["2"], [True], [None]):
            with pytest.raises(TypeError, match=r"upsample scales must be integers, got \["):
                fastgan.nn.UpsampleNetwork(scales)
        with pytest.raises(ValueError, match=r"upsample scales must be integers, got \[2\.5\]"):
            fastgan.nn.ConvInUpsampleNetwork([2.5], aux_channels=3)
        # an integral float (a config written as 2.0) is that integer
        assert fastgan.nn.UpsampleNetwork([2.0, 3]).upsample_scales == [2, 3]
        assert type(fastgan.nn.UpsampleNetwork([2.0]).upsample_scales[0]) is int

    def test_conv_in_needs_the_context_frames(self):
        window = 2
        for causal in (False, True):
            net = fastgan.nn.ConvInUpsampleNetwork([2, 2], aux_channels=8, aux_context_window=window,
                                                   use_causal_conv=causal)  # fmt: skip
            assert net(torch.randn(1, 8, 1 + 2 * window)).shape == (1, 8, 4)  # one frame and its context
            for frames in (0, 2, 2 * window):
                with pytest.raises(ValueError, match=rf"c has {frames} frames, fewer than the 5 the context conv "
                                                     rf"needs .*aux_context_window=2.*got shape \(1, 8, {frames}\)"):  # fmt: skip
                    net(torch.randn(1, 8, frames))
            with pytest.raises(ValueError, match=r"c must be \(batch, 8, frames \+ 2 \* aux_context_window\), "
                                                 r"got shape \(1, 6, 14\)"):  # fmt: skip
                net(torch.randn(1, 6, 14))
            with pytest.raises(ValueError, match=r"got shape \(8, 14\)"):
                net.context(torch.randn(8, 14))
        without_context = fastgan.nn.ConvInUpsampleNetwork([2], aux_channels=3, aux_context_window=0)
        with pytest.raises(ValueError, match=r"c has 0 frames, fewer than the 1 the context conv needs"):
            without_context(torch.randn(1, 3, 0))


@pytest.mark.parametrize("causal", [False, True])
def test_custom_op_itself_forward_and_backward(causal):
    """Eager inference on the reference path skips the registered op; the op (what autograd,
    torch.compile and CUDA run) must match the stretched formulation too."""
    c = torch.randn(2, 3, 6)
    smoothing = torch.randn(9)
    leaf_c = c.clone().requires_grad_()
    leaf_taps = smoothing_to_taps(smoothing, 4, causal).detach().requires_grad_()
    out = torch.ops.fastgan.stretch_conv1d(leaf_c, leaf_taps, causal, 0.2)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    expected_out, expected_grad_c, _ = run_oracle(c, smoothing, 4, causal, 0.2, grad_out)
    assert_close_scaled(out, expected_out, REDUCTION)
    assert_close_scaled(leaf_c.grad, expected_grad_c, REDUCTION)
    taps = smoothing_to_taps(smoothing, 4, causal).requires_grad_()
    torch.autograd.backward(stretched_oracle_from_taps(c, taps, causal, 0.2), grad_out)
    assert_close_scaled(leaf_taps.grad, taps.grad, REDUCTION)


def stretched_oracle_from_taps(c, taps, causal, slope):
    """out[t*s + r] = leaky(sum_m taps[r, m] c[t + first + m]) written as an explicit loop over phases."""
    scale = taps.shape[0]
    first = -2 if causal else -1
    padded = F.pad(c, (-first, 2 + first))
    length = c.shape[-1]
    phases = [sum(taps[r, m] * padded[..., m : m + length] for m in range(3)) for r in range(scale)]
    out = torch.stack(phases, dim=-1).reshape(*c.shape[:2], length * scale)
    return F.leaky_relu(out, slope)


def test_inference_takes_the_same_values_as_the_op():
    c = torch.randn(2, 3, 6)
    taps = torch.randn(5, 3)
    with torch.no_grad():
        direct = stretch_conv1d(c, taps, False, 0.2)
        op = torch.ops.fastgan.stretch_conv1d(c, taps, False, 0.2)
    assert_close_scaled(direct, op, REDUCTION)


@pytest.mark.parametrize("scales", [[4, 5, 3, 5], [2, 3], [1, 2]], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("frames", [1, 2, 9, 30])  # 30: longer than the probe (2 * width + 3)
def test_banded_upsampler_equals_the_network(scales, causal, frames):
    """The band found by probing the network with combs reproduces it, edges included, whole and in frame ranges."""
    net = fastgan.nn.UpsampleNetwork(scales, use_causal_conv=causal).to(DEVICE)
    _randomize(net)
    c = torch.randn(2, 3, frames, generator=torch.Generator(device=DEVICE).manual_seed(frames))
    upsampler = net.banded_upsampler(frames)
    with torch.no_grad():
        expected = net(c)
    assert upsampler.hop == math.prod(scales) and upsampler.frames == frames
    assert_close_scaled(upsampler.apply(c), expected, REDUCTION)
    cuts = sorted({0, frames // 3, frames // 2 + 1, frames})
    pieces = [upsampler.apply_rows(c[1], a, b) for a, b in zip(cuts, cuts[1:], strict=False)]
    bias = torch.randn(3, generator=torch.Generator(device=DEVICE).manual_seed(5))
    with_bias = upsampler.apply_rows(c[1], 0, frames, row_bias=bias)
    assert_close_scaled(with_bias, expected[1] + bias[:, None], REDUCTION)
    assert_close_scaled(torch.cat(pieces, 1), expected[1], REDUCTION)
    if frames >= 9:  # only frames near the ends differ from the interior row (their zero padding)
        assert 0 < len(upsampler.edge_frames) <= 2 * upsampler.width


def test_banded_upsampler_needs_a_linear_network():
    net = fastgan.nn.UpsampleNetwork([2, 3], nonlinear_activation="ReLU")
    assert not net.linear
    with pytest.raises(ValueError, match="only for a linear network"):
        net.banded_upsampler(4)
    assert fastgan.nn.ConvInUpsampleNetwork([2, 3], aux_channels=4, aux_context_window=1).linear


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_banded_upsampler_half_precision(dtype):
    """Half-precision frames: computed in fp32 and rounded once, so within the fused op's half tolerance of fp32."""
    net = fastgan.nn.UpsampleNetwork([4, 5, 3, 5]).to(DEVICE)
    _randomize(net)
    c = torch.randn(1, 4, 6, generator=torch.Generator(device=DEVICE).manual_seed(2))
    upsampler = net.banded_upsampler(6)
    out = upsampler.apply(c.to(dtype))
    assert out.dtype == dtype
    assert_close_scaled(out, upsampler.apply(c.to(dtype).float()), REDUCTION, dtype)
