"""One training step, eager or compiled, fp32 or bf16 autocast: what `bsrn train` runs and what
scripts/train_throughput.py times.

``compile``: ``off``; ``model`` (``torch.compile`` of the whole network, ``dynamic=False``);
``blocks`` (regional: each binary block compiled in place, one graph that every block of the
same shape reuses, compiled once for all of them; the effective binary kernels
and the float head and tail stay eager); ``on`` is ``blocks``; ``auto`` is what measurement chose
per device (docs/training.md, "Throughput on the CPU"): ``blocks`` on CUDA and with bf16 on a
CPU, else ``off``; runs of fewer than ``AUTO_COMPILE_MIN_STEPS`` steps stay eager.

``precision``: ``fp32``; ``bf16`` (autocast: the convolutions in bfloat16, the BatchNorms, the
quantizer arithmetic and the loss in float32); ``auto``: bf16 on CUDA and on CPUs with native
bfloat16 (AVX512-BF16 or AMX), else fp32.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn

COMPILE_MODES = ("auto", "on", "off", "model", "blocks")
PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_bf16() -> bool:
    """Native bfloat16 arithmetic on this CPU (oneDNN's own test: AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16"
    # CPUs: bf16 pays only compiled and with native bf16 (docs/training.md); compile auto follows.
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"


AUTO_COMPILE_MIN_STEPS = 100  # compiling takes about a minute: shorter runs stay eager under auto


def resolve_compile(mode: str, device: torch.device, steps_left: int | None = None, precision: str = "fp32") -> str:
    """``off``, ``model`` or ``blocks`` for this device, precision, torch and run length."""
    if mode == "auto":
        long_enough = steps_left is None or steps_left >= AUTO_COMPILE_MIN_STEPS
        # CPUs: compiled fp32 measured slower than eager on an idle machine, compiled bf16 a little
        # faster and with a third of the memory (docs/training.md).
        wanted = device.type == "cuda" or (device.type == "cpu" and precision == "bf16")
        mode = "blocks" if wanted and long_enough else "off"
    if mode == "on":
        mode = "blocks"
    if mode != "off" and not hasattr(torch, "compile"):
        return "off"
    if mode == "blocks" and not (hasattr(nn.Module, "compile") and hasattr(torch.compiler, "set_stance")):
        return "model"  # torch < 2.6: no in-place module compile / no way to run it eagerly for validation
    return mode


def autocast(device: torch.device, precision: str):
    if precision == "bf16" and device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def compile_network(net: nn.Module, model: nn.Module, mode: str, device: torch.device) -> nn.Module:
    """The callable a training step runs. ``model`` is the bare network inside ``net`` (DDP)."""
    if mode == "off":
        return net
    if device.type == "cuda":
        # pytorch/pytorch#178080: Inductor's mix-order reductions (CUDA) returned a (C,) gradient
        # for a (1, C, 1, 1) parameter beside a channel mean. The per-channel parameters are 1-D
        # now (layers.py), and this keeps such a kernel from being generated at all.
        try:
            torch._inductor.config.triton.mix_order_reduction = False
        except AttributeError:
            pass
    if mode == "model":
        return torch.compile(net, dynamic=False)
    for block in model.body:
        block.compile(dynamic=False)
    return net


def uncompile(model: nn.Module) -> None:
    """Undo ``blocks`` (when compiling failed): the blocks run eagerly again."""
    for block in getattr(model, "body", []):
        if getattr(block, "_compiled_call_impl", None) is not None:
            block._compiled_call_impl = None


@contextmanager
def eager():
    """Run compiled modules eagerly inside (validation: other shapes, no gradients, eval mode)."""
    if hasattr(torch.compiler, "set_stance"):
        with torch.compiler.set_stance("force_eager"):
            yield
    else:
        yield


def forward_backward(net: nn.Module, lr_batch: torch.Tensor, hr_batch: torch.Tensor, precision_context,
                     optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """Zero the gradients, L1 loss of the network's output in float32, backward."""
    optimizer.zero_grad(set_to_none=True)
    with precision_context:
        sr = net(lr_batch)
    loss = F.l1_loss(sr.float(), hr_batch)
    loss.backward()
    return loss
