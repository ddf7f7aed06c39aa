"""The collective model: constants file, latency + bytes/bandwidth arithmetic, link choice."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fxmeter.errors import CommError
from fxmeter.estimate.comm import (
    GPU_KINDS,
    HOST_KINDS,
    KINDS,
    Collective,
    LinkSpec,
    collective_seconds,
    load_comm_model,
    parse_comm_model,
    pick_link,
)


def builtin_doc() -> Any:
    return json.loads(resources.files("fxmeter.data").joinpath("comms.json").read_text(encoding="utf-8"))


def link(kind: str, gen: int | None, bw: float, **kw: Any) -> LinkSpec:
    return LinkSpec(kind, gen, bw, 2 * bw, "test link", **kw)


# -- the data file ----------------------------------------------------------------------
def test_every_constant_has_a_source() -> None:
    doc = builtin_doc()
    seen = 0

    def walk(x: Any, where: str) -> None:
        nonlocal seen
        if isinstance(x, dict):
            if "value" in x:
                assert set(x) == {"value", "source"}, where
                assert isinstance(x["source"], str) and len(x["source"]) > 20, where
                seen += 1
            for k, v in x.items():
                walk(v, f"{where}.{k}")

    walk(doc, "comms.json")
    for kind, f in doc["busbw_factor"].items():
        assert f["source"].strip(), kind
    model = load_comm_model()
    # 6 fabrics x 5 GPU kinds x (fraction + latency) + pcie's 2 host kinds x 2 + xgmi mesh_links + devices (2 p2p, 1 max ranks, 5 fractions)
    assert seen == 6 * 5 * 2 + 2 * 2 + 1 + 2 + 1 + 5
    assert len(model.sources) == seen + len(KINDS)  # + one source per busbw factor
    assert sorted(model.fractions) == ["nvlink3", "nvlink4", "nvlink5", "pcie", "pcie_host", "xgmi"]
    assert set(model.fractions["pcie"]) == set(KINDS)


def test_busbw_factors_are_nccls() -> None:
    m = load_comm_model()
    # nccl-tests PERFORMANCE.md: all_reduce 2(n-1)/n, all_gather / reduce_scatter / alltoall (n-1)/n, sendrecv 1
    assert m.factor("all_reduce", 8) == 2 * 7 / 8 == 1.75
    for kind in ("all_gather", "reduce_scatter", "all_to_all"):
        assert m.factor(kind, 8) == 7 / 8
        assert m.factor(kind, 2) == 1 / 2
    for kind in ("p2p", *HOST_KINDS):
        assert m.factor(kind, 8) == 1.0


def test_consumer_cards_without_p2p_are_sourced() -> None:
    m = load_comm_model()
    assert m.p2p == {"rtx4090": False, "rtx5090": False}
    assert "4090" in m.sources["devices.rtx4090.p2p"] and "host memory" in m.sources["devices.rtx4090.p2p"]


# -- one call: latency + factor * bytes / (fraction * bandwidth) ------------------------------
@pytest.mark.parametrize(
    ("c", "lk", "expected"),
    [
        # nvlink4 all_to_all over 2 ranks, 1 MB per rank on a 100 GB/s link:
        # 39.96 us + (1/2) * 1e6 / (0.711 * 100e9) = 39.96e-6 + 7.03235e-6
        (Collective("all_to_all", 1_000_000, 2), link("nvlink", 4, 100e9), 39.96e-6 + 0.5 * 1e6 / (0.711 * 100e9)),
        # nvlink3 all_reduce over 8 ranks, 800 MB: 43.83 us + 1.75 * 8e8 / (0.783 * 300e9) = 43.83e-6 + 5.95998e-3
        (Collective("all_reduce", 800_000_000, 8), link("nvlink", 3, 300e9), 43.83e-6 + 1.4e9 / (0.783 * 300e9)),
        # nvlink5 all_gather over 4 ranks: 47.79 us + (3/4) * 9e8 / (0.778 * 900e9) = 47.79e-6 + 0.96401e-3
        (Collective("all_gather", 900_000_000, 4), link("nvlink", 5, 900e9), 47.79e-6 + 0.75 * 9e8 / (0.778 * 900e9)),
        # PCIe p2p, 873 MB on Gen5 (63 GB/s): 43.83 us + 873e6 / (0.873 * 63e9) = 43.83e-6 + 1/63 s
        (Collective("p2p", 873_000_000, 2), link("pcie", 5, 63e9), 43.83e-6 + 1 / 63),
        # host -> device 55.44 MB on Gen5: 7 us + 55.44e6 / (0.880 * 63e9 = 55.44e9) = 7e-6 + 1e-3
        (Collective("host_to_device", 55_440_000, 1), link("pcie", 5, 63e9), 7e-6 + 1e-3),
        # device -> host: 7 us + 55.062e6 / (0.874 * 63e9 = 55.062e9) = 7e-6 + 1e-3
        (Collective("device_to_host", 55_062_000, 1), link("pcie", 5, 63e9), 7e-6 + 1e-3),
        # no P2P (RTX 4090): staged through host: 62.83 us + (3/4) * 4e6 / (0.680 * 31e9) = 62.83e-6 + 142.315e-6
        (Collective("all_gather", 4_000_000, 4), link("pcie", 4, 31e9, via_host=True),
         62.83e-6 + 0.75 * 4e6 / (0.680 * 31e9)),
        # xGMI full mesh, 2 ranks use 1 of 7 links: 448e9 / 7 = 64e9; factor 2*(1/2) = 1:
        # 43.83 us + 1e9 / (0.698 * 64e9) = 43.83e-6 + 22.385e-3
        (Collective("all_reduce", 1_000_000_000, 2), link("xgmi", None, 448e9), 43.83e-6 + 1e9 / (0.698 * 64e9)),
        # 8 ranks use all 7 links: 43.83 us + 1.75 * 1e9 / (0.698 * 448e9)
        (Collective("all_reduce", 1_000_000_000, 8), link("xgmi", None, 448e9), 43.83e-6 + 1.75e9 / (0.698 * 448e9)),
        # a ring p2p on the mesh sends to one peer over one link: 43.83 us + 1e9 / (0.745 * 64e9)
        (Collective("p2p", 1_000_000_000, 8), link("xgmi", None, 448e9), 43.83e-6 + 1e9 / (0.745 * 64e9)),
        # H100 PCIe NVLink bridge (device fact): 39.96 us + 1 * 1e9 / (0.388 * 300e9)
        (Collective("all_reduce", 1_000_000_000, 2), link("nvlink", 4, 300e9, device="h100-pcie"),
         39.96e-6 + 1e9 / (0.388 * 300e9)),
    ],
)
def test_collective_seconds_by_hand(c: Collective, lk: LinkSpec, expected: float) -> None:
    assert collective_seconds(c, lk, load_comm_model()) == pytest.approx(expected, rel=1e-12)


def test_one_rank_or_no_bytes_is_no_communication() -> None:
    m = load_comm_model()
    for kind in GPU_KINDS:
        assert collective_seconds(Collective(kind, 10**9, 1), link("nvlink", 4, 450e9), m) == 0.0
        assert collective_seconds(Collective(kind, 0, 8), link("nvlink", 4, 450e9), m) == 0.0
    # a host copy is not a group: one GPU still pays for it
    assert collective_seconds(Collective("host_to_device", 10**9, 1), link("pcie", 5, 63e9), m) > 0.015


def test_collective_arguments_are_checked() -> None:
    with pytest.raises(CommError, match="unknown collective 'allreduce'"):
        Collective("allreduce", 1, 2)
    with pytest.raises(CommError, match="bytes must be an integer >= 0"):
        Collective("all_reduce", -1, 2)
    with pytest.raises(CommError, match="ranks must be an integer >= 1"):
        Collective("all_reduce", 1, 0)
    with pytest.raises(CommError, match="count must be an integer >= 0"):
        Collective("all_reduce", 1, 2, count=True)  # type: ignore[arg-type]


def test_host_copy_needs_the_pcie_link() -> None:
    with pytest.raises(CommError, match="host_to_device runs over the PCIe link"):
        collective_seconds(Collective("host_to_device", 10, 1), link("nvlink", 4, 450e9), load_comm_model())


def test_unknown_fabric_is_one_error() -> None:
    with pytest.raises(CommError, match=r"no collective constants for a nvlink link \(generation 2\).*known fabrics: nvlink3"):
        collective_seconds(Collective("all_reduce", 10, 2), link("nvlink", 2, 150e9), load_comm_model())


# -- which link ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Device:
    name: str
    nvlink: LinkSpec | None = None
    pcie: LinkSpec | None = None


NV4 = link("nvlink", 4, 200e9)
PCIE4, PCIE5 = link("pcie", 4, 31e9), link("pcie", 5, 63e9)


@pytest.mark.parametrize(
    ("hw", "ranks", "kind", "via_host"),
    [
        (Device("h800", NV4, PCIE5), 8, "nvlink", False),
        (Device("l40s", None, PCIE4), 4, "pcie", False),  # P2P over PCIe (data-center card)
        (Device("rtx4090", None, PCIE4), 2, "pcie", True),  # no P2P: staged through host memory
        (Device("rtx5090", None, PCIE5), 8, "pcie", True),
        (Device("h100-pcie", link("nvlink", 4, 300e9), PCIE5), 2, "nvlink", False),  # one NVLink bridge pair
        (Device("h100-pcie", link("nvlink", 4, 300e9), PCIE5), 4, "pcie", False),  # bridges join 2 GPUs only
        (SimpleNamespace(name="mi300x", nvlink=None, xgmi=link("xgmi", None, 448e9), pcie=PCIE5), 8, "xgmi", False),
        # a Hardware that keeps its links in a mapping
        (SimpleNamespace(name="h100", links={"nvlink": NV4, "pcie": PCIE5}), 8, "nvlink", False),
        # a device that says it has no P2P itself
        (SimpleNamespace(name="custom", nvlink=None, pcie=PCIE5, p2p=False), 2, "pcie", True),
    ],
)
def test_pick_link(hw: Any, ranks: int, kind: str, via_host: bool) -> None:
    got = pick_link(hw, ranks)
    assert (got.kind, got.via_host, got.device) == (kind, via_host, hw.name)


def test_every_shipped_multi_gpu_device_has_a_priced_link() -> None:
    """The shipped Hardware keeps a device's GPU-to-GPU fabric in ``.nvlink`` whatever its vendor: the
    MI300X's xGMI is priced as xGMI (it was once read as an NVLink of generation None and refused)."""
    from fxmeter.estimate.comm import load_comm_model
    from fxmeter.estimate.hardware import builtin

    model = load_comm_model()
    for hw in builtin():
        got = pick_link(hw, 2)
        assert model.link_key(got) and got.device == hw.name, hw.name
    mi = next(h for h in builtin() if h.name == "mi300x")
    assert pick_link(mi, 8).kind == "xgmi"


def test_pick_link_copies_the_links_numbers() -> None:
    got = pick_link(Device("h800", NV4, PCIE5), 8)
    assert (got.generation, got.bandwidth, got.bandwidth_bidirectional) == (4, 200e9, 400e9)


def test_pick_link_without_links_is_one_error() -> None:
    with pytest.raises(CommError, match="device 'bare' has no nvlink, xgmi or pcie link"):
        pick_link(Device("bare"), 2)


# -- a bad constants file -----------------------------------------------------------------
def _set(doc: Any, path: str, value: Any) -> Any:
    d = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = d
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return d


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("schema", 2, "schema 2 is not supported"),
        ("busbw_factor.p2p", KeyError, "busbw_factor lacks 'p2p'"),
        ("busbw_factor.all_reduce.scale", 3, r"busbw_factor.all_reduce.scale must be an integer in \[1, 2\]"),
        ("busbw_factor.all_reduce.per_rank", "2(n-1)/n", "per_rank must be one of"),
        ("busbw_factor.all_gather.source", "", "busbw_factor.all_gather.source must be a non-empty string"),
        ("links.nvlink4.fraction.all_to_all.value", 0, r"links.nvlink4.fraction.all_to_all.value must be a number in \(0, 2\]"),
        ("links.nvlink4.fraction.all_to_all.value", "0.7", "must be a number"),
        ("links.nvlink4.fraction.all_to_all.value", 3.0, "must be a number"),
        ("links.nvlink4.fraction.all_to_all.source", " ", "fraction.all_to_all.source must be a non-empty string"),
        ("links.nvlink4.fraction.all_to_all", 0.7, "must be an object with exactly 'value' and 'source'"),
        ("links.nvlink4.fraction.p2p", KeyError, "links.nvlink4.fraction lacks 'p2p'"),
        ("links.pcie.fraction.host_to_device", KeyError, "links.pcie.fraction lacks 'host_to_device'"),
        ("links.nvlink4.latency_us.all_reduce.value", -1, "latency_us.all_reduce.value must be a number in"),
        ("links.nvlink4.latency_us.all_reduce.value", float("inf"), "must be a number in"),
        ("links.nvlink4.speed", 1, "links.nvlink4 has unknown key"),
        ("links.infiniband", {}, "links.infiniband: unknown fabric"),
        ("links.xgmi.mesh_links.value", 0, "mesh_links.value must be an integer"),
        ("links", {"nvlink4": {}}, "at least a 'pcie' entry"),
        ("devices.rtx4090.p2p.value", "no", "devices.rtx4090.p2p.value must be true or false"),
        ("devices.h100-pcie.nvlink_max_ranks.value", 1, "nvlink_max_ranks.value must be an integer"),
        ("devices.h100-pcie.nvlink_fraction.allreduce", {"value": 0.4, "source": "x"}, "unknown key"),
        ("devices", [], "devices must be an object"),
        ("notes", "text", "notes must be a list of strings"),
        ("extra", 1, "has unknown key"),
    ],
)
def test_bad_comm_file_is_one_error(tmp_path: Path, path: str, value: Any, fragment: str) -> None:
    f = tmp_path / "comms.json"
    f.write_text(json.dumps(_set(builtin_doc(), path, value)))
    with pytest.raises(CommError, match=fragment) as e:
        load_comm_model(f)
    assert "\n" not in str(e.value) and str(f) in str(e.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "is not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "is not"),
        ("[]", "must be a JSON object, got list"),
    ],
)
def test_unreadable_comm_file_is_one_error(tmp_path: Path, text: str, fragment: str) -> None:
    f = tmp_path / "comms.json"
    f.write_text(text)
    with pytest.raises(CommError, match=fragment):
        load_comm_model(f)


def test_missing_or_odd_comm_file_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(CommError, match="comm model file not found"):
        load_comm_model(tmp_path / "nope.json")
    with pytest.raises(CommError, match="is a folder"):
        load_comm_model(tmp_path)


def test_a_user_file_of_the_same_shape_loads(tmp_path: Path) -> None:
    doc = _set(builtin_doc(), "links.nvlink4.fraction.all_to_all.value", 0.5)
    f = tmp_path / "comms.json"
    f.write_text(json.dumps(doc))
    m = load_comm_model(f)
    # 39.96 us + (7/8) * 8e8 / (0.5 * 450e9)
    got = collective_seconds(Collective("all_to_all", 800_000_000, 8), link("nvlink", 4, 450e9), m)
    assert got == pytest.approx(39.96e-6 + 0.875 * 8e8 / (0.5 * 450e9), rel=1e-12)
    assert parse_comm_model(builtin_doc(), "x").fractions == load_comm_model().fractions
