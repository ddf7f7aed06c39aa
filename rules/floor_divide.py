"""``floor_divide``: elementwise integer/float division rounded down (``a // b`` on tensors; CogView4's RoPE
indexes its position table with ``arange(h) * rope_axes_dim // h``).

1 CUDA-core FLOP per output element, as ``div.Tensor_mode`` (``rounding_mode="floor"``) in ``elementwise``;
every tensor operand read, the output written.
"""

from __future__ import annotations

from . import register_rows
from .elementwise import elementwise

register_rows([("floor_divide.default", "floor_divide_.Tensor", "floor_divide.out"),
               ("floor_divide.Scalar", "floor_divide_.Scalar", "floor_divide.Scalar_out")], elementwise(1), "elementwise")
