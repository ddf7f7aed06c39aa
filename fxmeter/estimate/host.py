"""Host-side dispatch: the GPU waits when Python issues kernels more slowly than they run.

Eager PyTorch issues one graph node at a time from Python: each costs the host an ATen
dispatch (views included) and, when it runs a kernel, a CUDA launch; under ``--compile``
only Inductor's fused kernels are issued, each through its launcher.  The constants are
``kernels.json``'s ``host`` section (:class:`~fxmeter.estimate.kernels.HostCosts`), each
with its source.  The timeline (one stream, an unbounded launch queue)::

    H_i = H_(i-1) + host_i                 (the host has issued node i)
    G_i = max(G_(i-1), H_i) + kernel_i     (its kernel ends)

A node's time is its increment ``G_i - G_(i-1) >= kernel_i``: a node whose kernel waits for
the host is charged the wait and its limiter becomes ``launch``.  Long kernels let the host
run ahead, so a large workload hides the host entirely; short kernels (small images, many
GPUs, elementwise chains) expose it.  Nodes of a replicated block (``replicas`` > 1,
consecutive in graph order) are issued ``replicas`` times in a row, and a node's time is
its mean increment over those instances, so ``sum(time * replicas)`` is the forward's
``G``.  The forward starts with an idle GPU and an idle host, and ends when both are done.

Pure Python: no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

from fxmeter.estimate.evaluate import NodeCost
from fxmeter.estimate.kernels import HostCosts
from fxmeter.estimate.roofline import NodeTime


def host_seconds(n: NodeCost, host: HostCosts, *, compiled: bool, repeats: int = 1) -> float:
    """Host seconds of issuing one instance of ``n`` (``repeats`` kernel calls, e.g. ring steps)."""
    if compiled:
        launches = 1 if n.family != "free" and n.kernel in (-1, n.index) else 0
    else:
        launches = 0 if n.family == "free" else 1
    return repeats * host.node_seconds(launches=launches, compiled=compiled)


def timeline(nodes: Sequence[NodeCost], kernels: Sequence[NodeTime], hosts: Sequence[float]) -> list[NodeTime]:
    """Per-node GPU seconds (one instance each) once the host's issue times are taken into account."""
    assert len(nodes) == len(kernels) == len(hosts)
    out: list[NodeTime] = []
    h_clock = g_clock = 0.0
    i = 0
    while i < len(nodes):
        r = nodes[i].replicas
        j = i + 1
        while j < len(nodes) and nodes[j].replicas == r:
            j += 1
        inc = [0.0] * (j - i)
        for _ in range(max(r, 1)):
            for k in range(i, j):
                h_clock += hosts[k]
                end = max(g_clock, h_clock) + kernels[k].seconds if kernels[k].seconds > 0 else g_clock
                inc[k - i] += end - g_clock
                g_clock = end
        for k in range(i, j):
            t = inc[k - i] / max(r, 1)
            waited = t > kernels[k].seconds * (1 + 1e-9) + 1e-15
            out.append(NodeTime(t, "launch" if waited else kernels[k].limiter))
        i = j
    if h_clock > g_clock and out:  # the host still issues views after the last kernel: the forward ends with it
        last = out[-1]
        out[-1] = NodeTime(last.seconds + (h_clock - g_clock) / max(nodes[-1].replicas, 1), "launch")
    return out


__all__ = ["host_seconds", "timeline"]
