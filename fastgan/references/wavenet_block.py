"""Reference WaveNet gated residual block (Parallel WaveGAN): the CPU path and the kernels' oracle.

One block, for x (B, R, T), aux features c (B, A, T) and gate channels G = 2H::

    z = conv_dilated(x, W_conv) + b_conv + W_aux @ c        (B, G, T)
    g = tanh(z[:, :H]) * sigmoid(z[:, H:])                  (B, H, T)
    x_out = (W_out @ g + b_out + x) * sqrt(0.5)            (B, R, T)
    skip  = W_skip @ g + b_skip  (+ skip_sum if given)      (B, S, T)

The dilated conv pads with zeros: ``(K - 1) // 2 * dilation`` on both sides, or, causal,
``(K - 1) * dilation`` on the left only (the output keeps the first T samples).

Fast by design on CPU (what runs there in production). Inference is GEMM-bound after this: PWG's
30-layer stack at 24 000 samples, batch 1, fp32 runs 1.3x (one thread, CPU time) to 1.6x (two
threads, wall time) faster than parallel_wavegan's blocks on this project's (busy) CPU, within
~15 % of the BLAS time of the block's GEMMs:
- inference runs each example by itself in time chunks of CPU_CHUNK samples per thread, so the
  (G, chunk) pre-activations, the gate and the 1x1 outputs stay in cache (~10 % on one thread);
- the dilated conv is one BLAS GEMM per tap, each accumulating in place into the output columns
  its shifted input reaches (no padded copy, no oneDNN reorders; ~25 % faster than F.conv1d
  here); the differentiable path (tests, CUDA fallback) uses F.conv1d;
- the aux 1x1 conv accumulates into that output in place (a GEMM with beta=1, no extra pass).
  Concatenating c to x as extra conv input channels would copy c every layer and, in a conv
  routine, multiply c by zero weights at every other tap;
- given an ``aux_upsampler`` (PWG's upsampler is linear and the same for every channel), c holds
  frames and the aux conv runs at frame rate, ``W_aux @ U(c) = U(W_aux @ c)``: U is then a
  K = width (4-5) GEMM per chunk writing the pre-activations the taps accumulate into. That drops
  the aux GEMM (80 of the 272 products per gate value at PWG's sizes; measured 1.29x on the 30-layer
  stack; the whole generator 1.41x parallel_wavegan's at 0.5 s and 1.65x at 2 s, one thread);
- tanh is computed as ``2 * sigmoid(2a) - 1`` (PyTorch's CPU sigmoid is several times faster than
  its tanh), with the factors of two folded into the weights (see ``_forward_chunked``);
- the skip and residual 1x1 convs are ONE GEMM with concatenated weights and biases, whose
  residual rows carry the sqrt(0.5), so ``x_out`` is that GEMM's slice plus ``sqrt(0.5) * x`` in
  one pass; the skip sum, when given, is added in one more pass.
fp16/bf16 on CPU compute in fp32 and round once, except bf16 inference on CPUs with native bf16 GEMMs
(see ``fastgan.references._precision``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fastgan.references._precision import cpu_compute_dtype
from fastgan.references.upsample import BandedUpsampler

SQRT_HALF = math.sqrt(0.5)
# CPU inference runs a block per time chunk of this many samples per thread (_forward_chunked).
CPU_CHUNK = 2048


def conv_padding(kernel_size: int, dilation: int, causal: bool) -> tuple[int, int]:
    """(left, right) zero padding of the dilated conv so its output has the input's length."""
    if causal:
        return (kernel_size - 1) * dilation, 0
    half = (kernel_size - 1) // 2 * dilation
    return half, half


def _conv_input(x: torch.Tensor, kernel_size: int, dilation: int, causal: bool) -> tuple[torch.Tensor, int]:
    """The conv's input and the symmetric padding F.conv1d should add to it."""
    left, right = conv_padding(kernel_size, dilation, causal)
    if left == right:
        return x, left
    return F.pad(x, (left, right)), 0


def _mm(weight: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """(O, I) @ (B, I, T) -> (B, O, T)."""
    return torch.matmul(weight, inputs)


def _gate_preactivation(x, c, w_conv, b_conv, w_aux, dilation, causal):
    """z = conv(x) + b_conv + W_aux @ c, a fresh contiguous (B, G, T) tensor."""
    differentiable = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, c, w_conv, b_conv, w_aux)
    )
    if x.device.type == "cpu" and x.shape[0] == 1 and not differentiable:
        z = _taps_conv(x[0], w_conv, b_conv, dilation, causal).unsqueeze(0)
    else:
        conv_in, padding = _conv_input(x, w_conv.shape[2], dilation, causal)
        z = F.conv1d(conv_in, w_conv, b_conv, padding=padding, dilation=dilation)
    if c is not None and w_aux is not None:
        if differentiable:
            z = z + _mm(w_aux, c)
        elif z.shape[0] == 1:
            z[0].addmm_(w_aux, c[0])
        else:
            z.baddbmm_(w_aux.expand(z.shape[0], -1, -1), c)
    return z


def _taps_conv(
    x: torch.Tensor,
    w_conv: torch.Tensor,
    b_conv: torch.Tensor | None,
    dilation: int,
    causal: bool,
    start: int = 0,
    stop: int | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Output columns [start, stop) of the dilated conv of one (R, T) example, as one GEMM per tap,
    each accumulating in place into the columns its shifted input reaches: no padded copy of x, and
    plain BLAS GEMMs, which beat oneDNN's dilated conv on CPU at WaveNet sizes (64-128 channels).
    Given ``out`` (G, stop - start), the conv and bias are added to it in place."""
    length = x.shape[1]
    stop = length if stop is None else stop
    kernel_size = w_conv.shape[2]
    left, _ = conv_padding(kernel_size, dilation, causal)
    centre = left // dilation  # the tap with shift 0: out[t] reads x[t]
    weight, window = w_conv[:, :, centre], x[:, start:stop]
    if out is not None:
        z = out.addmm_(weight, window)
        if b_conv is not None:
            z.add_(b_conv[:, None])
    else:
        z = torch.mm(weight, window) if b_conv is None else torch.addmm(b_conv[:, None], weight, window)
    for k in range(kernel_size):
        shift = k * dilation - left  # out[t] += W_k x[t + shift] where 0 <= t + shift < T
        lo, hi = max(start, -shift), min(stop, length - shift)
        if k != centre and lo < hi:
            z[:, lo - start : hi - start].addmm_(w_conv[:, :, k], x[:, lo + shift : hi + shift])
    return z


def _gate(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Overwrites z: returns (g, tanh(a), sigmoid(b)) where z = [a, b]; g is a new tensor."""
    half = z.shape[1] // 2
    a, b = z[:, :half], z[:, half:]
    if torch.is_grad_enabled() and z.requires_grad:  # differentiated directly (tests): no in-place ops
        ta, sb = torch.tanh(a), torch.sigmoid(b)
    else:
        ta = a.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)  # tanh(a) = 2 * sigmoid(2a) - 1
        sb = b.sigmoid_()
    return ta * sb, ta, sb


def wavenet_block_reference(
    x: torch.Tensor,
    c: torch.Tensor | None,
    w_conv: torch.Tensor,
    b_conv: torch.Tensor | None,
    w_aux: torch.Tensor | None,
    w_out: torch.Tensor,
    b_out: torch.Tensor | None,
    w_skip: torch.Tensor,
    b_skip: torch.Tensor | None,
    skip_sum: torch.Tensor | None = None,
    dilation: int = 1,
    causal: bool = False,
    aux_upsampler: BandedUpsampler | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_out, skip) of one block; ``skip`` includes ``skip_sum`` when one is given.

    Weights as in nn.Conv1d: w_conv (G, R, K); w_aux (G, A) or (G, A, 1); w_out (R, H) or
    (R, H, 1); w_skip (S, H) or (S, H, 1); biases 1-D or None. Given ``aux_upsampler`` (a linear
    upsampling U shared by every channel), ``c`` holds frames (B, A, F) and the aux term is
    ``W_aux @ U(c)``, computed on CPU inference as ``U(W_aux @ c)``: the aux GEMM at frame rate (hop
    times fewer products; it was ~25 % of Parallel WaveGAN's work) and U as a K = width GEMM per chunk.
    """
    dtype = x.dtype
    differentiable = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip)
    )
    work = cpu_compute_dtype(x, inference=not differentiable)
    cast = lambda t: None if t is None else t.to(work)
    x_w, c_w = x.to(work), cast(c)
    w_conv, b_conv, w_aux = w_conv.to(work), cast(b_conv), cast(_as_matrix(w_aux))
    w_out, w_skip = _as_matrix(w_out).to(work), _as_matrix(w_skip).to(work)
    skip_ch = w_skip.shape[0]
    weight, bias = _output_weights(w_out, b_out, w_skip, b_skip, work)
    if x.device.type == "cpu" and not differentiable:
        skip_w = None if skip_sum is None else skip_sum.to(work)
        x_out, skip = _forward_chunked(
            x_w, c_w, w_conv, b_conv, w_aux, weight, bias, skip_ch, skip_w, dilation, causal, aux_upsampler
        )
        return x_out.to(dtype), skip.to(dtype)
    if aux_upsampler is not None and c_w is not None:
        c_w = aux_upsampler.apply(c_w)

    z = _gate_preactivation(x_w, c_w, w_conv, b_conv, w_aux, dilation, causal)
    g, _, _ = _gate(z)
    del z
    if g.shape[0] == 1:
        y = (torch.mm(weight, g[0]) if bias is None else torch.addmm(bias, weight, g[0])).unsqueeze(0)
    else:
        y = _mm(weight, g) if bias is None else torch.baddbmm(bias, weight.expand(g.shape[0], -1, -1), g)
    del g
    x_out = torch.add(y[:, skip_ch:], x_w, alpha=SQRT_HALF)
    skip = y[:, :skip_ch]
    skip = skip.contiguous() if skip_sum is None else torch.add(skip, skip_sum.to(work))
    return x_out.to(dtype), skip.to(dtype)


def _output_weights(w_out, b_out, w_skip, b_skip, work):
    """Both 1x1 convs as one (S + R, H) GEMM and its (S + R, 1) bias (or None); the residual rows
    carry the sqrt(0.5). Skip rows first, so a skip view starts at offset 0 of that GEMM's output."""
    residual, skip_ch = w_out.shape[0], w_skip.shape[0]
    weight = torch.cat([w_skip, w_out * SQRT_HALF])
    if b_out is None and b_skip is None:
        return weight, None
    bias = torch.cat(
        [
            b_skip.to(work) if b_skip is not None else w_skip.new_zeros(skip_ch),
            b_out.to(work) * SQRT_HALF if b_out is not None else w_out.new_zeros(residual),
        ]
    )
    return weight, bias[:, None]


def _forward_chunked(x, c, w_conv, b_conv, w_aux, weight, bias, skip_ch, skip_sum, dilation, causal, upsampler=None):
    """CPU inference: the whole block per example and time chunk of CPU_CHUNK samples, so that the
    (G, chunk) pre-activations, the gate and the 1x1 outputs stay in cache (the CPU analogue of the
    fused kernel's time tile); only x_out and skip reach memory. ~10 % faster than whole-signal
    passes at 24 000 samples. With ``upsampler``, c holds frames and chunks are whole frames."""
    batch, _, length = x.shape
    residual = weight.shape[0] - skip_ch
    half = w_conv.shape[0] // 2
    x_out = torch.empty((batch, residual, length), dtype=x.dtype, device=x.device)
    skip = torch.empty((batch, skip_ch, length), dtype=x.dtype, device=x.device)
    # About CPU_CHUNK columns per thread: each GEMM splits its columns over the threads. With two
    # threads, PWG at 12 000 samples ran as fast or faster in 3 900-sample chunks than in whole-signal
    # passes (1.0-1.4x across interleaved runs on this 2-core CPU; the whole-signal time varied more).
    # Every op is a parallel region ending in a barrier, so on cores busy with other work small chunks
    # cost more (a descheduled thread stalls each).
    chunk = CPU_CHUNK * torch.get_num_threads()
    hop = 1 if upsampler is None or c is None else upsampler.hop
    chunk = max(1, chunk // hop) * hop
    # tanh(a) = 2 sigmoid(2a) - 1 (PyTorch's CPU sigmoid is several times faster than its tanh), so
    # g = tanh(a) sigmoid(b) = 2 (sigmoid(2a) - 1/2) sigmoid(b): the 2s go into the weights once (exact
    # scalings by powers of two) and the gate takes four passes over the chunk instead of six.
    doubled = torch.ones(2 * half, dtype=x.dtype, device=x.device)
    doubled[:half] = 2.0
    w_conv = w_conv * doubled[:, None, None]
    b_conv = None if b_conv is None else b_conv * doubled
    w_aux = None if w_aux is None else w_aux * doubled[:, None]
    weight = weight * 2.0
    for b in range(batch):
        projected = None if upsampler is None or c is None else torch.mm(w_aux, c[b])  # (G, F)
        for start in range(0, length, chunk):
            stop = min(length, start + chunk)
            if projected is not None:
                aux = upsampler.apply_rows(projected, start // hop, stop // hop, row_bias=b_conv)
                z = _taps_conv(x[b], w_conv, None, dilation, causal, start, stop, out=aux)
            else:
                z = _taps_conv(x[b], w_conv, b_conv, dilation, causal, start, stop)
                if c is not None:
                    z.addmm_(w_aux, c[b, :, start:stop])
            g = z[:half].sigmoid_().sub_(0.5).mul_(z[half:].sigmoid_())  # g / 2
            y = torch.mm(weight, g) if bias is None else torch.addmm(bias, weight, g)
            torch.add(y[skip_ch:], x[b, :, start:stop], alpha=SQRT_HALF, out=x_out[b, :, start:stop])
            if skip_sum is None:
                skip[b, :, start:stop] = y[:skip_ch]
            else:
                torch.add(y[:skip_ch], skip_sum[b, :, start:stop], out=skip[b, :, start:stop])
    return x_out, skip


def _as_matrix(weight: torch.Tensor | None) -> torch.Tensor | None:
    if weight is None or weight.dim() == 2:
        return weight
    return weight.squeeze(2)


def wavenet_block_backward_reference(
    grad_x_out: torch.Tensor,
    grad_skip: torch.Tensor,
    x: torch.Tensor,
    c: torch.Tensor | None,
    w_conv: torch.Tensor,
    b_conv: torch.Tensor | None,
    w_aux: torch.Tensor | None,
    w_out: torch.Tensor,
    b_out: torch.Tensor | None,
    w_skip: torch.Tensor,
    b_skip: torch.Tensor | None,
    dilation: int = 1,
    causal: bool = False,
) -> dict[str, torch.Tensor | None]:
    """Gradients of :func:`wavenet_block_reference`, recomputing the gate from x and c.

    Returns a dict with keys x, c, w_conv, b_conv, w_aux, w_out, b_out, w_skip, b_skip (None where
    the input is None); the skip sum's gradient is ``grad_skip`` itself. Weight gradients have
    the weights' shapes (w_aux/w_out/w_skip as given, 2-D or 3-D).
    """
    dtype = x.dtype
    work = cpu_compute_dtype(x)
    cast = lambda t: None if t is None else t.to(work)
    shapes = {"w_aux": None if w_aux is None else w_aux.shape, "w_out": w_out.shape, "w_skip": w_skip.shape}
    x_w, c_w = x.to(work), cast(c)
    w_conv_w, w_aux_m = w_conv.to(work), cast(_as_matrix(w_aux))
    w_out_m, w_skip_m = _as_matrix(w_out).to(work), _as_matrix(w_skip).to(work)
    args = (grad_x_out.to(work), grad_skip.to(work), x_w, c_w, w_conv_w, cast(b_conv), w_aux_m, w_out_m, w_skip_m)
    if x.device.type == "cpu":
        grads = _backward_per_example(*args, dilation, causal)
    else:
        grads = _backward_batched(*args, dilation, causal)
    grads["b_conv"] = None if b_conv is None else grads["b_conv"]
    grads["b_out"] = None if b_out is None else grads["b_out"]
    grads["b_skip"] = None if b_skip is None else grads["b_skip"]
    out = {}
    for name, grad in grads.items():
        if grad is None:
            out[name] = None
            continue
        if name in shapes and shapes[name] is not None:
            grad = grad.reshape(shapes[name])
        out[name] = grad.to(dtype).contiguous()
    return out


def _backward_per_example(grad_x_out, grad_skip, x, c, w_conv, b_conv, w_aux, w_out, w_skip, dilation, causal):
    """CPU: every product a 2-D BLAS GEMM per example (the dilated conv's input and weight
    gradients one GEMM per tap over the columns each tap reaches, as the forward does), the gate's
    derivative computed in place in the recomputed pre-activations; weight gradients summed over
    examples. ~20 % faster than convolution_backward plus batched matmuls at PWG sizes."""
    batch, residual, length = x.shape
    gate, _, kernel_size = w_conv.shape
    half = gate // 2
    left, _ = conv_padding(kernel_size, dilation, causal)
    taps = w_conv.permute(2, 0, 1)  # (K, G, R)
    grad_taps = torch.zeros((kernel_size, gate, residual), dtype=x.dtype, device=x.device)
    grad_b_conv = torch.zeros(gate, dtype=x.dtype, device=x.device)
    grad_w_out = torch.zeros_like(w_out)
    grad_w_skip = torch.zeros_like(w_skip)
    grad_w_aux = None if c is None else torch.zeros_like(w_aux)
    grad_x = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    grad_c = None if c is None else torch.empty(c.shape, dtype=c.dtype, device=c.device)
    for b in range(batch):
        z = _taps_conv(x[b], w_conv, b_conv, dilation, causal)
        if c is not None:
            z.addmm_(w_aux, c[b])
        ta = z[:half].mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)  # tanh(a) = 2 * sigmoid(2a) - 1
        sb = z[half:].sigmoid_()
        g = ta * sb
        go = grad_x_out[b] * SQRT_HALF  # the gradient at W_out @ g + b_out
        gs = grad_skip[b]
        grad_w_out.addmm_(go, g.t())
        grad_w_skip.addmm_(gs, g.t())
        grad_g = torch.mm(w_skip.t(), gs).addmm_(w_out.t(), go)
        del g
        # dz, in place over (ta, sb): d tanh(a) = 1 - tanh^2, d sigmoid(b) = sigmoid (1 - sigmoid).
        grad_g.mul_(sb)  # grad_g * sigmoid(b)
        sb.neg_().add_(1.0).mul_(ta).mul_(grad_g)  # * tanh(a) (1 - sigmoid(b))
        ta.mul_(ta).neg_().add_(1.0).mul_(grad_g)  # * (1 - tanh(a)^2)
        del grad_g
        dz = z
        grad_b_conv += dz.sum(1)
        grad_x[b] = go  # the residual path: d x_out / d x = sqrt(0.5)
        for k in range(kernel_size):
            shift = k * dilation - left  # forward: out[t] += W_k x[t + shift]
            lo, hi = max(0, -shift), min(length, length - shift)
            if lo >= hi:
                continue
            grad_x[b, :, lo + shift : hi + shift].addmm_(taps[k].t(), dz[:, lo:hi])
            grad_taps[k].addmm_(dz[:, lo:hi], x[b, :, lo + shift : hi + shift].t())
        if c is not None:
            torch.mm(w_aux.t(), dz, out=grad_c[b])
            grad_w_aux.addmm_(dz, c[b].t())
    return {
        "x": grad_x,
        "c": grad_c,
        "w_conv": grad_taps.permute(1, 2, 0),
        "b_conv": grad_b_conv,
        "w_aux": grad_w_aux,
        "w_out": grad_w_out,
        "b_out": grad_x_out.sum((0, 2)) * SQRT_HALF,
        "w_skip": grad_w_skip,
        "b_skip": grad_skip.sum((0, 2)),
    }


def _backward_batched(grad_x_out, grad_skip, x_w, c_w, w_conv_w, b_conv, w_aux_m, w_out_m, w_skip_m, dilation, causal):
    """Batched tensors: F.conv1d recompute, convolution_backward and batched matmuls (CUDA fallback)."""
    go = grad_x_out * SQRT_HALF  # the gradient at W_out @ g + b_out
    gs = grad_skip
    c = c_w

    z = _gate_preactivation(x_w, c_w, w_conv_w, b_conv, w_aux_m, dilation, causal)
    g, ta, sb = _gate(z)
    grad_g = _mm(w_out_m.t(), go)
    grad_g += _mm(w_skip_m.t(), gs)
    # d tanh(a) = 1 - tanh^2, d sigmoid(b) = sigmoid (1 - sigmoid); z is overwritten with dz.
    grad_a = grad_g * sb
    grad_a *= 1.0 - ta * ta
    grad_b = grad_g.mul_(ta)
    grad_b *= sb * (1.0 - sb)
    dz = z  # ta and sb live in z: overwrite it only now
    half = z.shape[1] // 2
    dz[:, :half].copy_(grad_a)
    dz[:, half:].copy_(grad_b)
    del grad_a, grad_b, grad_g, ta, sb

    kernel_size = w_conv_w.shape[2]
    conv_in, padding = _conv_input(x_w, kernel_size, dilation, causal)
    grad_in, grad_w_conv, grad_b_conv = torch.ops.aten.convolution_backward(
        dz, conv_in, w_conv_w, [w_conv_w.shape[0]] if b_conv is not None else None,
        [1], [padding], [dilation], False, [0], 1, [True, True, b_conv is not None],
    )  # fmt: skip
    if conv_in is not x_w:
        left, _ = conv_padding(kernel_size, dilation, causal)
        grad_in = grad_in[:, :, left : left + x_w.shape[2]]
    grad_x = grad_in.add_(go)  # the residual path: d x_out / d x = sqrt(0.5)

    def outer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # sum_b a_b @ b_b^T
        if a.shape[0] == 1:
            return a[0] @ b[0].t()
        return torch.bmm(a, b.transpose(1, 2)).sum(0)

    return {
        "x": grad_x,
        "c": None if c is None else _mm(w_aux_m.t(), dz),
        "w_conv": grad_w_conv,
        "b_conv": grad_b_conv,
        "w_aux": None if c is None else outer(dz, c_w),
        "w_out": outer(go, g),
        "b_out": go.sum((0, 2)),
        "w_skip": outer(gs, g),
        "b_skip": gs.sum((0, 2)),
    }
