"""``fxmeter plan --rate R [--p95 S]``: replicas x GPUs per replica x batch that serve R generations per hour
within a 95th-percentile latency of S seconds, at the lowest cost.

The queueing model (its assumptions, stated):

* requests arrive as a Poisson process of rate ``R`` per hour;
* a dispatcher groups them into batches of ``b`` (``--batch b`` of ``fxmeter trace``: ``b`` generations per
  run) and sends each batch to a free replica; batches are treated as Poisson arrivals of rate ``R/b`` (their
  true inter-arrival times, Erlang-``b``, vary less, so this overstates the queue);
* each replica (``G`` GPUs running one deployment) takes a deterministic ``D(b)`` seconds per batch, priced by
  fxmeter; ``c`` replicas form an M/D/c queue of batches;
* the wait for a free replica is bounded by the M/M/c (Erlang C) tail, ``P(W > t) = C(c, a) e^{-(c/D - R/b) t}``,
  which is an upper bound for deterministic service (an M/D/c queue waits about half as long);
* the batching window: a request may wait for ``b - 1`` later arrivals; its 95th percentile is that of a
  Gamma(``b-1``, rate) time, computed exactly from the Poisson distribution;
* p95 latency <= window p95 + wait p95 + ``D(b)`` (a sum of 95th percentiles bounds the 95th percentile of the
  sum from above); a fleet is kept when that bound meets ``--p95`` and utilisation ``R D(b) / (b c)`` < 1.

Cost per hour = ``c x G x $/GPU-hour`` (GPU-hours when there is no price); per 1,000 generations = cost per
hour x 1000 / R.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

BATCHES = (1, 2, 4)
MAX_REPLICAS = 100_000
ASSUMPTIONS = ("Poisson arrivals; batches of b dispatched when b requests wait, treated as Poisson batch arrivals; "
               "c identical replicas, deterministic service D(b) per batch (M/D/c); wait bounded by the M/M/c Erlang-C "
               "tail; p95 <= batching-window p95 + wait p95 + D(b)")


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with offered load ``a`` (< c) Erlangs."""
    if a <= 0:
        return 0.0
    # iterative Erlang B, then C (stable for large c)
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1 - rho + rho * b)


def gamma_p95(k: int, rate: float, q: float = 0.95) -> float:
    """The ``q`` quantile of the time until ``k`` Poisson(rate) arrivals (0 for k = 0)."""
    if k <= 0:
        return 0.0

    def below(t: float) -> float:  # P(N(t) < k) = P(T_k > t)
        x = rate * t
        term = math.exp(-x)
        s = term
        for i in range(1, k):
            term *= x / i
            s += term
        return s

    lo, hi = 0.0, k / rate
    while below(hi) > 1 - q:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        if below(mid) > 1 - q:
            lo = mid
        else:
            hi = mid
    return hi


def p95_latency(rate_per_s: float, batch: int, service: float, replicas: int) -> tuple[float, float]:
    """(p95 latency bound, utilisation) of ``replicas`` replicas serving batches of ``batch`` in ``service`` s."""
    lam_b = rate_per_s / batch
    a = lam_b * service
    util = a / replicas
    if util >= 1:
        return math.inf, util
    cw = erlang_c(replicas, a)
    wait = 0.0 if cw <= 0.05 else math.log(cw / 0.05) / (replicas / service - lam_b)
    return gamma_p95(batch - 1, rate_per_s) + wait + service, util


@dataclass(frozen=True)
class Option:
    """One fleet: a deployment, its batch and replica count."""

    setup: Any  # planner.Setup
    batch: int
    seconds_per_batch: float
    replicas: int
    gpus_per_replica: int
    p95: float
    utilisation: float
    price_per_hour: float | None
    command: str = ""

    @property
    def gpus(self) -> int:
        return self.replicas * self.gpus_per_replica

    @property
    def cost_per_hour(self) -> float:
        """$ per hour, or GPU-hours per hour without a price."""
        return self.gpus * (self.price_per_hour if self.price_per_hour is not None else 1.0)

    def per_1000(self, rate: float) -> float:
        return self.cost_per_hour * 1000.0 / rate


@dataclass
class Fleet:
    rate: float
    p95_target: float | None
    options: list[Option] = field(default_factory=list)  # best first
    impossible: str | None = None
    priced: bool = True

    def lines(self) -> list[str]:
        head = (f"Fleet for {self.rate:,.0f} generations/hour"
                + (f" at p95 <= {self.p95_target:g} s" if self.p95_target is not None else "") + ":")
        if self.impossible is not None:
            return [head, f"impossible: {self.impossible}"]
        unit = "$" if self.priced else "GPU-h"
        out = [head, f"  {'replicas':>8} {'GPUs/rep':>8} {'batch':>5} {'s/batch':>8} {'util':>5} {'p95 s':>8} "
                     f"{unit + '/h':>9} {unit + '/1k gen':>11}  setup"]
        from fxmeter.advise.planner import describe

        for o in self.options:
            out.append(f"  {o.replicas:>8,} {o.gpus_per_replica:>8} {o.batch:>5} {o.seconds_per_batch:>8,.1f} "
                       f"{o.utilisation * 100:>4.0f}% {o.p95:>8,.1f} {o.cost_per_hour:>9,.2f} {o.per_1000(self.rate):>11,.2f}  "
                       f"{describe(o.setup)}")
            out.append(f"      {o.command}")
        out.append(f"  (queueing model: {ASSUMPTIONS}; see fxmeter/advise/fleet.py)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"rate_per_hour": self.rate, "p95_target": self.p95_target, "impossible": self.impossible,
                "assumptions": ASSUMPTIONS, "cost_unit": "dollars" if self.priced else "gpu_hours",
                "options": [{"replicas": o.replicas, "gpus_per_replica": o.gpus_per_replica, "batch": o.batch,
                             "seconds_per_batch": o.seconds_per_batch, "utilisation": o.utilisation, "p95": o.p95,
                             "cost_per_hour": o.cost_per_hour, "cost_per_1000": o.per_1000(self.rate),
                             "setup": o.setup.options(), "command": o.command} for o in self.options]}


def smallest_fleet(rate_per_hour: float, batch: int, service: float, p95: float | None) -> tuple[int, float, float] | None:
    """(replicas, p95 bound, utilisation) of the fewest replicas meeting ``p95`` (None: none can)."""
    lam = rate_per_hour / 3600.0
    if p95 is not None and gamma_p95(batch - 1, lam) + service > p95:
        return None  # even an idle fleet cannot: the window and the run alone exceed it
    lo = max(1, math.floor(lam / batch * service) + 1)  # the fewest with utilisation < 1

    def ok(c: int) -> bool:
        return p95 is None or p95_latency(lam, batch, service, c)[0] <= p95

    hi = lo
    while not ok(hi):  # the bound falls as replicas are added: double, then bisect for the fewest
        if hi > MAX_REPLICAS:
            return None
        hi *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    lat, util = p95_latency(lam, batch, service, lo)
    return lo, lat, util


def size_fleet(res: Any, fr: Any, *, rate: float, p95: float | None, model: str | None, workload: Any,
               config: Any, dtype: str, overrides: Mapping[str, Any], command: Callable[[Any], str],
               batches: tuple[int, ...] = BATCHES, top: int = 5) -> Fleet:
    """The cheapest fleets built from the frontier's exact setups (each at batch 1, 2, 4 where it fits)."""
    from fxmeter.advise.planner import describe, price_setup
    from fxmeter.errors import FxmeterError

    cands = [r.priced for r in fr.exact]
    priced = any(c.price_per_hour is not None for c in cands)
    found: list[Option] = []
    fastest: tuple[float, Any] | None = None
    memo: dict[str, Any] = {}
    for c in cands:
        for b in batches:
            if b == 1:
                secs, fits = c.seconds, c.fits
            else:
                try:
                    got = price_setup(model, workload, c.setup, config=config, dtype=dtype, memo=memo,
                                      **{**overrides, "batch": b * int(overrides.get("batch") or 1)})
                except FxmeterError:
                    continue
                secs, fits = got.seconds, got.fits
            if not fits:
                continue
            if fastest is None or secs < fastest[0]:
                fastest = (secs, c.setup)
            fl = smallest_fleet(rate, b, secs, p95)
            if fl is None:
                continue
            n, lat, util = fl
            setup = c.setup
            cmd = command(setup) + (f" --batch {b * int(overrides.get('batch') or 1)}" if b > 1 else "")
            found.append(Option(setup, b, secs, n, setup.gpus, lat, util, c.price_per_hour, cmd))
    fleet = Fleet(rate, p95, priced=priced)
    if not found:
        if fastest is None:
            fleet.impossible = "no frontier setup fits at any batch size"
        else:
            fleet.impossible = (f"no fleet meets p95 {p95:g} s: the fastest generation alone takes {fastest[0]:,.1f} s "
                                f"({describe(fastest[1])}; {command(fastest[1])})")
        return fleet
    found.sort(key=lambda o: (o.cost_per_hour, o.p95))
    fleet.options = found[:top]
    return fleet


__all__ = ["ASSUMPTIONS", "Fleet", "Option", "erlang_c", "gamma_p95", "p95_latency", "size_fleet", "smallest_fleet"]
