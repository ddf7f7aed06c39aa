"""``fxmeter plan`` / ``diagnose``: the frontier's arithmetic, the fast search against the api path, the CLI's
answers to bad and contradictory input, diagnose naming a known setting, and fleet sizing."""

from __future__ import annotations

import json
import shlex

import pytest
from click.testing import CliRunner

from fxmeter.advise.planner import Priced, Setup, Space, frontier, pareto, price_setup, search
from fxmeter.cli.main import main
from fxmeter.estimate.hardware import get_many

MODEL = "flux.1-dev"


def _row(seconds: float, gpus: int, device: str = "h100", price: float | None = 2.0, **kw: object) -> Priced:
    return Priced(Setup(device, gpus, **kw), seconds, 1, 2, price)  # type: ignore[arg-type]


def test_pareto_on_a_hand_made_set() -> None:
    a = _row(10.0, 1)  # 10 GPU-s: $0.00556
    b = _row(6.0, 2)  # 12 GPU-s: faster, dearer, more GPUs -> on the frontier
    c = _row(6.0, 4)  # same time as b with more GPUs and more cost -> dominated by b
    d = _row(12.0, 1)  # slower than a at more cost, same GPUs -> dominated by a
    e = _row(20.0, 1, price=0.5)  # slowest but cheapest ($0.00278) -> on the frontier
    f = _row(2.0, 8)  # fastest -> on the frontier
    front = pareto([a, b, c, d, e, f])
    assert front == [f, b, a, e]
    assert [round(r.dollars or 0, 6) for r in front] == [round(2.0 * 8 / 3600 * 2, 6), round(12 / 3600 * 2, 6),
                                                        round(10 / 3600 * 2, 6), round(20 / 3600 * 0.5, 6)]
    # no prices: the cost axis is GPU-seconds
    g, h = _row(4.0, 2, price=None), _row(5.0, 1, price=None)
    assert pareto([g, h]) == [g, h] and pareto([_row(4.0, 2, price=None), _row(3.0, 1, price=None)])[0].gpus == 1


@pytest.fixture(scope="module")
def small() -> object:
    return search(MODEL, space=Space(get_many("h100,l40s"), max_gpus=2, quality=True))


def test_search_prices_as_the_api_does(small: object) -> None:
    rows = small.rows  # type: ignore[attr-defined]
    picks = [r for r in rows if r.setup == Setup("h100", 2, "ulysses=1,ring=1,cfg=1,tp=2", False)]
    picks += [r for r in rows if r.setup == Setup("l40s", 1, None, False, "model", attention="fa2", compile=True)]
    picks += [r for r in rows if r.setup == Setup("l40s", 2, "ulysses=1,ring=2,cfg=1,tp=1", True, "sequential",
                                                  precision="fp8", cache_skip=0.5)]
    picks += [r for r in rows if r.setup.steps is not None][:1]
    assert len(picks) == 4
    for r in picks:
        ref = price_setup(MODEL, None, r.setup)
        assert r.seconds == pytest.approx(ref.seconds, rel=1e-9), r.setup
        assert r.peak_bytes == ref.peak_bytes, r.setup
    assert all(r.quality for r in picks[2:]) and not picks[0].quality


def test_frontier_rows_are_exact_and_undominated(small: object) -> None:
    fr = frontier(small, command=lambda s: "cmd")  # type: ignore[arg-type]
    assert fr.exact and all(r.priced.exact and r.priced.fits for r in fr.exact)
    assert all(not r.priced.exact for r in fr.quality)
    fit = [r for r in small.rows if r.fits and r.exact]  # type: ignore[attr-defined]
    for row in fr.exact:
        p = row.priced
        assert not any(q.seconds <= p.seconds and q.cost() <= p.cost() and q.gpus <= p.gpus and
                       (q.seconds, q.cost(), q.gpus) != (p.seconds, p.cost(), p.gpus) for q in fit)
    assert fr.exact[0].why.startswith("fastest")


@pytest.mark.slow
def test_plan_cli_row_command_reproduces_its_seconds(tmp_path: object) -> None:
    res = CliRunner().invoke(main, ["plan", MODEL, "--hardware", "l40s", "--max-gpus", "2", "--exact-only", "--json",
                                    "--price-per-hour", "0.86"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    row = doc["frontier"][-1]
    assert row["command"].startswith("fxmeter trace flux.1-dev --hardware l40s")
    args = shlex.split(row["command"])[1:] + ["--json", "--output-root", str(tmp_path), "--run-id", "p"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    rep = json.loads(out.output[out.output.index("{"):])
    dep = rep.get("deployment")
    secs = dep["predicted_seconds"] if dep else rep["pipeline"]["end_to_end"]["predicted_seconds"]
    assert secs == pytest.approx(row["seconds"], rel=1e-9)


@pytest.mark.parametrize("args, needle", [
    (["--slo", "-1"], "--slo"), (["--rate", "-1"], "--rate"), (["--hardware", "h1000"], "unknown hardware"),
    (["--budget", "0.01"], "--price-per-hour"), (["--max-gpus", "0"], "--max-gpus"), (["--p95", "10"], "--rate"),
    (["--price-per-hour", "-3"], "price"),
])
def test_plan_invalid_input_is_one_error_line_exit_2(args: list[str], needle: str) -> None:
    res = CliRunner().invoke(main, ["plan", MODEL, "--hardware", "l40s", *args])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], res.output


@pytest.mark.parametrize("args, needle", [
    (["--slo", "0"], "no setup generates in 0 s: the fastest"),
    (["--budget", "0", "--price-per-hour", "0.86"], "no setup costs $0 or less"),
])
def test_plan_contradictions_name_the_nearest_setup(args: list[str], needle: str) -> None:
    res = CliRunner().invoke(main, ["plan", MODEL, "--hardware", "l40s", "--max-gpus", "1", "--exact-only", *args])
    assert res.exit_code == 1, res.output
    bad = [x for x in res.output.splitlines() if x.startswith("impossible:")]
    assert len(bad) == 1 and needle in bad[0] and "fxmeter trace flux.1-dev" in bad[0]


# -- diagnose ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_diagnose_names_fa2_for_a_run_predicted_with_fa2() -> None:
    from fxmeter.advise.diagnose import diagnose, price_options

    secs, _ = price_options(MODEL, None, {"hardware": "h100", "attention": "fa2"})
    d = diagnose(MODEL, measured=secs, hardware="h100", attention="fa3")  # the run's stated setup: fa3
    top = [c.name for c in d.causes[:2]]
    assert any("attention fa2" in n for n in top), top
    assert d.causes[0].fix == "--attention fa3"


@pytest.mark.slow
def test_diagnose_names_sequential_offload_and_says_within_when_nothing_is_off() -> None:
    from fxmeter.advise.diagnose import diagnose, price_options

    secs, peak = price_options(MODEL, None, {"hardware": "l40s", "offload": "sequential"}, peak_kind="reserved")
    d = diagnose(MODEL, measured=secs, measured_peak_gb=peak / 1e9, hardware="l40s")
    assert d.causes[0].name == "offload sequential" and d.causes[0].score < 1e-9
    assert not d.explained
    base, _ = price_options(MODEL, None, {"hardware": "l40s"})
    ok = diagnose(MODEL, measured=base * 1.04, hardware="l40s")
    assert ok.explained and "within 4%" in ok.lines()[1]


@pytest.mark.slow
def test_diagnose_never_ranks_a_change_that_changes_nothing() -> None:
    """On H100 torch SDPA runs FlashAttention-2 (the same kernel table): "fa2 instead of sdpa" predicts the stated
    setup's own seconds, so it cannot explain a difference; it is listed as such, never ranked."""
    from fxmeter.advise.diagnose import diagnose, price_options

    secs, _ = price_options(MODEL, None, {"hardware": "h100"})
    fa2, _ = price_options(MODEL, None, {"hardware": "h100", "attention": "fa2"})
    assert fa2 == secs
    d = diagnose(MODEL, measured=secs * 1.3, hardware="h100")
    assert not any(c.name.startswith("attention fa2") for c in d.causes)
    assert any(x.startswith("attention fa2 instead of sdpa (the same prediction") for x in d.skipped)
    assert all(c.seconds != secs for c in d.causes if not c.note.startswith("kernels wait"))


@pytest.mark.slow
def test_diagnose_reads_a_peak_of_its_kind_and_names_an_offload_the_time_cannot() -> None:
    """Wan's --offload_model moves the DiT off the GPU for the VAE decode: ~the same seconds (not rankable from time
    alone) but another peak.  With the run's peak, the offload is named first; the peak is compared as a measurement
    of its kind reads it (allocated < reserved < nvidia-smi, the process-memory model validate reads)."""
    from fxmeter.advise.diagnose import diagnose, price_options

    wan, wl = "wan2.1-t2v-1.3b", "480p"
    run = {"hardware": "rtx4090", "offload": "wan", "t5_cpu": True}
    kinds = {k: price_options(wan, wl, run, peak_kind=k) for k in ("allocated", "reserved", "nvidia-smi")}
    assert len({s for s, _ in kinds.values()}) == 1  # the kind changes the peak only
    assert kinds["allocated"][1] < kinds["reserved"][1] < kinds["nvidia-smi"][1]
    secs, peak = kinds["nvidia-smi"]
    blind = diagnose(wan, wl, measured=secs, hardware="rtx4090")  # the time alone
    assert not any(c.name.startswith("offload wan") for c in blind.causes[:2])
    d = diagnose(wan, wl, measured=secs, measured_peak_gb=peak / 1e9, peak_kind="nvidia-smi", hardware="rtx4090")
    assert d.causes[0].name == "offload wan + t5_cpu" and d.causes[0].score < 1e-9, [c.name for c in d.causes]
    assert not d.explained and "peak" in d.lines()[1] and d.to_dict()["peak_kind"] == "nvidia-smi"
    assert d.peak_off_by is not None and d.peak_off_by < -0.25  # the run held far less than the setup would


def test_diagnose_ranks_causes_that_move_toward_the_measurement_first() -> None:
    """A run measured 5% under the setup's 100 s: a cause predicting 97 s (score 0.03) and one predicting 86 s
    (0.13) come before one predicting 101 s (0.10), which widens the gap; with a peak measured, a cause that moves
    only the peak toward it counts as moving toward."""
    from fxmeter.advise.diagnose import Cause, _score, _toward

    def cause(name: str, s: float, pk: int = 40) -> Cause:
        return Cause(name, {}, "", s, pk, _score(s, pk, 95.0, None))

    causes = [cause("slower", 101.0), cause("far", 86.0), cause("near", 97.0), cause("same", 100.0)]
    causes.sort(key=lambda c: (not _toward(c, 100.0, 40, 95.0, None), c.score))
    assert [c.name for c in causes] == ["near", "far", "same", "slower"]
    assert _toward(cause("less memory", 100.5, 30), 100.0, 40, 95.0, 31)  # slower, but the peak toward 31
    assert not _toward(cause("more memory", 100.5, 50), 100.0, 40, 95.0, 31)


def test_diagnose_cli_errors() -> None:
    res = CliRunner().invoke(main, ["diagnose", MODEL, "--measured", "10"])
    assert res.exit_code == 2 and res.output.startswith("error:") and "--hardware" in res.output
    res = CliRunner().invoke(main, ["diagnose", MODEL, "--hardware", "h100", "--measured", "-1"])
    assert res.exit_code == 2 and "--measured" in res.output
    res = CliRunner().invoke(main, ["diagnose", MODEL, "--hardware", "h100", "--measured", "10", "--measured-peak-gb",
                                    "30", "--peak-kind", "smi"])
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "--peak-kind" in lines[0], \
        res.output


# -- fleet ------------------------------------------------------------------------------------------------
def test_queueing_arithmetic() -> None:
    import math

    from fxmeter.advise.fleet import erlang_c, gamma_p95, p95_latency, smallest_fleet

    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)  # textbook: c=2, a=1 -> 1/3
    assert gamma_p95(1, 2.0) == pytest.approx(-math.log(0.05) / 2.0, rel=1e-9)  # exponential quantile
    assert gamma_p95(0, 2.0) == 0.0
    lat, util = p95_latency(1.0, 1, 0.5, 1)  # M/M/1 bound, lambda 1/s, D 0.5 s: C = 0.5
    assert util == pytest.approx(0.5) and lat == pytest.approx(math.log(0.5 / 0.05) / (2 - 1) + 0.5)
    assert p95_latency(1.0, 1, 2.0, 1)[0] == math.inf  # utilisation 2: unstable
    n, lat, util = smallest_fleet(3600.0, 1, 10.0, 20.0)  # 1 request/s, 10 s each: at least 11 replicas
    assert n >= 11 and lat <= 20.0 and util < 1
    assert p95_latency(1.0, 1, 10.0, n - 1)[0] > 20.0  # one fewer misses the target
    assert smallest_fleet(3600.0, 1, 10.0, 5.0) is None  # the run alone exceeds the p95


def test_fleet_from_a_frontier(small: object) -> None:
    from fxmeter.advise.fleet import size_fleet

    fr = frontier(small, command=lambda s: "cmd")  # type: ignore[arg-type]
    fleet = size_fleet(small, fr, rate=1000.0, p95=120.0, model=MODEL, workload=None, config=None, dtype="bf16",
                       overrides={}, command=lambda s: "cmd", batches=(1,))
    assert fleet.impossible is None and fleet.options
    costs = [o.cost_per_hour for o in fleet.options]
    assert costs == sorted(costs)
    for o in fleet.options:  # no prices in the fixture: the cost is GPU-hours per hour
        assert o.cost_per_hour == o.replicas * o.gpus_per_replica and o.p95 <= 120.0
        assert o.utilisation == pytest.approx(1000.0 / 3600.0 * o.seconds_per_batch / o.replicas)
        assert o.per_1000(1000.0) == pytest.approx(o.cost_per_hour)


@pytest.mark.slow
def test_plan_rate_cli() -> None:
    res = CliRunner().invoke(main, ["plan", MODEL, "--hardware", "l40s", "--max-gpus", "1", "--exact-only",
                                    "--price-per-hour", "0.86", "--rate", "600", "--p95", "60", "--json"])
    assert res.exit_code == 0, res.output
    fleet = json.loads(res.output)["fleet"]
    best = fleet["options"][0]
    assert best["p95"] <= 60 and best["utilisation"] < 1 and "M/D/c" in fleet["assumptions"]
    assert best["cost_per_1000"] == pytest.approx(best["replicas"] * best["gpus_per_replica"] * 0.86 * 1000 / 600)
    res = CliRunner().invoke(main, ["plan", MODEL, "--hardware", "l40s", "--max-gpus", "1", "--exact-only",
                                    "--rate", "600", "--p95", "1"])
    assert res.exit_code == 1 and "impossible: no fleet meets p95 1 s" in res.output


def test_frontier_contradictions_on_a_hand_made_set() -> None:
    from fxmeter.advise.planner import Pricer, SearchResult

    def result(rows: list[Priced]) -> SearchResult:
        return SearchResult("m", None, 50, rows, 0.0, 1, Pricer())

    big = Priced(Setup("l4", 1), 10.0, 30 * 2**30, 24 * 2**30, 0.5)
    fr = frontier(result([big]))
    assert fr.impossible is not None and fr.impossible.startswith("no setup fits: the nearest, 1x l4")
    assert "30.0 GiB per GPU of 24 GiB" in fr.impossible
    fast, cheap = _row(2.0, 4), _row(10.0, 1, price=0.5)
    fr = frontier(result([fast, cheap]), slo=1.0, command=lambda s: f"cmd {s.gpus}")
    assert fr.impossible == "no setup generates in 1 s: the fastest that fits takes 2.0 s (4x h100, attn sdpa); cmd 4"
    fr = frontier(result([fast, cheap]), slo=5.0, budget=0.002)  # cheap: $0.0014 but 10 s; fast: 2 s at $0.0044
    assert fr.impossible is not None and fr.impossible.startswith("no setup meets both --slo 5 s and --budget $0.002: within the budget the fastest takes 10.0 s")
    fr = frontier(result([fast, cheap]), slo=5.0)
    assert [r.priced for r in fr.exact] == [fast] and fr.kept == 1


def test_why_names_the_gpu_count_when_the_cost_is_the_same() -> None:
    """A row on the frontier for having fewer GPUs at about the same cost says so, never "0% cheaper"."""
    from fxmeter.advise.planner import reason

    fast, fewer, cheaper, dearer = _row(10.0, 8), _row(11.4, 7), _row(30.0, 2), _row(90.0, 1, price=7.0)
    front = [fast, fewer, cheaper, dearer, _row(200.0, 1, price=0.1)]
    # fewer: 79.8 GPU-s vs 80 (0.25% cheaper) -> the GPU count
    assert reason(fewer, {}, {}, 1, front).startswith("7 GPUs instead of 8 at 1.14x the time of the row above "
                                                      "(about the same GPU-seconds)")
    assert reason(cheaper, {}, {}, 2, front).startswith("25% cheaper than the row above at 2.63x its time")
    # dearer is against the row above: $0.175 vs $0.0333 is 5.25x its cost (never "81% dearer")
    assert reason(dearer, {}, {}, 3, front).startswith("1 GPU instead of 2 at 3.00x the time of the row above "
                                                       "(5.25x its cost)")
    slightly = _row(40.0, 1, price=3.3)  # 40 s at $3.3/h = $0.0367 against the row above's $0.0333: 10% dearer
    assert "(10% dearer)" in reason(slightly, {}, {}, 3, [fast, fewer, cheaper, slightly, front[-1]])
