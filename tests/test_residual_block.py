"""Dilated residual steps (MelGAN's residual stack, HiFi-GAN's ResBlock1/ResBlock2): the op (Triton
kernels in the interpreter pass and on CUDA, the reference otherwise) against a float64 composition
of torch ops and against parallel_wavegan's layers (state_dict loaded across), forward and
backward; the modules (both weight-norm forms, folding, non-fusable fallbacks); bad inputs."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import fastgan
from fastgan.functional import leaky_dilated_residual
from fastgan.references.residual_block import (
    leaky_dilated_residual_backward_reference,
    leaky_dilated_residual_reference,
)
from tests.conftest import DEVICE, KERNELS_RUN
from tests.oracle import parallel_wavegan
from tests.tolerances import RESIDUAL_BLOCK

NAMES = ("x", "weight1", "bias1", "weight2", "bias2", "shortcut_weight", "shortcut_bias")
KINDS = ("melgan", "resblock1", "resblock2")
SLOPES = {"melgan": 0.2, "resblock1": 0.1, "resblock2": 0.1}


def assert_scaled_close(actual, expected, dtype, what=""):
    """|actual - expected| <= atol * max|expected| + rtol * |expected| (RESIDUAL_BLOCK's table)."""
    atol, rtol = RESIDUAL_BLOCK[dtype]
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert not torch.isnan(actual).any(), f"{what}: holds NaN (an unwritten element?)"
    expected = expected.double()
    scale = expected.abs().max().item() or 1.0
    torch.testing.assert_close(actual.double(), expected, atol=atol * scale, rtol=rtol, msg=lambda m: f"{what}: {m}")


def make_params(kind, channels, kernel_size, bias=True, dtype=torch.float32, generator=None):
    """(weight1, bias1, weight2, bias2, shortcut_weight, shortcut_bias) for one step of ``kind``."""

    def rand(*shape, scale):
        return (torch.randn(*shape, generator=generator) * scale).to(dtype)

    def conv(taps):
        weight = rand(channels, channels, taps, scale=1.0 / math.sqrt(channels * taps))
        return weight, (rand(channels, scale=0.3) if bias else None)

    w1, b1 = conv(kernel_size)
    w2 = b2 = ws = bs = None
    if kind == "melgan":
        (w2, b2), (ws, bs) = conv(1), conv(1)
    elif kind == "resblock1":
        w2, b2 = conv(kernel_size)
    elif kind == "pointwise":  # a 1x1 second conv with an identity residual (not a parallel_wavegan layer)
        w2, b2 = conv(1)
    return (w1, b1, w2, b2, ws, bs)


def composition(x, w1, b1, w2, b2, ws, bs, slope, dilation, padding, causal):
    """The step as parallel_wavegan composes it: activation → pad → conv → activation → conv, + residual."""
    kernel_size = w1.shape[2]
    total = (kernel_size - 1) * dilation
    left, right = (total, 0) if causal else (total // 2, total // 2)
    mode = {"zeros": "constant"}.get(padding, padding)
    z = F.conv1d(F.pad(F.leaky_relu(x, slope), (left, right), mode=mode), w1, b1, dilation=dilation)
    if w2 is not None:
        taps = w2.shape[2]
        pads = (taps - 1, 0) if causal else ((taps - 1) // 2, (taps - 1) // 2)
        z = F.conv1d(F.pad(F.leaky_relu(z, slope), pads), w2, b2)
    return z + (x if ws is None else F.conv1d(x, ws, bs))


def leaves(x, params):
    """Fresh leaves with the tensors' own layouts (clone would make a non-dense view, e.g. ``b[::2]``, contiguous)."""
    return [None if t is None else t.detach().requires_grad_() for t in (x, *params)]


def strided(tensor):
    """The same values as a non-contiguous view: every other element of a buffer whose other elements are 100,
    so a kernel that ignores the strides reads its neighbours' values or 100s."""
    return torch.stack((tensor, torch.full_like(tensor, 100.0)), dim=-1)[..., 0]


def run_op(x, params, config, grad_out):
    tensors = leaves(x, params)
    slope, dilation, padding, causal = config
    out = leaky_dilated_residual(*tensors, negative_slope=slope, dilation=dilation, padding=padding, causal=causal)
    out.backward(grad_out)
    return out, [None if t is None else t.grad for t in tensors]


def run_composition_float64(x, params, config, grad_out):
    tensors = leaves(x.double(), [None if p is None else p.double() for p in params])
    out = composition(*tensors, *config)
    out.backward(grad_out.double())
    return out, [None if t is None else t.grad for t in tensors]


def check_against_composition(x, params, config, grad_out, dtype):
    out, grads = run_op(x, params, config, grad_out)
    assert out.dtype == dtype
    expected_out, expected_grads = run_composition_float64(x, params, config, grad_out)
    assert_scaled_close(out, expected_out, dtype, "out")
    for name, grad, expected in zip(NAMES, grads, expected_grads, strict=True):
        if expected is None:
            assert grad is None
            continue
        assert grad.dtype == dtype, name
        assert_scaled_close(grad, expected, dtype, f"grad {name}")


def length_for(kernel_size, dilation, causal, extra=7):
    """A signal long enough for reflection: padding < T."""
    total = (kernel_size - 1) * dilation
    return (total if causal else total // 2) + extra


# --- the reference alone (fallback pass) --------------------------------------------------------


@pytest.mark.reference
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_reference_matches_composition_float64(kind, causal):
    # Every kernel size and a spread of dilations, every padding, in float64 (the reference's own
    # arithmetic, not its rounding, is what this checks): forward and the hand-written backward.
    generator = torch.Generator(device=DEVICE).manual_seed(1)
    paddings = ("reflect", "replicate", "zeros") if kind == "melgan" else ("zeros",)
    for kernel_size, dilation in [(3, 1), (5, 2), (7, 9), (11, 27), (3, 27), (11, 1), (5, 5)]:
        for padding in paddings:
            length = length_for(kernel_size, dilation, causal, extra=5)
            x = torch.randn(2, 5, length, generator=generator, dtype=torch.float64)
            params = [p if p is None else p.double() for p in make_params(kind, 5, kernel_size, generator=generator)]
            config = (SLOPES[kind], dilation, padding, causal)
            grad_out = torch.randn(x.shape, generator=generator, dtype=torch.float64)
            expected, expected_grads = run_composition_float64(x, params, config, grad_out)
            torch.testing.assert_close(leaky_dilated_residual_reference(x, *params, *config), expected)
            grads = leaky_dilated_residual_backward_reference(grad_out, x, *params, *config)
            for name, grad, want in zip(NAMES, grads, expected_grads, strict=True):
                if want is None:
                    assert grad is None, name
                else:
                    torch.testing.assert_close(
                        grad, want, msg=lambda m, n=f"{name} k={kernel_size} d={dilation}": f"{n}: {m}"
                    )


@pytest.mark.reference
def test_reference_without_biases_and_kernel_size_one():
    x = torch.randn(2, 6, 9, dtype=torch.float64)
    params = [p if p is None else p.double() for p in make_params("melgan", 6, 1, bias=False)]
    grad_out = torch.randn(x.shape, dtype=torch.float64)
    for padding in ("reflect", "zeros"):
        config = (0.2, 4, padding, False)
        expected, expected_grads = run_composition_float64(x, params, config, grad_out)
        torch.testing.assert_close(leaky_dilated_residual_reference(x, *params, *config), expected)
        grads = leaky_dilated_residual_backward_reference(grad_out, x, *params, *config)
        for grad, want in zip(grads, expected_grads, strict=True):
            assert (grad is None) == (want is None)
            if want is not None:
                torch.testing.assert_close(grad, want)


# --- the op (kernels in the interpreter pass) ---------------------------------------------------

# (kind, channels, kernel_size, dilation, padding, causal, length, batch): channels that are and
# are not multiples of 16, several output-channel blocks, every kernel size, dilations up to 27,
# odd lengths, batch 1.
CASES = [
    ("melgan", 20, 3, 3, "reflect", False, 37, 2),
    ("melgan", 5, 5, 2, "zeros", True, 41, 1),
    ("melgan", 33, 3, 9, "reflect", True, 70, 1),
    ("melgan", 40, 3, 27, "reflect", False, 99, 1),
    ("melgan", 16, 7, 1, "replicate", False, 29, 2),
    ("resblock1", 24, 7, 3, "zeros", False, 50, 2),
    ("resblock1", 12, 11, 1, "zeros", True, 33, 1),
    ("resblock1", 17, 3, 27, "zeros", False, 61, 1),
    ("resblock2", 17, 3, 5, "zeros", True, 70, 1),
    ("resblock2", 48, 5, 2, "zeros", False, 45, 2),
    ("resblock2", 9, 11, 3, "reflect", False, 71, 1),
]


def _case_id(case):
    kind, channels, k, d, padding, causal, length, batch = case
    return f"{kind}-c{channels}-k{k}-d{d}-{padding}{'-causal' if causal else ''}-t{length}-b{batch}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_op_matches_composition_fp32(case):
    kind, channels, kernel_size, dilation, padding, causal, length, batch = case
    generator = torch.Generator(device=DEVICE).manual_seed(2)
    x = torch.randn(batch, channels, length, generator=generator)
    params = make_params(kind, channels, kernel_size, generator=generator)
    grad_out = torch.randn(x.shape, generator=generator)
    check_against_composition(x, params, (SLOPES[kind], dilation, padding, causal), grad_out, torch.float32)


def test_wide_melgan_and_pointwise_take_the_two_conv_kernel(monkeypatch):
    # Channels past the fused 1x1 kernel's widest tile, and a 1x1 second conv without a shortcut,
    # run through the two-conv kernel (MelGAN's shortcut as a conv launch first); shrink the fused
    # limit so that small shapes exercise that path.
    pytest.importorskip("triton")
    from fastgan.kernels import residual_block as kernels

    monkeypatch.setattr(kernels, "MAX_FUSED_CHANNELS", 8)
    spy = _LaunchSpy(kernels._fused_two_conv_forward_kernel)
    monkeypatch.setattr(kernels, "_fused_two_conv_forward_kernel", spy)
    generator = torch.Generator(device=DEVICE).manual_seed(7)
    for kind, padding, causal in (("melgan", "reflect", False), ("pointwise", "zeros", True)):
        x = torch.randn(2, 20, 33, generator=generator)
        params = make_params(kind, 20, 3, generator=generator)
        grad_out = torch.randn(x.shape, generator=generator)
        check_against_composition(x, params, (0.2, 3, padding, causal), grad_out, torch.float32)
    assert len(spy.block_ts) == (2 if KERNELS_RUN else 0)


class _LaunchSpy:
    """Stands in for a jit kernel: forwards ``kernel[grid](...)`` and records each launch's BLOCK_T."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.block_ts = []

    def __getitem__(self, grid):
        launch = self.kernel[grid]

        def run(*args, **kwargs):
            self.block_ts.append(kwargs["BLOCK_T"])
            return launch(*args, **kwargs)

        return run


# ResBlock1 steps for the fused two-conv kernel: (channels, kernel_size, dilation, padding, causal,
# length, batch, BLOCK_T, dtype). Channels past one 32-channel block and not multiples of 16; lengths
# not multiples of BLOCK_T with the last tile's halo past the end, longer and shorter than one tile,
# shorter than the kernel; two halo chunks (k = 19 > 17); an even causal kernel; the first conv
# reflect-padded; every BLOCK_T the launcher can pick for the dtype. The large-reduction bf16 cases
# (k = 7..11, 20..36 channels) once caught the CPU reference rounding z to bf16 between its convs
# (a LeakyReLU gate flipped where bf16 z had the wrong sign); its gradients now compute in fp32 like
# the kernels (bf16 inference may stay bf16: test_bf16_inference_against_float64).
RESBLOCK1_CASES = [
    (40, 3, 1, "zeros", False, 45, 2, 32, torch.float32),
    (33, 5, 3, "zeros", True, 70, 1, 64, torch.float32),
    (20, 7, 5, "zeros", False, 150, 1, 128, torch.float16),
    (36, 11, 3, "zeros", True, 77, 1, 64, torch.float16),
    (12, 3, 1, "zeros", False, 131, 1, 128, torch.bfloat16),
    (20, 5, 3, "zeros", True, 100, 1, 64, torch.bfloat16),
    (20, 7, 5, "zeros", False, 150, 1, 128, torch.bfloat16),
    (36, 11, 3, "zeros", True, 77, 1, 64, torch.bfloat16),
    (12, 11, 1, "zeros", True, 9, 2, 32, torch.float32),
    (17, 11, 3, "zeros", False, 5, 1, 64, torch.float32),
    (10, 19, 1, "zeros", False, 40, 1, 32, torch.float32),
    (9, 4, 2, "zeros", True, 23, 2, 32, torch.float32),
    (24, 5, 2, "reflect", False, 37, 1, 32, torch.float32),
]


def _resblock1_id(case):
    channels, k, d, padding, causal, length, batch, block_t, dtype = case
    causal_tag = "-causal" if causal else ""
    return f"c{channels}-k{k}-d{d}-{padding}{causal_tag}-t{length}-b{batch}-bt{block_t}-{str(dtype)[6:]}"


@pytest.mark.parametrize("case", RESBLOCK1_CASES, ids=_resblock1_id)
def test_resblock1_fused_kernel(case, monkeypatch):
    # One launch of the two-conv kernel per forward step (at the forced BLOCK_T) where kernels run;
    # the forward and every gradient against the float64 composition in both passes.
    pytest.importorskip("triton")
    from fastgan.kernels import residual_block as kernels

    channels, kernel_size, dilation, padding, causal, length, batch, block_t, dtype = case
    assert block_t in kernels.TWO_CONV_BLOCK_TS[dtype]  # a configuration aot_specs() compiles
    spy = _LaunchSpy(kernels._fused_two_conv_forward_kernel)
    monkeypatch.setattr(kernels, "_fused_two_conv_forward_kernel", spy)
    monkeypatch.setattr(kernels, "_two_conv_block_t", lambda *_: block_t)
    generator = torch.Generator(device=DEVICE).manual_seed(8)
    x = torch.randn(batch, channels, length, generator=generator).to(dtype)
    params = make_params("resblock1", channels, kernel_size, dtype=dtype, generator=generator)
    grad_out = torch.randn(x.shape, generator=generator).to(dtype)
    check_against_composition(x, params, (0.1, dilation, padding, causal), grad_out, dtype)
    assert spy.block_ts == ([block_t] if KERNELS_RUN else [])


def test_resblock1_tile_choice():
    # The widest tile that still gives TWO_CONV_TARGET_PROGRAMS programs, else the narrowest; fp32
    # never past 64; every choice a configuration that aot_specs() lists.
    pytest.importorskip("triton")
    from fastgan.kernels import residual_block as kernels

    target = kernels.TWO_CONV_TARGET_PROGRAMS
    assert kernels._two_conv_block_t(1, 128 * target, torch.float16) == 128
    assert kernels._two_conv_block_t(1, 64 * target, torch.bfloat16) == 64  # 128: target / 2 programs
    assert kernels._two_conv_block_t(1, 128 * target, torch.float32) == 64
    assert kernels._two_conv_block_t(16, 1000, torch.float16) == 32
    listed = {
        (spec.label.split()[0], spec.constexprs["BLOCK_T"])
        for spec in kernels.aot_specs()
        if spec.name == "_fused_two_conv_forward_kernel"
    }
    for dtype, name in (("float32", "fp32"), ("float16", "fp16"), ("bfloat16", "bf16")):
        for batch, length in ((1, 1), (2, 3000), (16, 22050), (64, 22050)):
            assert (name, kernels._two_conv_block_t(batch, length, getattr(torch, dtype))) in listed


@pytest.mark.parametrize("kind", KINDS)
def test_op_without_biases(kind):
    generator = torch.Generator(device=DEVICE).manual_seed(3)
    x = torch.randn(2, 18, 35, generator=generator)
    params = make_params(kind, 18, 3, bias=False, generator=generator)
    padding = "reflect" if kind == "melgan" else "zeros"
    check_against_composition(
        x, params, (0.2, 2, padding, False), torch.randn(x.shape, generator=generator), torch.float32
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_half_precision_against_float64(kind, dtype):
    generator = torch.Generator(device=DEVICE).manual_seed(4)
    x = torch.randn(2, 20, 45, generator=generator).to(dtype)
    params = make_params(kind, 20, 5, dtype=dtype, generator=generator)
    padding = "reflect" if kind == "melgan" else "zeros"
    grad_out = torch.randn(x.shape, generator=generator).to(dtype)
    # The composition runs in float64 on the same rounded inputs.
    check_against_composition(x, params, (SLOPES[kind], 3, padding, kind == "resblock2"), grad_out, dtype)


@pytest.mark.parametrize("kind", KINDS)
def test_non_contiguous_input_and_gradient(kind):
    generator = torch.Generator(device=DEVICE).manual_seed(5)
    x = torch.randn(2, 39, 24, generator=generator).transpose(1, 2)  # (B, C=24, T=39), time-major
    grad_out = torch.randn(2, 24, 78, generator=generator)[:, :, ::2]
    assert not x.is_contiguous() and not grad_out.is_contiguous()
    params = make_params(kind, 24, 3, generator=generator)
    padding = "reflect" if kind == "melgan" else "zeros"
    check_against_composition(x, params, (SLOPES[kind], 3, padding, False), grad_out, torch.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_non_contiguous_biases_and_weights_and_expanded_gradient(kind):
    # Every bias and weight a strided view, and grad_out an expanded one (stride 0 over batch and time, as
    # autograd hands out for out.sum()): the kernels must read each by its strides or get it contiguous.
    generator = torch.Generator(device=DEVICE).manual_seed(6)
    x = torch.randn(2, 24, 39, generator=generator)
    params = [None if p is None else strided(p) for p in make_params(kind, 24, 3, generator=generator)]
    assert all(p is None or not p.is_contiguous() for p in params)
    grad_out = torch.randn(1, 24, 1, generator=generator).expand(2, 24, 39)
    padding = "reflect" if kind == "melgan" else "zeros"
    for causal in (False, True):
        check_against_composition(x, params, (SLOPES[kind], 2, padding, causal), grad_out, torch.float32)


@settings(max_examples=min(10, settings.default.max_examples))
@given(
    kind=st.sampled_from(KINDS),
    channels=st.integers(1, 24),
    kernel_size=st.sampled_from([1, 3, 5, 7]),
    dilation=st.integers(1, 6),
    padding=st.sampled_from(["reflect", "zeros", "replicate"]),
    causal=st.booleans(),
    extra=st.integers(1, 40),
    batch=st.integers(1, 2),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]),
    seed=st.integers(0, 2**16),
)
def test_fuzz(kind, channels, kernel_size, dilation, padding, causal, extra, batch, dtype, seed):
    generator = torch.Generator(device=DEVICE).manual_seed(seed)
    length = length_for(kernel_size, dilation, causal, extra)
    x = torch.randn(batch, channels, length, generator=generator).to(dtype)
    params = make_params(kind, channels, kernel_size, dtype=dtype, generator=generator)
    grad_out = torch.randn(x.shape, generator=generator).to(dtype)
    check_against_composition(x, params, (0.2, dilation, padding, causal), grad_out, dtype)


@pytest.mark.parametrize("kind", KINDS)
def test_opcheck(kind):
    x = torch.randn(2, 6, 13)
    params = make_params(kind, 6, 3)
    padding = "reflect" if kind == "melgan" else "zeros"
    config = (0.2, 2, padding, False)
    tensors = leaves(x, params)
    torch.library.opcheck(torch.ops.fastgan.leaky_dilated_residual.default, (*tensors, *config))
    grad_out = torch.randn(2, 6, 13)
    torch.library.opcheck(torch.ops.fastgan.leaky_dilated_residual_backward.default, (grad_out, x, *params, *config))


def test_torch_compile_fullgraph_forward_and_backward():
    torch._dynamo.reset()
    module = fastgan.nn.HiFiGANResidualBlock(kernel_size=3, channels=8, dilations=(1, 3))

    def step(x):
        return (module(x) * 2.0).sum()

    compiled = torch.compile(step, fullgraph=True)
    x = torch.randn(2, 8, 21)
    x_compiled = x.clone().requires_grad_()
    x_eager = x.clone().requires_grad_()
    compiled(x_compiled).backward()
    grad_compiled = [p.grad.clone() for p in module.parameters()]
    module.zero_grad()
    step(x_eager).backward()
    torch.testing.assert_close(x_compiled.grad, x_eager.grad)
    for compiled_grad, p in zip(grad_compiled, module.parameters(), strict=True):
        torch.testing.assert_close(compiled_grad, p.grad)


# --- the modules against parallel_wavegan ------------------------------------------------------


def _apply_weight_norm(module, form):
    for conv in module.modules():
        if isinstance(conv, torch.nn.Conv1d):
            if form == "hook":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    torch.nn.utils.weight_norm(conv)
            elif form == "parametrization":
                torch.nn.utils.parametrizations.weight_norm(conv)
    return module


def _randomise(module, generator):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)


def compare_with_parallel_wavegan(ours_cls, theirs_cls, kwargs, x, weight_norm=None, train=True):
    generator = torch.Generator(device=DEVICE).manual_seed(6)
    theirs = _apply_weight_norm(theirs_cls(**kwargs), weight_norm).to(DEVICE)
    _randomise(theirs, generator)
    ours = _apply_weight_norm(ours_cls(**kwargs), weight_norm).to(DEVICE)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    x_ours = x.clone().requires_grad_(train)
    x_theirs = x.clone().requires_grad_(train)
    out_theirs = theirs(x_theirs)
    out_ours = ours(x_ours)
    assert_scaled_close(out_ours, out_theirs.detach(), torch.float32, "out")
    if train:
        grad_out = torch.randn(out_theirs.shape, generator=generator)
        out_theirs.backward(grad_out)
        out_ours.backward(grad_out)
        assert_scaled_close(x_ours.grad, x_theirs.grad, torch.float32, "grad x")
        theirs_params = dict(theirs.named_parameters())
        for name, p in ours.named_parameters():
            assert_scaled_close(p.grad, theirs_params[name].grad, torch.float32, f"grad {name}")
    return ours, theirs


STACK_CASES = [
    ({"kernel_size": 3, "channels": 20, "dilation": 3}, None),
    ({"kernel_size": 3, "channels": 16, "dilation": 9, "use_causal_conv": True}, "hook"),
    ({"kernel_size": 5, "channels": 12, "dilation": 1, "pad": "ConstantPad1d", "pad_params": {"value": 0.0}},
     "parametrization"),
]  # fmt: skip


@pytest.mark.parametrize("kwargs,weight_norm", STACK_CASES)
def test_residual_stack_matches_parallel_wavegan(kwargs, weight_norm):
    layers = parallel_wavegan("layers")
    x = torch.randn(2, kwargs["channels"], 47)
    compare_with_parallel_wavegan(fastgan.nn.ResidualStack, layers.ResidualStack, kwargs, x, weight_norm)


HIFI_CASES = [
    ({"kernel_size": 3, "channels": 16, "dilations": (1, 3, 5)}, "hook"),
    ({"kernel_size": 7, "channels": 10, "dilations": (1, 3), "use_causal_conv": True}, None),
    ({"kernel_size": 5, "channels": 12, "dilations": (1, 2), "use_additional_convs": False}, "parametrization"),
]


@pytest.mark.parametrize("kwargs,weight_norm", HIFI_CASES)
def test_hifigan_block_matches_parallel_wavegan(kwargs, weight_norm):
    layers = parallel_wavegan("layers")
    x = torch.randn(2, kwargs["channels"], 41)
    compare_with_parallel_wavegan(fastgan.nn.HiFiGANResidualBlock, layers.HiFiGANResidualBlock, kwargs, x, weight_norm)


# Every kernel size, dilations up to 27, every padding module, with and without biases.
KERNEL_DILATIONS = [(3, 1), (5, 3), (7, 9), (11, 27), (3, 27), (11, 2)]


@pytest.mark.reference
@pytest.mark.parametrize("causal", [False, True])
def test_residual_stack_matches_parallel_wavegan_exhaustive(causal):
    layers = parallel_wavegan("layers")
    for index, (kernel_size, dilation) in enumerate(KERNEL_DILATIONS):
        for pad, pad_params in (("ReflectionPad1d", {}), ("ReplicationPad1d", {}), ("ConstantPad1d", {"value": 0.0})):
            kwargs = {"kernel_size": kernel_size, "channels": 7, "dilation": dilation, "bias": index % 2 == 0,
                      "pad": pad, "pad_params": pad_params, "use_causal_conv": causal}  # fmt: skip
            x = torch.randn(1, 7, length_for(kernel_size, dilation, causal, extra=4))
            compare_with_parallel_wavegan(fastgan.nn.ResidualStack, layers.ResidualStack, kwargs, x)


@pytest.mark.reference
@pytest.mark.parametrize("causal", [False, True])
def test_hifigan_block_matches_parallel_wavegan_exhaustive(causal):
    layers = parallel_wavegan("layers")
    for kernel_size in (3, 5, 7, 11):
        for additional in (True, False):
            kwargs = {"kernel_size": kernel_size, "channels": 9, "dilations": (1, 3, 5, 27), "bias": additional,
                      "use_additional_convs": additional, "use_causal_conv": causal}  # fmt: skip
            x = torch.randn(1, 9, 53)
            compare_with_parallel_wavegan(fastgan.nn.HiFiGANResidualBlock, layers.HiFiGANResidualBlock, kwargs, x)


@pytest.mark.reference
@pytest.mark.parametrize("weight_norm", ["hook", "parametrization"])
@pytest.mark.parametrize("causal", [False, True])
def test_weight_norm_forms_match_parallel_wavegan(causal, weight_norm):
    layers = parallel_wavegan("layers")
    kwargs = {"kernel_size": 5, "channels": 6, "dilation": 3, "use_causal_conv": causal}
    x = torch.randn(1, 6, 40)
    compare_with_parallel_wavegan(fastgan.nn.ResidualStack, layers.ResidualStack, kwargs, x, weight_norm)
    kwargs = {"kernel_size": 5, "channels": 6, "dilations": (1, 3), "use_causal_conv": causal}
    compare_with_parallel_wavegan(fastgan.nn.HiFiGANResidualBlock, layers.HiFiGANResidualBlock, kwargs, x, weight_norm)


@pytest.mark.reference
@pytest.mark.parametrize(
    "kwargs",
    [
        {"nonlinear_activation": "ELU", "nonlinear_activation_params": {"alpha": 1.0}},
        {"nonlinear_activation": "ReLU", "nonlinear_activation_params": {}},
        {"pad": "ConstantPad1d", "pad_params": {"value": 0.5}},
    ],
    ids=["elu", "relu", "constant-0.5"],
)
def test_residual_stack_non_fusable_configurations_fall_back(kwargs):
    layers = parallel_wavegan("layers")
    ours, _ = compare_with_parallel_wavegan(
        fastgan.nn.ResidualStack, layers.ResidualStack, {"channels": 8, "dilation": 3, **kwargs}, torch.randn(2, 8, 30)
    )
    assert ours._fused_arguments() is None


@pytest.mark.reference
def test_hifigan_block_non_leaky_activation_falls_back():
    layers = parallel_wavegan("layers")
    kwargs = {"channels": 8, "nonlinear_activation": "ReLU", "nonlinear_activation_params": {}}
    ours, _ = compare_with_parallel_wavegan(
        fastgan.nn.HiFiGANResidualBlock, layers.HiFiGANResidualBlock, kwargs, torch.randn(2, 8, 30)
    )
    assert ours._fused_steps() is None


class TestModules:
    @pytest.mark.parametrize("block", ["stack", "hifigan"])
    def test_autocast_matches_parallel_wavegan(self, block):
        layers = parallel_wavegan("layers")
        if block == "stack":
            ours, theirs = (
                fastgan.nn.ResidualStack(channels=12, dilation=3),
                layers.ResidualStack(channels=12, dilation=3),
            )
        else:
            ours, theirs = fastgan.nn.HiFiGANResidualBlock(channels=12), layers.HiFiGANResidualBlock(channels=12)
        ours.load_state_dict(theirs.state_dict())
        ours, theirs = ours.to(DEVICE), theirs.to(DEVICE)
        x = torch.randn(2, 12, 40)
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
            expected = theirs(x)
            out = ours(x)
        assert out.dtype == expected.dtype  # bf16 (stack) or promoted to x's fp32 by the residual add
        assert_scaled_close(out, expected.float(), torch.bfloat16, "autocast out")

    @pytest.mark.parametrize("form", ["hook", "parametrization"])
    def test_fold_weight_norm_keeps_outputs(self, form):
        for module in (
            fastgan.nn.ResidualStack(channels=8, dilation=3),
            fastgan.nn.HiFiGANResidualBlock(channels=8, dilations=(1, 3)),
        ):
            module = _apply_weight_norm(module, form).eval()
            x = torch.randn(1, 8, 25)
            with torch.no_grad():
                before = module(x)
                module.fold_weight_norm()
                after = module(x)
            keys = list(module.state_dict())
            assert not any(k.endswith(("weight_g", "weight_v", "original0", "original1")) for k in keys), keys
            assert_scaled_close(after, before, torch.float32, "folded")
            conv = module.skip_layer if isinstance(module, fastgan.nn.ResidualStack) else module.convs1[0][1]
            assert not conv._forward_pre_hooks and not torch.nn.utils.parametrize.is_parametrized(conv)

    @pytest.mark.reference
    def test_float64_runs_the_composition(self):
        layers = parallel_wavegan("layers")
        ours, theirs = fastgan.nn.ResidualStack(channels=6).double(), layers.ResidualStack(channels=6).double()
        ours.load_state_dict(theirs.state_dict())
        x = torch.randn(2, 6, 20, dtype=torch.float64)
        torch.testing.assert_close(ours(x), theirs(x))
        block, theirs = fastgan.nn.HiFiGANResidualBlock(channels=6).double(), layers.HiFiGANResidualBlock(channels=6)
        block.load_state_dict(theirs.state_dict())
        torch.testing.assert_close(block(x), theirs.double()(x))

    def test_fused_path_is_taken(self):
        stack = fastgan.nn.ResidualStack(channels=8)
        block = fastgan.nn.HiFiGANResidualBlock(channels=8, use_causal_conv=True)
        assert stack._fused_arguments() is not None and block._fused_steps() is not None

    def test_constructor_checks(self):
        with pytest.raises(ValueError, match="kernel_size must be odd"):
            fastgan.nn.ResidualStack(kernel_size=4)
        with pytest.raises(ValueError, match="kernel_size must be odd"):
            fastgan.nn.HiFiGANResidualBlock(kernel_size=4)

    def test_bad_input_shape(self):
        with pytest.raises((ValueError, RuntimeError)):
            fastgan.nn.ResidualStack(channels=8)(torch.randn(1, 7, 20))


class TestBadInput:
    def setup_method(self):
        self.x = torch.randn(2, 4, 16)
        self.params = make_params("melgan", 4, 3)

    def call(self, *args, **kwargs):
        options = {"negative_slope": 0.2, "dilation": 1, "padding": "reflect", "causal": False, **kwargs}
        return leaky_dilated_residual(*args, **options)

    def test_wrong_ndim(self):
        with pytest.raises(ValueError, match=r"x must have 3 dimensions, got shape \(4, 16\)"):
            self.call(self.x[0], *self.params)

    def test_wrong_dtype(self):
        with pytest.raises(TypeError, match="x has dtype torch.float64"):
            self.call(self.x.double(), *self.params)
        with pytest.raises(TypeError, match="weight1 has dtype torch.float16, but x has torch.float32"):
            self.call(self.x, self.params[0].half(), *self.params[1:])

    def test_channel_mismatch(self):
        with pytest.raises(ValueError, match=r"weight1 must have shape \(5, 5, k\)"):
            self.call(torch.randn(2, 5, 16), *self.params)
        with pytest.raises(ValueError, match=r"shortcut_weight must have shape \(4, 4, 1\)"):
            self.call(self.x, *self.params[:4], torch.randn(4, 4, 3), self.params[5])
        with pytest.raises(ValueError, match=r"bias1 must have shape \(4,\)"):
            self.call(self.x, self.params[0], torch.randn(3), *self.params[2:])

    def test_bias_without_weight(self):
        with pytest.raises(ValueError, match="bias2 is given without its weight"):
            self.call(self.x, self.params[0], self.params[1], None, torch.randn(4))

    def test_even_kernel_needs_causal(self):
        with pytest.raises(ValueError, match="kernel size must be odd unless causal"):
            self.call(self.x, torch.randn(4, 4, 4))
        out = self.call(self.x, torch.randn(4, 4, 4), causal=True)
        assert out.shape == self.x.shape

    def test_reflect_padding_too_large(self):
        with pytest.raises(ValueError, match="reflect padding of 16 .* must be < the signal length 16"):
            self.call(self.x, *self.params, dilation=16)

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="dilation must be a positive int"):
            self.call(self.x, *self.params, dilation=0)
        with pytest.raises(ValueError, match="padding must be one of"):
            self.call(self.x, *self.params, padding="circular")

    def test_empty_batch(self):
        x = torch.randn(0, 4, 16, requires_grad=True)
        out = self.call(x, *self.params)
        out.sum().backward()
        assert out.shape == x.shape and x.grad.shape == x.shape

    def test_backward_grad_shape(self):
        with pytest.raises(ValueError, match="grad_out must have x's shape"):
            torch.ops.fastgan.leaky_dilated_residual_backward(
                torch.randn(2, 4, 15), self.x, *self.params, 0.2, 1, "reflect", False
            )

    @pytest.mark.skipif(DEVICE.type != "cuda", reason="needs a CUDA device for a CPU/CUDA mismatch")
    def test_device_mismatch(self):
        with pytest.raises(ValueError, match="one device"):
            self.call(self.x, self.params[0].cpu(), *self.params[1:])


def test_kernels_ran_where_expected():
    """Documents which path this pass exercised (the fallback pass runs the reference)."""
    from fastgan import _backend

    assert _backend.use_triton(torch.randn(1, device=DEVICE), "leaky_dilated_residual") == KERNELS_RUN


# --- bf16 inference on CPU (the reference's own working precision) ------------------------------


@pytest.mark.reference
@pytest.mark.parametrize("native", [True, False], ids=["native-bf16", "fp32-working"])
@pytest.mark.parametrize("kind", KINDS)
def test_bf16_inference_against_float64(kind, native, monkeypatch):
    # Without autograd the CPU reference keeps bf16 (each conv rounded once, fp32 accumulation inside)
    # where the CPU has native bf16 GEMMs, else computes in fp32; both within the bf16 bound. The
    # large-reduction ResBlock1 shapes are the ones that caught a gate flip in the gradients.
    import fastgan.references._precision as precision

    monkeypatch.setattr(precision, "native_cpu_bf16", lambda: native)
    generator = torch.Generator(device=DEVICE).manual_seed(9)
    padding = "reflect" if kind == "melgan" else "zeros"
    for channels, kernel_size, dilation, causal, length in [
        (20, 7, 5, False, 150),
        (36, 11, 3, True, 77),
        (24, 3, 9, False, 40),
    ]:
        x = torch.randn(1, channels, length, generator=generator).to(torch.bfloat16)
        params = make_params(kind, channels, kernel_size, dtype=torch.bfloat16, generator=generator)
        slope, causal = SLOPES[kind], causal and kind != "melgan"
        config = (slope, dilation, padding, causal)
        assert precision.cpu_compute_dtype(x, inference=True) == (torch.bfloat16 if native else torch.float32)
        with torch.no_grad():
            out = leaky_dilated_residual(
                x, *params, negative_slope=slope, dilation=dilation, padding=padding, causal=causal
            )
            expected = composition(x.double(), *[None if p is None else p.double() for p in params], *config)
        assert out.dtype == torch.bfloat16
        assert_scaled_close(out, expected, torch.bfloat16, f"out c={channels} k={kernel_size}")


@pytest.mark.reference
def test_cpu_working_dtype():
    # fp32 for every gradient and for fp16; bf16 inference keeps bf16 only where the CPU has it natively.
    from fastgan.references._precision import cpu_compute_dtype, native_cpu_bf16

    cpu = lambda dtype: torch.empty(1, dtype=dtype, device="cpu")
    assert cpu_compute_dtype(cpu(torch.bfloat16)) == torch.float32
    assert cpu_compute_dtype(cpu(torch.float16), inference=True) == torch.float32
    assert cpu_compute_dtype(cpu(torch.float32), inference=True) == torch.float32
    assert cpu_compute_dtype(cpu(torch.float64)) == torch.float64
    native = torch.bfloat16 if native_cpu_bf16() else torch.float32
    assert cpu_compute_dtype(cpu(torch.bfloat16), inference=True) == native
