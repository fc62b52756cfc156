"""WaveNet gated residual block: the op (Triton kernels in the interpreter pass, the reference
otherwise) against a float64 composition of torch ops and against parallel_wavegan's
WaveNetResidualBlock (state_dict loaded across), forward and backward; the module; bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import fastgan
from fastgan.functional import wavenet_block
from fastgan.references.wavenet_block import (
    _backward_batched,
    wavenet_block_backward_reference,
    wavenet_block_reference,
)
from tests.conftest import DEVICE, INTERPRETER, KERNELS_RUN
from tests.oracle import parallel_wavegan
from tests.tolerances import WAVENET_BLOCK

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
NAMES = ("x", "c", "w_conv", "b_conv", "w_aux", "w_out", "b_out", "w_skip", "b_skip")


def assert_scaled_close(actual, expected, dtype, what=""):
    """|actual - expected| <= atol * max|expected| + rtol * |expected| (WAVENET_BLOCK's table)."""
    atol, rtol = WAVENET_BLOCK[dtype]
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert not torch.isnan(actual).any(), f"{what}: holds NaN (an unwritten element?)"
    expected = expected.double()
    scale = expected.abs().max().item() or 1.0
    torch.testing.assert_close(actual.double(), expected, atol=atol * scale, rtol=rtol, msg=lambda m: f"{what}: {m}")


def make_params(residual, gate, skip, aux, kernel_size, bias=True, dtype=torch.float32, generator=None):
    def rand(*shape, scale):
        return (torch.randn(*shape, generator=generator) * scale).to(dtype)

    half = gate // 2
    return {
        "w_conv": rand(gate, residual, kernel_size, scale=1.0 / math.sqrt(residual * kernel_size)),
        "b_conv": rand(gate, scale=0.3) if bias else None,
        "w_aux": rand(gate, aux, scale=1.0 / math.sqrt(aux)) if aux else None,
        "w_out": rand(residual, half, scale=1.0 / math.sqrt(half)),
        "b_out": rand(residual, scale=0.3) if bias else None,
        "w_skip": rand(skip, half, scale=1.0 / math.sqrt(half)),
        "b_skip": rand(skip, scale=0.3) if bias else None,
    }


def composition(x, c, p, dilation, causal, skip_sum=None):
    """The block as a plain composition of torch ops (parallel_wavegan's order)."""
    kernel_size = p["w_conv"].shape[2]
    if causal:
        z = F.conv1d(x, p["w_conv"], p["b_conv"], padding=(kernel_size - 1) * dilation, dilation=dilation)
        z = z[:, :, : x.shape[2]]
    else:
        z = F.conv1d(x, p["w_conv"], p["b_conv"], padding=(kernel_size - 1) // 2 * dilation, dilation=dilation)
    if c is not None:
        z = z + F.conv1d(c, p["w_aux"].unsqueeze(2))
    a, b = z.split(z.shape[1] // 2, dim=1)
    g = torch.tanh(a) * torch.sigmoid(b)
    skip = F.conv1d(g, p["w_skip"].unsqueeze(2), p["b_skip"])
    if skip_sum is not None:
        skip = skip + skip_sum
    return (F.conv1d(g, p["w_out"].unsqueeze(2), p["b_out"]) + x) * math.sqrt(0.5), skip


def leaves(x, c, p, skip_sum=None):
    """Fresh leaves with the tensors' own layouts (clone would make a non-dense view, e.g. ``b[::2]``, contiguous)."""
    tensors = {"x": x, "c": c, **p, "skip_sum": skip_sum}
    return {k: (None if v is None else v.detach().requires_grad_()) for k, v in tensors.items()}


def strided(tensor):
    """The same values as a non-contiguous view: every other element of a buffer whose other elements are 100,
    so a kernel that ignores the strides reads its neighbours' values or 100s."""
    return torch.stack((tensor, torch.full_like(tensor, 100.0)), dim=-1)[..., 0]


def run_op(x, c, p, dilation, causal, grad_x, grad_skip, skip_sum=None):
    t = leaves(x, c, p, skip_sum)
    out, skip = wavenet_block(
        t["x"], t["c"], t["w_conv"], t["b_conv"], t["w_aux"], t["w_out"], t["b_out"], t["w_skip"], t["b_skip"],
        dilation=dilation, causal=causal, skip_sum=t["skip_sum"],
    )  # fmt: skip
    torch.autograd.backward((out, skip), (grad_x, grad_skip))
    return out, skip, {k: v.grad for k, v in t.items() if v is not None}


def run_truth(x, c, p, dilation, causal, grad_x, grad_skip, skip_sum=None):
    """float64 composition on the same (rounded) values."""
    double = lambda v: None if v is None else v.double()
    t = leaves(double(x), double(c), {k: double(v) for k, v in p.items()}, double(skip_sum))
    params = {k: t[k] for k in p}
    out, skip = composition(t["x"], t["c"], params, dilation, causal, t["skip_sum"])
    torch.autograd.backward((out, skip), (grad_x.double(), grad_skip.double()))
    return out, skip, {k: v.grad for k, v in t.items() if v is not None}


def check_case(batch, residual, gate, skip, aux, kernel_size, dilation, causal, length, dtype=torch.float32,
               bias=True, seed=0, with_skip_sum=False):  # fmt: skip
    generator = torch.Generator(device=DEVICE).manual_seed(seed)
    p = make_params(residual, gate, skip, aux, kernel_size, bias, dtype, generator)
    x = torch.randn(batch, residual, length, generator=generator).to(dtype)
    c = torch.randn(batch, aux, length, generator=generator).to(dtype) if aux else None
    grad_x = torch.randn(batch, residual, length, generator=generator).to(dtype)
    grad_skip = torch.randn(batch, skip, length, generator=generator).to(dtype)
    skip_sum = torch.randn(batch, skip, length, generator=generator).to(dtype) if with_skip_sum else None
    out, s, grads = run_op(x, c, p, dilation, causal, grad_x, grad_skip, skip_sum)
    t_out, t_s, t_grads = run_truth(x, c, p, dilation, causal, grad_x, grad_skip, skip_sum)
    assert out.dtype == s.dtype == dtype
    assert_scaled_close(out, t_out, dtype, "x_out")
    assert_scaled_close(s, t_s, dtype, "skip")
    assert grads.keys() == t_grads.keys()
    for name, grad in grads.items():
        assert grad.dtype == dtype, name
        assert_scaled_close(grad, t_grads[name], dtype, f"grad {name}")


# (batch, residual, gate, skip, aux, kernel_size, dilation, causal, length): channel counts
# off multiples of 16, every kernel size, dilations up to 27, causal and not, odd lengths.
CASES = [
    (2, 8, 16, 8, 5, 3, 1, False, 37),
    (1, 24, 46, 20, 0, 3, 2, True, 45),
    (2, 13, 30, 11, 7, 5, 4, False, 33),
    (1, 20, 36, 17, 9, 7, 9, True, 71),
    (1, 16, 32, 16, 0, 11, 3, False, 50),
    (1, 10, 18, 6, 3, 3, 27, False, 61),
    (1, 9, 22, 12, 4, 5, 27, True, 40),
    (1, 64, 128, 64, 80, 3, 8, False, 35),  # PWG's sizes
    # Over 64 channels: the kernels' 128-channel block (a shorter time tile), padded rows masked.
    (1, 72, 144, 80, 20, 3, 2, False, 37),
    (2, 72, 144, 80, 0, 5, 3, True, 23),
    (1, 20, 36, 100, 7, 3, 5, True, 29),  # only the skip channels over 64
    (1, 40, 256, 24, 9, 3, 4, True, 21),  # H = 128 exactly, the block's edge
    (1, 12, 24, 136, 5, 3, 2, False, 19),  # skip channels over 128: streamed, not held on chip
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "b{}r{}g{}s{}a{}k{}d{}{}t{}".format(*c[:7], "c" * c[7], c[8]))
def test_fp32_against_float64_composition(case):
    check_case(*case)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("causal", [False, True])
def test_half_precision(dtype, causal):
    check_case(2, 12, 24, 10, 6, 3, 2, causal, 41, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_over_64_channels(dtype):
    """The 128-channel block's half-precision time tile (32, vs fp32's 16)."""
    check_case(1, 72, 144, 80, 20, 3, 2, dtype == torch.bfloat16, 45, dtype=dtype, with_skip_sum=True)


def test_no_bias_and_skip_sum():
    check_case(1, 8, 16, 8, 5, 3, 4, False, 29, bias=False, with_skip_sum=True)
    check_case(2, 8, 16, 8, 0, 5, 1, True, 23, with_skip_sum=True)
    check_case(1, 72, 144, 80, 20, 3, 2, True, 33, with_skip_sum=True)
    check_case(1, 72, 144, 80, 0, 3, 3, False, 27, bias=False, with_skip_sum=True)


def test_length_one_and_shorter_than_dilation():
    check_case(1, 8, 16, 8, 5, 3, 1, False, 1)
    check_case(1, 8, 16, 8, 5, 3, 9, True, 5)


def test_non_contiguous_inputs():
    p = make_params(12, 24, 10, 6, 3)
    x = torch.randn(2, 41, 12).transpose(1, 2)  # (B, T, C) in memory
    c = torch.randn(2, 6, 82)[:, :, ::2]
    grad_x = torch.randn(2, 41, 12).transpose(1, 2)
    grad_skip = torch.randn(2, 20, 41)[:, ::2]
    p["w_conv"] = p["w_conv"].permute(2, 0, 1).contiguous().permute(1, 2, 0)
    assert not (x.is_contiguous() or c.is_contiguous() or p["w_conv"].is_contiguous())
    out, s, grads = run_op(x, c, p, 3, False, grad_x, grad_skip)
    t_out, t_s, t_grads = run_truth(x, c, p, 3, False, grad_x, grad_skip)
    assert_scaled_close(out, t_out, torch.float32, "x_out")
    assert_scaled_close(s, t_s, torch.float32, "skip")
    for name, grad in grads.items():
        assert_scaled_close(grad, t_grads[name], torch.float32, f"grad {name}")


@pytest.mark.parametrize("causal", [False, True])
def test_non_contiguous_biases_weights_skip_sum_and_expanded_gradient(causal):
    # Every bias and weight, c and skip_sum strided views, grad_x an expanded one (stride 0 over batch and time,
    # as autograd hands out for out.sum()) and grad_skip strided: each must be read by its strides or made
    # contiguous before a kernel indexes it.
    generator = torch.Generator(device=DEVICE).manual_seed(7)
    p = {k: strided(v) for k, v in make_params(12, 24, 10, 6, 3, generator=generator).items()}
    x = torch.randn(2, 12, 41, generator=generator)
    c = strided(torch.randn(2, 6, 41, generator=generator))
    skip_sum = strided(torch.randn(2, 10, 41, generator=generator))
    grad_x = torch.randn(1, 12, 1, generator=generator).expand(2, 12, 41)
    grad_skip = strided(torch.randn(2, 10, 41, generator=generator))
    assert not any(t.is_contiguous() for t in (*p.values(), c, skip_sum, grad_x, grad_skip))
    out, s, grads = run_op(x, c, p, 3, causal, grad_x, grad_skip, skip_sum)
    t_out, t_s, t_grads = run_truth(x, c, p, 3, causal, grad_x, grad_skip, skip_sum)
    assert_scaled_close(out, t_out, torch.float32, "x_out")
    assert_scaled_close(s, t_s, torch.float32, "skip")
    assert grads.keys() == t_grads.keys()
    for name, grad in grads.items():
        assert_scaled_close(grad, t_grads[name], torch.float32, f"grad {name}")


# Interpreter programs cost tens of ms each and a block launches five kernels: fewer examples there.
@settings(max_examples=min(settings().max_examples, 8) if INTERPRETER else settings().max_examples)
@given(
    batch=st.integers(1, 2),
    residual=st.integers(1, 20),
    half=st.integers(1, 20),
    skip=st.integers(1, 20),
    aux=st.integers(0, 12),
    kernel_size=st.sampled_from([1, 3, 5]),
    dilation=st.integers(1, 6),
    causal=st.booleans(),
    length=st.integers(1, 70),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_fuzz(batch, residual, half, skip, aux, kernel_size, dilation, causal, length, dtype, seed):
    check_case(batch, residual, 2 * half, skip, aux, kernel_size, dilation, causal, length, dtype, seed=seed)


@pytest.mark.reference
@pytest.mark.parametrize("causal", [False, True])
def test_reference_against_autograd_float64(causal):
    """The reference forward and its hand-written backward against autograd through the composition."""
    p = make_params(5, 8, 4, 3, 3, dtype=torch.float64)
    x, c = torch.randn(2, 5, 13, dtype=torch.float64), torch.randn(2, 3, 13, dtype=torch.float64)
    grad_x, grad_skip = torch.randn(2, 5, 13, dtype=torch.float64), torch.randn(2, 4, 13, dtype=torch.float64)
    out, skip, grads = run_truth(x, c, p, 2, causal, grad_x, grad_skip)
    ordered = [x, c, *(p[k] for k in NAMES[2:])]
    # Inference (time-chunked) and differentiable (whole-signal) forward paths.
    for inputs in (ordered, [ordered[0].requires_grad_(), *ordered[1:]]):
        got_out, got_skip = wavenet_block_reference(*inputs, None, 2, causal)
        torch.testing.assert_close(got_out, out.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got_skip, skip.detach(), rtol=1e-12, atol=1e-12)
    ordered[0] = ordered[0].detach()
    got = wavenet_block_backward_reference(grad_x, grad_skip, *ordered, 2, causal)  # CPU: per example
    for name in NAMES:
        torch.testing.assert_close(got[name], grads[name], rtol=1e-12, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")
    # the batched path (the CUDA fallback's), on the same values
    x_, c_, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip = ordered
    got = _backward_batched(grad_x, grad_skip, x_, c_, w_conv, b_conv, w_aux, w_out, w_skip, 2, causal)
    for name in NAMES:
        torch.testing.assert_close(got[name], grads[name], rtol=1e-12, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.reference
@pytest.mark.parametrize("causal", [False, True])
def test_reference_time_chunks(monkeypatch, causal):
    """CPU inference runs per time chunk: taps reaching across chunk edges and the signal's ends."""
    import fastgan.references.wavenet_block as reference

    monkeypatch.setattr(reference, "CPU_CHUNK", 16)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU_CHUNK columns per thread
    try:
        check_case(2, 8, 16, 8, 5, 5, 7, causal, 71, with_skip_sum=True)
        p = make_params(8, 16, 8, 5, 3)
        x, c = torch.randn(1, 8, 50), torch.randn(1, 5, 50)
        with torch.no_grad():
            got = wavenet_block_reference(x, c, *(p[k] for k in NAMES[2:]), None, 20, causal)
    finally:
        torch.set_num_threads(threads)
    want = composition(x.double(), c.double(), {k: v.double() for k, v in p.items()}, 20, causal)
    for a, b in zip(got, want, strict=True):
        assert_scaled_close(a, b, torch.float32)


@pytest.mark.skipif(not KERNELS_RUN, reason="the weight-gradient kernel's chunking; this pass does not run kernels")
def test_weight_gradient_chunks_span_several_tiles(monkeypatch):
    """Each weight-gradient program sums several (example, time) tiles; the last chunk has a dead one."""
    from fastgan.kernels import wavenet_block as kernels

    monkeypatch.setattr(kernels, "WG_MAX_CHUNKS", 3)  # 2 x ceil(150 / 32) = 10 tiles -> 3 chunks of 4
    check_case(2, 8, 16, 8, 5, 3, 4, False, 150)


def test_opcheck():
    p = make_params(8, 16, 8, 5, 3)
    x, c = torch.randn(2, 8, 19, requires_grad=True), torch.randn(2, 5, 19, requires_grad=True)
    weights = [p[k].requires_grad_() for k in NAMES[2:]]
    skip_sum = torch.randn(2, 8, 19, requires_grad=True)
    torch.library.opcheck(torch.ops.fastgan.wavenet_block.default, (x, c, *weights, skip_sum, 2, False))
    torch.library.opcheck(torch.ops.fastgan.wavenet_block.default, (x, None, p["w_conv"], None, None, p["w_out"], None, p["w_skip"], None, None, 3, True))  # fmt: skip
    grad_x, grad_skip = torch.randn(2, 8, 19), torch.randn(2, 8, 19)
    detached = [w.detach() for w in weights]
    torch.library.opcheck(
        torch.ops.fastgan.wavenet_block_backward.default,
        (grad_x, grad_skip, x.detach(), c.detach(), *detached, 2, False),
    )


def test_torch_compile_fullgraph_forward_and_backward():
    torch._dynamo.reset()
    block = fastgan.nn.WaveNetResidualBlock(3, 8, 16, 8, 5, dilation=2)

    def step(x, c):
        out, skip = block(x, c)
        return (out * 2.0).sum() + skip.square().sum()

    compiled = torch.compile(step, fullgraph=True)
    x, c = torch.randn(2, 8, 33), torch.randn(2, 5, 33)
    compiled(x, c).backward()
    grads = [p.grad.clone() for p in block.parameters()]
    block.zero_grad()
    step(x, c).backward()
    for got, want in zip(grads, (p.grad for p in block.parameters()), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


PWG_CONFIGS = [
    dict(kernel_size=3, residual_channels=64, gate_channels=128, skip_channels=64, aux_channels=80, dilation=4),
    dict(
        kernel_size=5,
        residual_channels=20,
        gate_channels=34,
        skip_channels=14,
        aux_channels=0,
        dilation=3,
        use_causal_conv=True,
    ),  # fmt: skip
    dict(kernel_size=11, residual_channels=10, gate_channels=18, skip_channels=9, aux_channels=7, dilation=2),
    dict(
        kernel_size=3,
        residual_channels=12,
        gate_channels=24,
        skip_channels=12,
        aux_channels=-1,
        dilation=27,
        bias=False,
    ),  # fmt: skip
    # over 64 channels (the kernels' 128-channel block), causal and not
    dict(kernel_size=3, residual_channels=72, gate_channels=144, skip_channels=80, aux_channels=20, dilation=5),
    dict(
        kernel_size=5,
        residual_channels=80,
        gate_channels=132,
        skip_channels=72,
        aux_channels=0,
        dilation=2,
        use_causal_conv=True,
    ),  # fmt: skip
]


def pwg_pair(config, weight_norm=None):
    pwg = parallel_wavegan("layers").WaveNetResidualBlock(**config)
    for module in pwg.modules():  # non-zero biases, so a bias mix-up shows
        if isinstance(module, torch.nn.Conv1d) and module.bias is not None:
            torch.nn.init.normal_(module.bias, std=0.3)
    ours = fastgan.nn.WaveNetResidualBlock(**config)
    if weight_norm is not None:
        for model in (pwg, ours):
            for module in model.modules():
                if isinstance(module, torch.nn.Conv1d):
                    weight_norm(module)
    missing = ours.load_state_dict(pwg.state_dict())
    assert not missing.missing_keys and not missing.unexpected_keys
    return pwg, ours


def compare_modules(pwg, ours, config, batch=2, length=29, atol=3e-5, with_c=True):
    aux = config.get("aux_channels", 80)
    x = torch.randn(batch, config["residual_channels"], length)
    c = torch.randn(batch, aux, length) if aux > 0 and with_c else None
    results = []
    for module in (pwg, ours):
        xi = x.clone().requires_grad_()
        ci = None if c is None else c.clone().requires_grad_()
        out, skip = module(xi, ci)
        ((out * torch.linspace(-0.5, 1, length)).sum() + skip.square().sum()).backward()
        results.append((out, skip, xi.grad, None if ci is None else ci.grad, {n: p.grad for n, p in module.named_parameters()}))  # fmt: skip
    (o1, s1, gx1, gc1, gp1), (o2, s2, gx2, gc2, gp2) = results
    for name, a, b in (("out", o2, o1), ("skip", s2, s1), ("grad x", gx2, gx1), ("grad c", gc2, gc1)):
        if b is not None:
            torch.testing.assert_close(a, b, atol=atol * b.abs().max().item(), rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")  # fmt: skip
    assert gp1.keys() == gp2.keys()
    for name, grad in gp1.items():
        if grad is None:
            assert gp2[name] is None, name
            continue
        torch.testing.assert_close(gp2[name], grad, atol=atol * grad.abs().max().item(), rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")  # fmt: skip


@pytest.mark.parametrize(
    "config", PWG_CONFIGS, ids=lambda c: f"k{c['kernel_size']}d{c['dilation']}a{c['aux_channels']}"
)
def test_module_against_parallel_wavegan(config):
    pwg, ours = pwg_pair(config)
    assert pwg.state_dict().keys() == ours.state_dict().keys()
    # batch 1 for the blocks over 64 channels: fewer interpreter programs, and a batch-1 case
    compare_modules(pwg, ours, config, batch=1 if config["residual_channels"] > 64 else 2)


def test_module_without_c_skips_the_aux_conv():
    config = PWG_CONFIGS[0] | {"residual_channels": 8, "gate_channels": 16, "skip_channels": 8, "aux_channels": 5}
    pwg, ours = pwg_pair(config)
    compare_modules(pwg, ours, config, batch=1, with_c=False)


@pytest.mark.parametrize("form", ["weight_norm", "parametrizations"])
def test_module_weight_norm_forms_and_fold(form):
    wn = torch.nn.utils.weight_norm if form == "weight_norm" else torch.nn.utils.parametrizations.weight_norm
    config = dict(kernel_size=3, residual_channels=8, gate_channels=16, skip_channels=8, aux_channels=5, dilation=2)
    pwg, ours = pwg_pair(config, weight_norm=wn)
    assert any("weight_g" in k or "original0" in k for k in ours.state_dict())
    compare_modules(pwg, ours, config)
    x, c = torch.randn(1, 8, 21), torch.randn(1, 5, 21)
    with torch.no_grad():
        before = ours(x, c)
        ours.fold_weight_norm()
        after = ours(x, c)
    assert set(ours.state_dict()) == {k for k in parallel_wavegan("layers").WaveNetResidualBlock(**config).state_dict()}
    for a, b in zip(after, before, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.reference
def test_module_under_autocast_matches_parallel_wavegan():
    """fp32 x under bf16 autocast: parallel_wavegan returns the residual in fp32 (its add promotes) and the
    skip in bf16; ours the same dtypes, and values within the bf16 bound."""
    config = dict(kernel_size=3, residual_channels=8, gate_channels=16, skip_channels=8, aux_channels=5)
    pwg, ours = pwg_pair(config)
    pwg, ours = pwg.to(DEVICE), ours.to(DEVICE)
    x, c = torch.randn(2, 8, 30, device=DEVICE), torch.randn(2, 5, 30, device=DEVICE)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        want = pwg(x, c)
        got = ours(x, c)
    assert [t.dtype for t in got] == [t.dtype for t in want] == [torch.float32, torch.bfloat16]
    for a, b in zip(got, want, strict=True):
        assert_scaled_close(a.float(), b.float(), torch.bfloat16)


def test_module_dropout_runs_the_plain_composition():
    config = dict(kernel_size=3, residual_channels=8, gate_channels=16, skip_channels=8, aux_channels=5, dropout=0.3)
    pwg, ours = pwg_pair(config)
    x, c = torch.randn(2, 8, 30), torch.randn(2, 5, 30)
    torch.manual_seed(3)
    want = pwg.train()(x, c)
    torch.manual_seed(3)
    got = ours.train()(x, c)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
    # eval: dropout is off, the fused op runs and still agrees
    compare_modules(pwg.eval(), ours.eval(), config)


def test_module_skip_sum_accumulates():
    block = fastgan.nn.WaveNetResidualBlock(3, 8, 16, 6, 5, dilation=2)
    x, c = torch.randn(2, 8, 25), torch.randn(2, 5, 25)
    skip_sum = torch.randn(2, 6, 25, requires_grad=True)
    out, total = block(x, c, skip_sum=skip_sum)
    _, skip = block(x, c)
    torch.testing.assert_close(total, skip_sum + skip)
    grad = torch.randn(2, 6, 25)
    total.backward(grad)
    torch.testing.assert_close(skip_sum.grad, grad, rtol=0, atol=0)


class TestBadInput:
    def call(self, **overrides):
        p = make_params(8, 16, 8, 5, 3)
        args = {"x": torch.randn(2, 8, 20), "c": torch.randn(2, 5, 20), **p, "skip_sum": None} | overrides
        return wavenet_block(
            args["x"], args["c"], args["w_conv"], args["b_conv"], args["w_aux"], args["w_out"], args["b_out"],
            args["w_skip"], args["b_skip"], dilation=overrides.get("dilation", 1), causal=overrides.get("causal", False),
            skip_sum=args["skip_sum"],
        )  # fmt: skip

    def test_x_wrong_ndim_and_dtype(self):
        with pytest.raises(ValueError, match=r"wavenet_block: x must have 3 dimensions, got shape \(8, 20\)"):
            self.call(x=torch.randn(8, 20))
        with pytest.raises(TypeError, match="x has dtype torch.float64"):
            self.call(x=torch.randn(2, 8, 20, dtype=torch.float64))

    def test_channel_mismatches(self):
        with pytest.raises(
            ValueError,
            match=r"w_conv must have shape \(gate_channels, 9, kernel_size\) for x's 9 channels, got \(16, 8, 3\)",
        ):
            self.call(x=torch.randn(2, 9, 20))
        with pytest.raises(ValueError, match=r"c must have shape \(batch, aux_channels, time\) = \(2, 5, 20\)"):
            self.call(c=torch.randn(2, 5, 21))
        with pytest.raises(ValueError, match=r"w_out must have shape \(8, 8\[, 1\]\)"):
            self.call(w_out=torch.randn(8, 7))
        with pytest.raises(ValueError, match=r"b_skip must have shape \(8,\)"):
            self.call(b_skip=torch.randn(9))
        with pytest.raises(ValueError, match=r"skip_sum must have shape \(2, 8, 20\)"):
            self.call(skip_sum=torch.randn(2, 8, 19))

    def test_gate_kernel_and_dilation(self):
        with pytest.raises(ValueError, match="gate_channels .* must be even"):
            self.call(w_conv=torch.randn(15, 8, 3))
        with pytest.raises(ValueError, match="non-causal block needs an odd kernel size, got 4"):
            self.call(w_conv=torch.randn(16, 8, 4))
        with pytest.raises(ValueError, match="dilation must be a positive int, got 0"):
            self.call(dilation=0)

    def test_aux_pairing_and_dtypes(self):
        with pytest.raises(ValueError, match="c .* and w_aux must be given together, got c without w_aux"):
            self.call(w_aux=None)
        with pytest.raises(ValueError, match="got w_aux without c"):
            self.call(c=None)
        with pytest.raises(TypeError, match="w_out has dtype torch.float16 but x has torch.float32"):
            self.call(w_out=torch.randn(8, 8).half())
        with pytest.raises(ValueError, match="non-zero batch and length"):
            self.call(x=torch.randn(2, 8, 0), c=torch.randn(2, 5, 0))

    def test_module_arguments(self):
        with pytest.raises(ValueError, match="odd kernel_size"):
            fastgan.nn.WaveNetResidualBlock(kernel_size=4)
        with pytest.raises(ValueError, match="gate_channels must be even"):
            fastgan.nn.WaveNetResidualBlock(gate_channels=15)
        block = fastgan.nn.WaveNetResidualBlock(3, 8, 16, 8, aux_channels=0)
        with pytest.raises(ValueError, match="aux_channels <= 0"):
            block(torch.randn(1, 8, 10), torch.randn(1, 5, 10))

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for a CPU/CUDA mismatch")
    def test_device_mismatch(self):
        with pytest.raises(ValueError, match="one device"):
            other = "cpu" if DEVICE.type == "cuda" else "cuda"
            self.call(x=torch.randn(2, 8, 20, device=other))

    @pytest.mark.skipif(
        not KERNELS_RUN, reason="the channel limit applies to the kernels, which this pass does not run"
    )
    def test_forced_triton_with_too_many_channels(self):
        fastgan._backend.set_backend("triton")
        try:
            p = make_params(8, 2 * 130, 8, 0, 3)
            with pytest.raises(
                fastgan._backend.BackendUnavailableError,
                match=r"at most 128 channels of gate_channels // 2 and of residual_channels, got gate_channels // 2=130",
            ):
                wavenet_block(torch.randn(1, 8, 10), None, p["w_conv"], None, None, p["w_out"], None, p["w_skip"], None)
            p = make_params(129, 16, 8, 0, 3)
            with pytest.raises(fastgan._backend.BackendUnavailableError, match="got residual_channels=129"):
                wavenet_block(torch.randn(1, 129, 10), None, p["w_conv"], None, None, p["w_out"], None, p["w_skip"], None)  # fmt: skip
        finally:
            fastgan._backend.set_backend(None)

    def test_wider_than_the_kernels_takes_the_reference(self):
        """Over 128 channels the default backend runs the reference (the op still answers)."""
        check_case(1, 8, 2 * 130, 6, 0, 3, 1, False, 9)

    @pytest.mark.skipif(not KERNELS_RUN, reason="the kernel module's channel blocks; this pass does not run kernels")
    def test_op_limit_matches_the_kernel_blocks(self):
        from fastgan.kernels import wavenet_block as kernels

        from fastgan.ops.wavenet_block import KERNEL_MAX_CHANNELS

        assert max(kernels.CHANNEL_BLOCKS) == KERNEL_MAX_CHANNELS
        assert kernels.channel_block(65, 3, 3) == kernels.channel_block(128, 128, 128) == 128
        assert kernels.channel_block(64, 64, 64) == kernels.channel_block(64, 64, 1000) == 64  # skip: any width
        with pytest.raises(ValueError, match="at most 128 channels of gate_channels // 2 and of residual_channels"):
            kernels.channel_block(3, 129, 3)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("chunks", ["whole", "chunked"])
def test_frame_rate_aux_equals_the_upsampled_features(monkeypatch, causal, chunks):
    """Frames plus a banded upsampler give the block on the upsampled features: at frame rate in eager CPU
    inference (chunked: chunk edges inside and between edge frames), by upsampling first everywhere else,
    gradients included."""
    import fastgan.references.wavenet_block as reference

    generator = torch.Generator(device=DEVICE).manual_seed(3)
    net = fastgan.nn.UpsampleNetwork([2, 3], use_causal_conv=causal).to(DEVICE)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    frames, hop = 9, 6
    upsampler = net.banded_upsampler(frames)
    p = make_params(8, 16, 8, 5, 3, generator=generator)
    x = torch.randn(2, 8, frames * hop, generator=generator)
    c = torch.randn(2, 5, frames, generator=generator)
    with torch.no_grad():
        c_up = net(c)
    weights = [p[k] for k in NAMES[2:]]
    threads = torch.get_num_threads()
    if chunks == "chunked":
        monkeypatch.setattr(reference, "CPU_CHUNK", 13)  # two frames a chunk
        torch.set_num_threads(1)  # CPU_CHUNK columns per thread
    try:
        with torch.no_grad():
            got = wavenet_block(x, c, *weights, dilation=2, causal=causal, aux_upsampler=upsampler)
            want = wavenet_block(x, c_up, *weights, dilation=2, causal=causal)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(got, want, strict=True):
        assert_scaled_close(a, b, torch.float32)
    # With gradients: the frames are upsampled first, and gradients reach them through the band.
    c_leaf, c_frames = c_up.clone().requires_grad_(), c.clone().requires_grad_()
    grads = [torch.randn(t.shape, generator=generator) for t in want]
    torch.autograd.backward(wavenet_block(x, c_leaf, *weights, dilation=2, causal=causal), grads)
    out = wavenet_block(x, c_frames, *weights, dilation=2, causal=causal, aux_upsampler=upsampler)
    torch.autograd.backward(out, grads)
    for a, b in zip(out, want, strict=True):
        assert_scaled_close(a.detach(), b, torch.float32)
    # The frames' gradient U^T (grad of c_up): against autograd through the network itself.
    c_net = c.clone().requires_grad_()
    (net(c_net) * c_leaf.grad).sum().backward()
    assert_scaled_close(c_frames.grad, c_net.grad, torch.float32, "grad c (frames)")


def test_frame_rate_aux_frame_count_must_match():
    upsampler = fastgan.nn.UpsampleNetwork([2, 3]).banded_upsampler(4)
    p = make_params(8, 16, 8, 5, 3)
    x = torch.randn(1, 8, 24)
    with pytest.raises(ValueError, match="c holds 3 frames for an aux_upsampler built for 4 frames"):
        wavenet_block(x, torch.randn(1, 5, 3), *(p[k] for k in NAMES[2:]), aux_upsampler=upsampler)
    with pytest.raises(ValueError, match="x has 30 samples"):
        wavenet_block(torch.randn(1, 8, 30), torch.randn(1, 5, 4), *(p[k] for k in NAMES[2:]), aux_upsampler=upsampler)


@pytest.mark.reference
@pytest.mark.parametrize("native", [True, False], ids=["native-bf16", "fp32-working"])
@pytest.mark.parametrize("frame_rate", [False, True], ids=["upsampled-aux", "frame-rate-aux"])
def test_bf16_inference_against_float64(monkeypatch, native, frame_rate):
    """CPU bf16 inference (the chunked path, with the aux at frame rate or not) against the float64
    composition: bf16 working precision where the CPU has native bf16 GEMMs, else fp32; one bf16 bound."""
    import fastgan.references._precision as precision
    import fastgan.references.wavenet_block as reference

    monkeypatch.setattr(precision, "native_cpu_bf16", lambda: native)
    monkeypatch.setattr(reference, "CPU_CHUNK", 24)  # several chunks, at frame edges with the band
    generator = torch.Generator(device=DEVICE).manual_seed(11)
    net = fastgan.nn.UpsampleNetwork([2, 3]).to(DEVICE)
    frames, hop = 11, 6
    p = make_params(64, 128, 64, 80, 3, dtype=torch.bfloat16, generator=generator)
    x = torch.randn(2, 64, frames * hop, generator=generator).to(torch.bfloat16)
    c = torch.randn(2, 80, frames, generator=generator)
    with torch.no_grad():
        c_up = net(c).to(torch.bfloat16)
        c = c.to(torch.bfloat16)
        skip_sum = torch.randn(2, 64, frames * hop, generator=generator).to(torch.bfloat16)
        weights = [p[k] for k in NAMES[2:]]
        if frame_rate:  # the band in fp32 applied to bf16 frames: compare with the same band's output
            upsampler = net.banded_upsampler(frames)
            got = wavenet_block(x, c, *weights, dilation=4, skip_sum=skip_sum, aux_upsampler=upsampler)
            c_up = upsampler.apply(c.double())
        else:
            got = wavenet_block(x, c_up, *weights, dilation=4, skip_sum=skip_sum)
        want = composition(
            x.double(), c_up.double(), {k: v.double() for k, v in p.items()}, 4, False, skip_sum.double()
        )
    for name, a, b in zip(("x_out", "skip"), got, want, strict=True):
        assert a.dtype == torch.bfloat16
        assert_scaled_close(a, b, torch.bfloat16, name)
