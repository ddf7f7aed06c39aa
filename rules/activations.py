"""Activations, on CUDA cores, with the per-element cost of their formula.

* relu, leaky_relu, hardtanh: 1
* sigmoid: 3 (neg, exp, add) + 1 (reciprocal) = 4... counted as 4
* silu = x * sigmoid(x): 4 (neg, exp, add, div)
* gelu (erf form) 0.5*x*(1+erf(x/sqrt2)): 5 (div, erf, add, mul, mul)
* gelu (tanh form) 0.5*x*(1+tanh(c*(x+0.044715x^3))): 9
* tanh: 1, softplus log(1+exp(x)): 3, mish x*tanh(softplus(x)): 5
"""

from __future__ import annotations

from . import Cost, OpCall, register, register_rows
from .elementwise import elementwise

register_rows(
    [
        ("relu.default", "relu_.default", "relu.out"),
        ("leaky_relu.default", "leaky_relu_.default", "leaky_relu.out"),
        ("hardtanh.default", "hardtanh_.default", "hardtanh.out"),
        ("tanh.default", "tanh_.default", "tanh.out"),
    ],
    elementwise(1),
    "activation",
)
register_rows([("sigmoid.default", "sigmoid_.default", "sigmoid.out")], elementwise(4), "activation")
register_rows([("silu.default", "silu_.default", "silu.out")], elementwise(4), "activation")
register_rows([("softplus.default", None, "softplus.out")], elementwise(3), "activation")
register_rows([("mish.default", "mish_.default", "mish.out")], elementwise(5), "activation")

GELU_ERF = 5
GELU_TANH = 9


@register("aten.gelu.default", "aten.gelu_.default", family="activation")
@register("aten.gelu.out", family="activation", out_args=("out",))
def gelu(call: OpCall) -> Cost:
    """5 per element for the erf form, 9 for ``approximate='tanh'``."""
    approx = call.arg(None, "approximate", "none")
    per = GELU_TANH if approx == "tanh" else GELU_ERF
    return Cost(0, per * call.out.numel, call.read_bytes(), call.written_bytes())
