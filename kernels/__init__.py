"""Triton kernels, one module per hot path: forward and backward kernels and their launchers.

Importing this package needs triton; fastgan's ops import it lazily, only when a kernel runs.
"""
