"""Activations, on CUDA cores, with the per-element cost of their formula.

* relu, leaky_relu, hardtanh: 1
* sigmoid: 3 (neg, exp, add) + 1 (reciprocal) = 4... counted as 4
* silu = x * sigmoid(x): 4 (neg, exp, add, div)
* gelu (erf form) 0.5*x*(1+erf(x/sqrt2)): 5 (div, erf, add, mul, mul)
* gelu (tanh form) 0.5*x*(1+tanh(c*(x+0.044715x^3))): 9
* tanh: 1, softplus log(1+exp(x)): 3, mish x*tanh(softplus(x)): 5
"""

from __future__ import annotations

from . import Cost, OpCall, register
from .elementwise import elementwise

register("aten.relu.default", "aten.relu_.default", "aten.leaky_relu.default", "aten.hardtanh.default", family="activation")(
    elementwise(1)
)
register("aten.tanh.default", "aten.tanh_.default", family="activation")(elementwise(1))
register("aten.sigmoid.default", "aten.sigmoid_.default", family="activation")(elementwise(4))
register("aten.silu.default", "aten.silu_.default", family="activation")(elementwise(4))
register("aten.softplus.default", family="activation")(elementwise(3))
register("aten.mish.default", family="activation")(elementwise(5))

GELU_ERF = 5
GELU_TANH = 9


@register("aten.gelu.default", "aten.gelu_.default", family="activation")
def gelu(call: OpCall) -> Cost:
    """5 per element for the erf form, 9 for ``approximate='tanh'``."""
    approx = call.arg(1, "approximate", "none")
    per = GELU_TANH if approx == "tanh" else GELU_ERF
    return Cost(0, per * call.out.numel, call.read_bytes(), call.written_bytes())
