"""Encoder runtimes: the model's forward pass run eager, or traced and frozen by TorchScript."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

logger = logging.getLogger(__name__)

RUNTIMES = ("auto", "eager", "torchscript", "torchscript-bf16")
"""How the forward pass runs. eager: the plain transformers module (the reference). torchscript:
the same module traced and frozen once at load, which drops transformers' per-call Python work
(mask building, output hooks) that dominates a short sentence; same fp32 arithmetic. auto:
torchscript on CPU, eager on GPU. torchscript-bf16 (opt-in): traced under bf16 autocast, so on a
CPU with AMX / AVX512-BF16 the matmuls run in bf16 with fp32 accumulation, about 2x the catalog
rate; vectors stay within cosine 0.9999 of fp32, but padding then moves components by up to ~1e-3
(fp32: 1e-7), so the same text gets a slightly different vector in a different batch, which is
why auto does not pick it (bench/README.md, Encoding)."""

# A traced pass is accepted only if it reproduces the eager pass this closely (cosine of the pooled
# vectors on a padded batch and a single text); otherwise the encoder falls back to eager.
_TRACE_MIN_COSINE = 0.9995
TRACE_CHECK_TEXTS = ("warm up the encoder with a padded batch", "a", "")
"""The texts a trace is recorded on (padded together) and checked against eager with."""


def native_bf16_cpu() -> bool:
    """True when this CPU multiplies bf16 in hardware (AMX or AVX512-BF16).

    Elsewhere oneDNN emulates bf16, slower than fp32, so torchscript-bf16 warns there.
    """
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and (torch.cpu._is_amx_tile_supported()
                         or torch.cpu._is_avx512_bf16_supported()))
    except AttributeError:  # an older torch without the probes: assume no
        return False


def resolve_runtime(runtime: str, device: torch.device) -> str:
    """The concrete runtime for a setting (one of RUNTIMES) on a device."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown encoder runtime {runtime!r}; choose one of {RUNTIMES}")
    if runtime != "auto":
        return runtime
    return "torchscript" if device.type == "cpu" else "eager"


class TokenStates:
    """The model's forward pass: padded inputs (in input_names order) to token states, through
    the traced module once one is in place, else through the transformers module."""

    def __init__(self, model: torch.nn.Module, input_names: Sequence[str]) -> None:
        self.model = model
        self.input_names = list(input_names)
        self.traced: torch.jit.ScriptModule | None = None

    def __call__(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Last-layer token states (batch, tokens, dim) in float32; call under inference_mode."""
        if self.traced is not None:
            states = self.traced(*inputs)
        else:
            states = self.model(**dict(zip(self.input_names, inputs, strict=True)))
            states = states.last_hidden_state
        # Pool in fp32 even when the model ran in bf16: a bf16 mean over tokens loses digits.
        return states.float()

    def trace(self, example: Sequence[torch.Tensor], device: torch.device, bf16: bool) -> None:
        """Trace the model on example inputs and freeze it; later calls run the traced module."""
        _pretranspose_linears(self.model)
        with warnings.catch_warnings(), torch.inference_mode(), torch.autocast(
                device.type, dtype=torch.bfloat16, enabled=bf16):
            # TracerWarnings (shape-dependent branches) and TorchScript's deprecation notice
            # are expected here; the agreement check in load_traced is what makes the trace safe.
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(_LastHiddenState(self.model, self.input_names),
                                     tuple(example), check_trace=False)
            # freeze folds the weights (and, under autocast, their bf16 copies) into the
            # graph as constants, so no weight is cast or looked up on each call.
            self.traced = torch.jit.freeze(traced.eval())


def load_traced(states: TokenStates, runtime: str, device: torch.device,
                example: Sequence[torch.Tensor],
                probe: Callable[[], list[np.ndarray]]) -> str:
    """Trace states for a torchscript runtime; the runtime actually in use.

    Tracing records one path through transformers' Python (the mask building branches on
    shapes), so `probe` (unit vectors of TRACE_CHECK_TEXTS, as a padded batch and one by one) is
    run before and after: if the traced pass disagrees, or this torch cannot trace, the states
    stay eager.
    """
    if runtime.endswith("bf16") and device.type == "cpu" and not native_bf16_cpu():
        logger.warning("encoder runtime %s on a CPU without native bf16: emulated, likely "
                       "slower than torchscript", runtime)
    # The reference, taken from the untouched transformers module before anything changes.
    reference = probe()
    try:
        states.trace(example, device, bf16=runtime.endswith("bf16"))
        worst = min(float(np.min(np.sum(want * got, axis=1)))
                    for want, got in zip(reference, probe(), strict=True))
    except Exception:  # any failure to trace leaves the eager path working
        logger.warning("encoder runtime %s unavailable, using eager", runtime, exc_info=True)
        states.traced = None
        return "eager"
    if worst < _TRACE_MIN_COSINE:
        logger.warning("traced encoder (%s) disagrees with eager (cosine %.6f), using eager",
                       runtime, worst)
        states.traced = None
        return "eager"
    return runtime


class _LastHiddenState(torch.nn.Module):
    """Positional inputs in, token states out: the shape torch.jit.trace needs."""

    def __init__(self, model: torch.nn.Module, input_names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = list(input_names)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        kwargs = dict(zip(self.input_names, inputs, strict=True))
        return self.model(**kwargs).last_hidden_state


class _PretransposedLinear(torch.nn.Module):
    """nn.Linear with its weight stored transposed, (in, out) and contiguous: the same product.

    F.linear hands BLAS the (out, in) weight to read transposed; for the few rows of a short
    sentence that read is the cost, and a contiguous (in, out) weight makes each linear ~1.8x
    faster (384x1536, 8 tokens: 205 vs 111 us; 640 tokens: equal). Vectors are unchanged.
    """

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.out_features = linear.out_features
        self.weight_t = torch.nn.Parameter(linear.weight.detach().t().contiguous(),
                                           requires_grad=False)
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        if self.bias is None:
            out = rows @ self.weight_t
        else:
            out = torch.addmm(self.bias, rows, self.weight_t)
        return out.view(*x.shape[:-1], self.out_features)


def _pretranspose_linears(module: torch.nn.Module) -> None:
    """Swap every nn.Linear under module for a _PretransposedLinear, in place."""
    for name, child in module.named_children():
        if isinstance(child, torch.nn.Linear):
            setattr(module, name, _PretransposedLinear(child))
        else:
            _pretranspose_linears(child)
