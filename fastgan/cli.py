"""The ``fastgan`` command line."""

from __future__ import annotations

import argparse
import os
import platform
import sys


def backend_problem() -> str | None:
    """Why ``$FASTGAN_BACKEND`` is unusable, on one line, or None: checked before any command does work, since
    the ops read it only when they first run (and a command's own error handling would then blame something else).
    """
    from fastgan import _backend
    from fastgan._checks import one_line

    try:
        _backend.get_backend()
    except ValueError as error:
        return f"FASTGAN_BACKEND={os.environ.get('FASTGAN_BACKEND', '')!r}: {one_line(error)}"
    return None


def _info(args: argparse.Namespace) -> int:
    import torch

    import fastgan
    from fastgan import _backend
    from fastgan.ops import OPS

    triton_version = "not installed"
    if _backend.triton_available():
        import triton

        triton_version = triton.__version__
    print(f"fastgan {fastgan.__version__}")
    print(f"python  {platform.python_version()}  torch {torch.__version__}  triton {triton_version}")
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        print(f"device  cuda: {props.name} ({props.total_memory / 2**30:.0f} GiB, sm_{props.major}{props.minor})")
    else:
        print(f"device  cpu: {platform.processor() or platform.machine()}, no CUDA device")
    native = _backend.native_bf16(torch.device("cpu"))
    cpu_bf16 = "native: bf16 inference stays bf16" if native else "not native: computed in fp32"
    print(f"cpu     {torch.get_num_threads()} threads, bf16 {cpu_bf16}")
    print(f"backend {_backend.get_backend()}  (FASTGAN_BACKEND / fastgan.set_backend)")
    print(f"TRITON_INTERPRET={'1' if _backend.interpreter_enabled() else '0'}")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    width = max(len(name) for name in OPS)
    print("ops (torch.ops.fastgan):")
    for name in OPS:
        paths = "  ".join(f"{d.type}: {_backend.path_for(d)}" for d in devices)
        print(f"  {name:<{width}}  {paths}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastgan", description="GAN vocoders with fused Triton kernels.")
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="versions, device, and the path each op takes")
    info.set_defaults(run=_info)
    from fastgan.vocode import add_parser as add_vocode_command  # `vocode`

    add_vocode_command(commands)
    from fastgan.train import add_commands as add_training_commands  # `train` and `preprocess`

    add_training_commands(commands)
    args = parser.parse_args(argv)
    problem = backend_problem()
    if problem is not None:
        print(f"fastgan {args.command}: error: {problem}", file=sys.stderr)
        return 2
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
