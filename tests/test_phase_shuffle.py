"""Phase shuffle: the op (Triton kernel in the interpreter pass, fallback otherwise) against
the reference, the reference against an independent per-example oracle, and every bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import fastgan
from fastgan.functional import phase_shuffle
from fastgan.references import phase_shuffle_backward_reference, phase_shuffle_reference
from tests.conftest import DEVICE
from tests.tolerances import ELEMENTWISE, assert_close

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
SLOPES = [None, 0.2]


def per_example_oracle(x: torch.Tensor, shifts: torch.Tensor, negative_slope: float | None):
    """What PyTorch ports of WaveGAN do: one reflect-pad and slice per example."""
    y = x if negative_slope is None else F.leaky_relu(x, negative_slope)
    length = x.shape[2]
    out = []
    for example, shift in zip(y, shifts.cpu().tolist(), strict=True):
        example = example.unsqueeze(0)
        if shift > 0:
            out.append(F.pad(example, (shift, 0), mode="reflect")[..., :length])
        elif shift < 0:
            out.append(F.pad(example, (0, -shift), mode="reflect")[..., -shift:])
        else:
            out.append(example)
    return torch.cat(out)


def random_shifts(batch: int, length: int, generator=None) -> torch.Tensor:
    return torch.randint(-(length - 1), length, (batch,), generator=generator)


def registered_op(x, shifts, slope):
    """The custom op itself (the functional form may run the reference directly on CPU)."""
    return torch.ops.fastgan.phase_shuffle(x, shifts, slope, True)


def run_op(x, shifts, slope, grad_out, entry=phase_shuffle):
    x = x.detach().clone().requires_grad_()
    out = entry(x, shifts, slope)
    out.backward(grad_out)
    return out, x.grad


@pytest.mark.reference
@pytest.mark.parametrize("slope", SLOPES)
@pytest.mark.parametrize("shape", [(3, 5, 17), (1, 2, 2), (2, 4, 64)])
def test_reference_matches_per_example_oracle(shape, slope):
    # F.pad's reflect mode needs |shift| < T; cover every allowed shift.
    batch, channels, length = shape
    x = torch.randn(shape)
    for shift in range(-(length - 1), length):
        shifts = torch.full((batch,), shift, dtype=torch.int64)
        shifts[0] = -shift
        torch.testing.assert_close(
            phase_shuffle_reference(x, shifts, slope), per_example_oracle(x, shifts, slope), rtol=0, atol=0
        )


@pytest.mark.reference
@pytest.mark.parametrize("slope", SLOPES)
def test_reference_gradcheck_float64(slope):
    x = torch.randn(2, 3, 9, dtype=torch.float64)
    x = x + torch.sign(x) * 0.05  # keep LeakyReLU's kink out of the finite differences
    x.requires_grad_()
    shifts = torch.tensor([3, -8])
    assert torch.autograd.gradcheck(lambda x: phase_shuffle_reference(x, shifts, slope), (x,))
    grad_out = torch.randn(2, 3, 9, dtype=torch.float64)
    (autograd,) = torch.autograd.grad(phase_shuffle_reference(x, shifts, slope), x, grad_out)
    torch.testing.assert_close(phase_shuffle_backward_reference(grad_out, x.detach(), shifts, slope), autograd)


@pytest.mark.parametrize("slope", SLOPES)
@pytest.mark.parametrize(
    "shape",
    [(2, 3, 10), (1, 1, 1), (1, 7, 15), (3, 300, 40), (2, 5, 1000), (4, 2, 2049)],
    ids=lambda s: "x".join(map(str, s)),
)
def test_fp32_bit_exact(shape, slope):
    x = torch.randn(shape)
    shifts = random_shifts(shape[0], shape[2])
    grad_out = torch.randn(shape)
    for entry in (phase_shuffle, registered_op):
        out, grad = run_op(x, shifts, slope, grad_out, entry)
        assert_close(out, phase_shuffle_reference(x, shifts, slope), ELEMENTWISE)
        assert_close(grad, phase_shuffle_backward_reference(grad_out, x, shifts, slope), ELEMENTWISE)


@pytest.mark.parametrize("slope", SLOPES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_against_fp32_reference(dtype, slope):
    shape = (3, 6, 37)
    x = torch.randn(shape).to(dtype)
    shifts = random_shifts(3, 37)
    grad_out = torch.randn(shape).to(dtype)
    out, grad = run_op(x, shifts, slope, grad_out)
    assert out.dtype == grad.dtype == dtype
    # The kernel computes in fp32: compare with the fp32 reference on the same (rounded) inputs.
    assert_close(out, phase_shuffle_reference(x.float(), shifts, slope), ELEMENTWISE, dtype)
    expected_grad = phase_shuffle_backward_reference(grad_out.float(), x.float(), shifts, slope)
    assert_close(grad, expected_grad, ELEMENTWISE, dtype)


@pytest.mark.parametrize("slope", SLOPES)
def test_non_contiguous_input(slope):
    base = torch.randn(3, 40, 8)  # (B, T, C) in memory, used as (B, C, T)
    x = base.transpose(1, 2)
    assert not x.is_contiguous()
    shifts = torch.tensor([2, -2, 39])
    grad_out = torch.randn(3, 16, 40)[:, ::2]  # a strided gradient too
    out, grad = run_op(x, shifts, slope, grad_out)
    assert_close(out, phase_shuffle_reference(x.contiguous(), shifts, slope), ELEMENTWISE)
    expected = phase_shuffle_backward_reference(grad_out.contiguous(), x.contiguous(), shifts, slope)
    assert_close(grad, expected, ELEMENTWISE)


@pytest.mark.parametrize("slope", SLOPES)
def test_non_contiguous_shifts_and_expanded_gradient(slope):
    # The kernels index shifts by example: a strided shifts view (a column of a matrix) must reach them
    # contiguous; grad_out expanded (stride 0 over batch and time, as autograd hands out for out.sum()).
    x = torch.randn(3, 8, 40)
    shifts = torch.tensor([[2, 30], [-7, -30], [39, 30]])[:, 0]
    assert not shifts.is_contiguous()
    grad_out = torch.randn(1, 8, 1).expand(3, 8, 40)
    for entry in (phase_shuffle, registered_op):
        out, grad = run_op(x, shifts, slope, grad_out, entry)
        assert_close(out, phase_shuffle_reference(x, shifts.contiguous(), slope), ELEMENTWISE)
        expected = phase_shuffle_backward_reference(grad_out.contiguous(), x, shifts.contiguous(), slope)
        assert_close(grad, expected, ELEMENTWISE)


@given(
    batch=st.integers(1, 3),
    channels=st.integers(1, 37),
    length=st.integers(1, 300),
    slope=st.sampled_from(SLOPES),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_fuzz_shapes(batch, channels, length, slope, dtype, seed):
    generator = torch.Generator(device=DEVICE).manual_seed(seed)
    x = torch.randn(batch, channels, length, generator=generator).to(dtype)
    shifts = random_shifts(batch, length, generator)
    grad_out = torch.randn(batch, channels, length, generator=generator).to(dtype)
    out, grad = run_op(x, shifts, slope, grad_out)
    assert_close(out, phase_shuffle_reference(x.float(), shifts, slope), ELEMENTWISE, dtype)
    expected_grad = phase_shuffle_backward_reference(grad_out.float(), x.float(), shifts, slope)
    assert_close(grad, expected_grad, ELEMENTWISE, dtype)


@pytest.mark.parametrize("slope", SLOPES)
def test_opcheck(slope):
    x = torch.randn(2, 3, 11, requires_grad=True)
    shifts = torch.tensor([4, -10])
    torch.library.opcheck(torch.ops.fastgan.phase_shuffle.default, (x, shifts, slope, True))
    grad_out = torch.randn(2, 3, 11)
    torch.library.opcheck(torch.ops.fastgan.phase_shuffle_backward.default, (grad_out, x.detach(), shifts, slope))


@pytest.mark.parametrize("entry", [phase_shuffle, registered_op], ids=["functional", "op"])
@pytest.mark.parametrize("slope", SLOPES)
def test_double_backward_matches_reference(slope, entry):
    """WGAN-GP differentiates the input gradient again: the op's double backward against autograd's
    double backward through the (gather-based) reference."""
    x = torch.randn(3, 4, 21)
    shifts = torch.tensor([3, -20, 0])
    weights = torch.randn(3, 4, 21)

    def penalty_gradient(shuffle):
        x_ = x.clone().requires_grad_()
        w_ = weights.clone().requires_grad_()
        (grad_x,) = torch.autograd.grad((shuffle(x_, shifts, slope) * w_).sum(), x_, create_graph=True)
        (grad_x.square().sum()).backward()
        return grad_x.detach(), w_.grad

    grad_x, grad_w = penalty_gradient(entry)
    expected_grad_x, expected_grad_w = penalty_gradient(phase_shuffle_reference)
    assert_close(grad_x, expected_grad_x, ELEMENTWISE)
    assert_close(grad_w, expected_grad_w, ELEMENTWISE)


def test_torch_compile_fullgraph_forward_and_backward():
    torch._dynamo.reset()

    def step(x, shifts):
        return (phase_shuffle(x, shifts, 0.2) * 3.0).sum()

    compiled = torch.compile(step, fullgraph=True)
    x = torch.randn(2, 4, 33)
    shifts = torch.tensor([5, -3])
    x_compiled = x.clone().requires_grad_()
    x_eager = x.clone().requires_grad_()
    compiled(x_compiled, shifts).backward()
    step(x_eager, shifts).backward()
    torch.testing.assert_close(x_compiled.grad, x_eager.grad, rtol=0, atol=0)


class TestModule:
    def test_eval_mode_is_identity_and_fuses_the_slope(self):
        module = fastgan.nn.PhaseShuffle(n=2).eval()
        x = torch.randn(2, 3, 10)
        assert torch.equal(module(x), x)
        fused = fastgan.nn.PhaseShuffle(n=2, negative_slope=0.2).eval()
        assert torch.equal(fused(x), F.leaky_relu(x, 0.2))

    def test_n_zero_is_identity(self):
        module = fastgan.nn.PhaseShuffle(n=0).train()
        x = torch.randn(2, 3, 10)
        assert torch.equal(module(x), x)

    @pytest.mark.parametrize("mode", ["per_example", "shared"])
    def test_training_draws_shifts_reproducibly(self, mode):
        module = fastgan.nn.PhaseShuffle(n=2, mode=mode).train()
        x = torch.randn(8, 3, 20)
        out = module(x, torch.Generator(device=DEVICE).manual_seed(1))
        shifts = module.draw_shifts(8, x.device, torch.Generator(device=DEVICE).manual_seed(1))
        assert shifts.abs().max() <= 2
        if mode == "shared":
            assert (shifts == shifts[0]).all()
        assert torch.equal(out, phase_shuffle_reference(x, shifts))

    def test_per_example_shifts_cover_the_range(self):
        module = fastgan.nn.PhaseShuffle(n=2)
        shifts = module.draw_shifts(4000, DEVICE, torch.Generator(device=DEVICE).manual_seed(0))
        assert set(shifts.cpu().tolist()) == {-2, -1, 0, 1, 2}

    def test_gradient_flows(self):
        module = fastgan.nn.PhaseShuffle(n=2, negative_slope=0.2).train()
        x = torch.randn(2, 3, 10, requires_grad=True)
        module(x).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="non-negative int"):
            fastgan.nn.PhaseShuffle(n=-1)
        with pytest.raises(ValueError, match="mode must be one of"):
            fastgan.nn.PhaseShuffle(mode="random")
        with pytest.raises(ValueError, match="n=4 must be < the signal length 4"):
            fastgan.nn.PhaseShuffle(n=4).train()(torch.randn(1, 1, 4))


class TestBadInput:
    def test_wrong_ndim(self):
        with pytest.raises(ValueError, match=r"x must have 3 dimensions, got shape \(2, 10\)"):
            phase_shuffle(torch.randn(2, 10), torch.zeros(2, dtype=torch.int64))

    def test_shifts_wrong_shape(self):
        with pytest.raises(ValueError, match=r"shifts must have shape \(batch,\) = \(2,\), got \(3,\)"):
            phase_shuffle(torch.randn(2, 3, 10), torch.zeros(3, dtype=torch.int64))
        with pytest.raises(ValueError, match="shifts must have 1 dimensions"):
            phase_shuffle(torch.randn(2, 3, 10), torch.zeros(2, 1, dtype=torch.int64))

    def test_shifts_wrong_dtype(self):
        with pytest.raises(TypeError, match="shifts has dtype torch.int32; supported: int64"):
            phase_shuffle(torch.randn(2, 3, 10), torch.zeros(2, dtype=torch.int32))

    def test_x_wrong_dtype(self):
        with pytest.raises(TypeError, match="x has dtype torch.float64"):
            phase_shuffle(torch.randn(2, 3, 10, dtype=torch.float64), torch.zeros(2, dtype=torch.int64))

    @pytest.mark.parametrize("shift", [10, -10, 11])
    def test_shift_too_large(self, shift):
        with pytest.raises(ValueError, match=r"\|shift\| must be < the signal length 10"):
            phase_shuffle(torch.randn(2, 3, 10), torch.tensor([0, shift]))

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for a CPU/CUDA mismatch")
    def test_device_mismatch(self):
        with pytest.raises(ValueError, match="one device"):
            phase_shuffle(torch.randn(2, 3, 10, device="cuda"), torch.zeros(2, dtype=torch.int64, device="cpu"))
