"""The cost vector every stage of fxmeter passes along: exact integers, one per metric."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fxmeter.base.records import Count, Derived, Record, key

#: The four measured metrics, in the order formulas store them (``flops`` is their tensor + CUDA sum).
FIELDS = ("tensor_core_flops", "cuda_core_flops", "bytes_read", "bytes_written")
#: Every metric name a report shows for a cost (FIELDS plus ``flops``).
NAMES = ("tensor_core_flops", "cuda_core_flops", "flops", "bytes_read", "bytes_written")


@dataclass(frozen=True)
class Metrics(Record):
    """Tensor-core FLOPs, CUDA-core FLOPs, bytes read and bytes written (exact ints of any size).

    As JSON (report.json's ``$defs/metrics``) every key is required, ``flops`` (their sum) included."""

    json_def = "metrics"
    json_coerce = True
    json_derived = (Derived("flops", Count, after="cuda_core_flops"),)

    tensor_core_flops: Count = field(default=0, metadata=key(required=True))
    cuda_core_flops: Count = field(default=0, metadata=key(required=True))
    bytes_read: Count = field(default=0, metadata=key(required=True))
    bytes_written: Count = field(default=0, metadata=key(required=True))

    @property
    def flops(self) -> int:
        return self.tensor_core_flops + self.cuda_core_flops

    @property
    def bytes(self) -> int:
        """Bytes moved: read + written."""
        return self.bytes_read + self.bytes_written

    def __add__(self, other: Metrics) -> Metrics:
        return Metrics(self.tensor_core_flops + other.tensor_core_flops, self.cuda_core_flops + other.cuda_core_flops,
                       self.bytes_read + other.bytes_read, self.bytes_written + other.bytes_written)

    def scale(self, k: int) -> Metrics:
        return Metrics(self.tensor_core_flops * k, self.cuda_core_flops * k, self.bytes_read * k, self.bytes_written * k)

    def value(self, metric: str) -> int:
        """One metric by name; ``flops`` and ``bytes`` (read + written) are derived."""
        if metric == "flops":
            return self.flops
        if metric == "bytes":
            return self.bytes
        return int(getattr(self, metric))

    @classmethod
    def of(cls, values: list[int] | tuple[int, ...]) -> Metrics:
        return cls(*values[:4])


ZERO = Metrics()


def total(items: Any) -> Metrics:
    """Sum of an iterable of Metrics."""
    acc = ZERO
    for m in items:
        acc = acc + m
    return acc
