"""Memory of a generation: weights at the deployment precision, peak activations, the fit check.

Pure steps over typed values: weights come from the traced checkpoint bytes
(:class:`~fxmeter.estimate.evaluate.Weights`), activations from the liveness walk of one
forward (:class:`~fxmeter.estimate.evaluate.Activations`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fxmeter.estimate.evaluate import Weights
from fxmeter.estimate.headroom import headroom

GIB = 2**30
#: ``--precision`` values that store matmul/conv weights in one byte per parameter, and the dtype they report.
ONE_BYTE_DTYPES = {"fp8": "float8_e4m3fn", "int8": "int8"}


@dataclass(frozen=True)
class WeightMemory:
    """Weight bytes of one model at a precision."""

    weight_bytes: int
    weight_bytes_by_dtype: Mapping[str, int]
    parameters_by_dtype: Mapping[str, int]
    precision: str  # "as traced" or what --precision changed

    def __add__(self, other: WeightMemory) -> WeightMemory:
        return WeightMemory(self.weight_bytes + other.weight_bytes, _add(self.weight_bytes_by_dtype, other.weight_bytes_by_dtype),
                            _add(self.parameters_by_dtype, other.parameters_by_dtype), self.precision)


def _add(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return dict(sorted(out.items()))


def at_precision(w: Weights, precision: str) -> WeightMemory:
    """Weight bytes with matmul/conv weights at ``precision``.

    ``bf16`` keeps the traced dtypes; ``fp8`` stores every matmul/conv weight of the traced
    dtype in one byte per parameter (float8_e4m3fn), ``int8`` likewise (int8: torchao's int8
    dynamic quantization keeps int8 weights with a per-channel scale, not counted), and both
    leave biases, norms, embeddings and the modules diffusers keeps in fp32 as they are.
    """
    one_byte = ONE_BYTE_DTYPES.get(precision)
    if one_byte is None:
        return WeightMemory(w.weight_bytes, dict(w.weight_bytes_by_dtype), dict(w.parameters_by_dtype), "as traced")
    by_dtype = dict(w.weight_bytes_by_dtype)
    by_dtype[w.dtype] = by_dtype.get(w.dtype, 0) - w.matmul_bytes
    by_dtype[one_byte] = by_dtype.get(one_byte, 0) + w.matmul_parameters
    by_dtype = {k: v for k, v in sorted(by_dtype.items()) if v}
    return WeightMemory(sum(by_dtype.values()), by_dtype, dict(w.parameters_by_dtype),
                        f"{precision}: {w.matmul_parameters:,} matmul/conv weight parameters in 1 byte each")


@dataclass(frozen=True)
class Fit:
    """Weights + peak activations against a device's memory."""

    fits: bool
    required_bytes: int
    device_bytes: int
    statement: str

    @property
    def headroom_bytes(self) -> int:
        """Device memory left after weights + peak activations (negative: short by that much)."""
        return self.device_bytes - self.required_bytes


def fit(weight_bytes: int, activation_bytes: int, device_bytes: int, device: str) -> Fit:
    """The fit check with a one-line statement."""
    need = weight_bytes + activation_bytes
    ok = need <= device_bytes
    if ok:
        text = (f"fits on one {device}: weights {weight_bytes / GIB:.1f} GiB + peak activations "
                f"{activation_bytes / GIB:.1f} GiB = {need / GIB:.1f} GiB of {device_bytes / GIB:.0f} GiB, "
                f"{headroom(need, device_bytes).text()}")
    else:
        text = (f"does NOT fit on one {device}: weights {weight_bytes / GIB:.1f} GiB + peak activations "
                f"{activation_bytes / GIB:.1f} GiB = {need / GIB:.1f} GiB > {device_bytes / GIB:.0f} GiB "
                f"(short by {(need - device_bytes) / GIB:.1f} GiB: offload, fp8 weights, or more GPUs)")
    return Fit(ok, need, device_bytes, text)
