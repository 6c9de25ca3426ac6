"""One training step, eager or compiled, fp32 or bf16 autocast: what `bsrn train` runs and what
scripts/train_throughput.py times.

``compile``: ``off``; ``model`` (``torch.compile`` of the whole network, ``dynamic=False``);
``blocks`` (regional: each binary block compiled in place, one graph that every block of the
same shape reuses, compiled once for all of them; the effective binary kernels
and the float head and tail stay eager); ``on`` is ``blocks``; ``auto`` is what measurement chose
per device (docs/training.md, "Throughput on the CPU"): ``blocks`` on CUDA and with bf16 on a
CPU, else ``off``; runs of fewer than ``AUTO_COMPILE_MIN_STEPS`` steps stay eager (:func:`resolve`).

``precision``: ``fp32``; ``bf16`` (autocast: the convolutions in bfloat16, the BatchNorms, the
quantizer arithmetic and the loss in float32); ``auto``: bf16 on CUDA, and on CPUs with native
bfloat16 (AVX512-BF16 or AMX) when the blocks are compiled; else fp32.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from bsrn_cli.metrics import Y_WEIGHTS

COMPILE_MODES = ("auto", "on", "off", "model", "blocks")
PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_bf16() -> bool:
    """Native bfloat16 arithmetic on this CPU (oneDNN's own test: AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


AUTO_COMPILE_MIN_STEPS = 100  # compiling takes about a minute: shorter runs stay eager under auto


def resolve(compile_mode: str, precision: str, device: torch.device, steps_left: int | None = None) -> tuple[str, str]:
    """(compile mode: off | model | blocks, precision: fp32 | bf16) for this device, torch and run.

    CUDA: auto is compiled blocks in bf16. CPUs: compiled fp32 and eager bf16 both measured
    slower than eager fp32 on an idle machine, compiled bf16 a little faster and with a quarter of
    the memory (docs/training.md), so auto is compiled bf16 where the CPU has native bf16 and the
    run is long enough to pay for compiling, else eager fp32.
    """
    long_enough = steps_left is None or steps_left >= AUTO_COMPILE_MIN_STEPS
    if device.type == "cuda":
        wanted = True
    elif device.type == "cpu":
        wanted = cpu_has_bf16() and precision in ("auto", "bf16") and compile_mode in ("auto", "on", "blocks")
    else:
        wanted = False
    if compile_mode == "auto":
        compile_mode = "blocks" if wanted and long_enough else "off"
    if compile_mode == "on":
        compile_mode = "blocks"
    if compile_mode != "off" and not hasattr(torch, "compile"):
        compile_mode = "off"
    if compile_mode == "blocks" and not (hasattr(nn.Module, "compile") and hasattr(torch.compiler, "set_stance")):
        compile_mode = "model"  # torch < 2.6: no in-place module compile / no way to run it eagerly for validation
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" or (wanted and compile_mode != "off") else "fp32"
    return compile_mode, precision


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


# The luminance the evaluation protocol scores (bsrn_cli.metrics.rgb_to_y), for RGB in [0, 1] and
# Y in [0, 1]; its offset of 16/255 cancels in a difference.
LUMA = tuple(w / 255 for w in Y_WEIGHTS)


def l1_loss(sr: torch.Tensor, hr: torch.Tensor, y_weight: float = 0.0) -> torch.Tensor:
    """(1 - y_weight) L1 over the RGB channels + y_weight L1 of the luminance Y: with y_weight > 0
    the network spends less of its capacity on colour errors that the Y-PSNR protocol does not
    score (JPEG's subsampled chroma, for instance); 0 is the plain L1 loss."""
    loss = F.l1_loss(sr, hr)
    if not y_weight:
        return loss
    weights = sr.new_tensor(LUMA).view(1, 3, 1, 1)
    luma = F.l1_loss((sr * weights).sum(dim=1), (hr * weights).sum(dim=1))
    return (1.0 - y_weight) * loss + y_weight * luma


def loss_description(y_weight: float) -> str:
    """The loss as the weights' training metadata records it."""
    return "L1" if not y_weight else f"L1, {y_weight:g} of it on the luminance Y"


def forward_backward(net: nn.Module, lr_batch: torch.Tensor, hr_batch: torch.Tensor, precision_context,
                     optimizer: torch.optim.Optimizer, y_weight: float = 0.0) -> torch.Tensor:
    """Zero the gradients, the loss of the network's output in float32 (:func:`l1_loss`), backward."""
    optimizer.zero_grad(set_to_none=True)
    with precision_context:
        sr = net(lr_batch)
    loss = l1_loss(sr.float(), hr_batch, y_weight)
    loss.backward()
    return loss
