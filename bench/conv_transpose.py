"""LeakyReLU -> ConvTranspose1d upsampling layers of MelGAN and HiFi-GAN V1 for 1 s of 22.05 kHz audio.

MelGAN (k = 2s) and HiFi-GAN V1 (k = 16, 16, 4, 4 for s = 8, 8, 2, 2) build the same four layers
at hop 256 (86 mel frames): 512->256 x8 k16, 256->128 x8 k16, 128->64 x2 k4, 64->32 x2 k4.
References: eager torch (``F.leaky_relu`` then ``F.conv_transpose1d`` — cuDNN on the GPU, oneDNN on
the CPU) and, in full mode, ``torch.compile`` of that pair.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.harness import Case
from fastgan.functional import conv_transpose1d

SLOPE = 0.1
FRAMES = 86  # 1 s at 22.05 kHz, hop 256
QUICK_FRAMES = 24  # the CPU demo: about 0.28 s of audio, so every call stays well under 0.5 s
# (C_in, C_out, stride, kernel) of the four upsampling layers, and the input length of each.
LAYERS = [(512, 256, 8, 16), (256, 128, 8, 16), (128, 64, 2, 4), (64, 32, 2, 4)]


def _geometry(stride: int, kernel: int) -> tuple[int, int]:
    """(padding, output_padding) as parallel_wavegan's MelGAN/HiFi-GAN compute them."""
    return stride // 2 + stride % 2, stride % 2


def eager_pair(x, weight, bias, stride, padding, output_padding):
    return F.conv_transpose1d(F.leaky_relu(x, SLOPE), weight, bias, stride, padding, output_padding)


def fused(x, weight, bias, stride, padding, output_padding):
    return conv_transpose1d(x, weight, bias, stride, padding, output_padding, SLOPE)


def _runner(fn, args, mode, grad):
    x, weight, bias = args[:3]
    if mode == "fwd":

        def forward():
            with torch.no_grad():
                return fn(*args)

        return forward

    def forward_backward():
        x.grad = weight.grad = bias.grad = None
        fn(*args).backward(grad)

    return forward_backward


def cases(quick: bool, device: torch.device) -> list[Case]:
    batches = [1] if quick else [1, 16]
    dtypes = [torch.float32] if device.type == "cpu" else [torch.bfloat16]
    impls = {"fastgan": fused, "eager": eager_pair}
    if not quick:
        impls["torch.compile"] = torch.compile(eager_pair, dynamic=False)
    result = []
    for dtype in dtypes:
        for batch in batches:
            length = QUICK_FRAMES if quick else FRAMES
            for index, (c_in, c_out, stride, kernel) in enumerate(LAYERS):
                padding, output_padding = _geometry(stride, kernel)
                x = torch.randn(batch, c_in, length, device=device, dtype=dtype)
                weight = (torch.randn(c_in, c_out, kernel, device=device) / (c_in * kernel / stride) ** 0.5).to(dtype)
                bias = torch.randn(c_out, device=device, dtype=dtype) * 0.1
                out_length = length * stride
                grad = torch.randn(batch, c_out, out_length, device=device, dtype=dtype)
                args = (x, weight, bias, stride, padding, output_padding)
                size = dtype.itemsize
                macs = batch * c_in * c_out * kernel * length
                name = f"melgan/hifigan-v1 up{index + 1} {c_in}->{c_out} x{stride} k{kernel} t{length} b{batch}"
                for mode in ("fwd", "fwd+bwd"):
                    for t in (x, weight, bias):
                        t.requires_grad_(mode != "fwd")
                    io = (x.numel() + weight.numel() + bias.numel() + batch * c_out * out_length) * size
                    # bwd: read grad_out, x and weight again, write grad_x, grad_weight, grad_bias.
                    moved = io if mode == "fwd" else 2 * io + (x.numel() + weight.numel()) * size
                    flops = 2 * macs if mode == "fwd" else 6 * macs
                    runners = {impl: _runner(fn, args, mode, grad) for impl, fn in impls.items()}
                    result.append(Case("conv_transpose", name, mode, dtype, runners, moved, flops))
                length = out_length
    return result
