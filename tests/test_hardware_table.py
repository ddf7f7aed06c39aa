"""The shipped device table: every device's new fields (arch, compute capability, SM count, links) are
sourced and parsed; user files may leave them out; bad values are one error line."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fxmeter.cli.main import main
from fxmeter.estimate import hardware
from fxmeter.estimate.hardware import ARCHS, HardwareError, Link

DEVICES = ["h100", "h200", "h20", "h800", "h100-pcie", "a100", "a100-40gb", "a800", "b200", "l40", "l40s", "l4", "l20", "rtx3090", "rtx4090",
           "rtx5090", "mi300x"]
MINIMAL = {"name": "mygpu", "tensor_core": {"bf16": 100e12}, "cuda_core_fp32": 10e12, "memory_bandwidth": 1e12, "memory_gib": 16}


def shipped() -> list[dict[str, Any]]:
    return json.loads(resources.files("fxmeter.data").joinpath("hardware.json").read_text(encoding="utf-8"))["devices"]


def test_table_lists_the_devices() -> None:
    assert sorted(hardware.table()) == sorted(DEVICES)  # A10G left out: no sourced tensor-core peak


@pytest.mark.parametrize("dev", shipped(), ids=lambda d: d["name"])
def test_every_new_field_is_sourced(dev: dict[str, Any]) -> None:
    src = dev["sources"]
    for key in ("arch", "compute_capability", "sm_count", "tensor_core", "cuda_core_fp32", "memory"):
        assert isinstance(src.get(key), str) and src[key].strip(), key  # null sm_count: the source says why
    assert dev["arch"] in ARCHS
    for kind in ("nvlink", "xgmi", "pcie"):
        if kind not in dev["links"]:
            continue
        link = dev["links"][kind]
        if link is None:
            assert src.get(kind, "").strip(), f"null {kind} without a sources[{kind!r}] saying why"
        else:
            assert link["sources"].strip() and link["bandwidth"] > 0
            if link.get("bandwidth_bidirectional") is not None:
                assert link["bandwidth_bidirectional"] >= link["bandwidth"]
    assert "price_per_hour_usd" not in dev  # no dated public price found: omitted, never guessed


def test_parsed_fields() -> None:
    h100 = hardware.get("h100")
    assert (h100.arch, h100.compute_capability, h100.sm_count) == ("hopper", "9.0", 132)
    assert h100.nvlink is not None and h100.nvlink.sources
    assert (h100.nvlink.kind, h100.nvlink.generation, h100.nvlink.bandwidth, h100.nvlink.bandwidth_bidirectional) == (
        "nvlink", 4, 450e9, 900e9)
    assert h100.pcie is not None and (h100.pcie.generation, h100.pcie.lanes, h100.pcie.bandwidth) == (5, 16, 63e9)
    mi = hardware.get("mi300x")
    assert mi.nvlink is not None and mi.nvlink.kind == "xgmi" and mi.nvlink.bandwidth == 448e9
    assert mi.compute_capability == "gfx942" and mi.sm_count == 304
    l4 = hardware.get("l4")
    assert l4.nvlink is None and l4.gpu_link is l4.pcie and l4.sm_count is None
    assert hardware.get("h20").pcie is None  # not sourced
    d = hardware.get("rtx4090").to_dict()
    assert d["arch"] == "ada" and d["links"]["nvlink"] is None and d["links"]["pcie"]["bandwidth"] == 31e9
    assert hardware.get("mi300x").to_dict()["links"]["xgmi"]["kind"] == "xgmi"


def test_existing_peaks_unchanged() -> None:
    # the devices the table had before the merge keep their numbers (and sources)
    assert hardware.get("h100").tc_peak("bf16") == 989.4e12 and hardware.get("h100").tensor_core["fp8"] == 1978.9e12
    assert hardware.get("a100").tensor_core["fp8"] is None and hardware.get("b200").memory_bandwidth == 8.0e12
    assert hardware.get("rtx4090").cuda_core_fp32 == 82.6e12 and hardware.get("l40s").memory_bytes == 48 * 2**30


def test_user_file_may_omit_every_new_field(tmp_path: Path) -> None:
    p = tmp_path / "dev.json"
    p.write_text(json.dumps(MINIMAL))
    d = hardware.get(None, p)
    assert (d.arch, d.compute_capability, d.sm_count, d.nvlink, d.pcie, d.price_per_hour) == (None,) * 6
    assert d.to_dict()["links"] == {"nvlink": None, "pcie": None}


def test_user_file_with_every_new_field(tmp_path: Path) -> None:
    p = tmp_path / "dev.json"
    p.write_text(json.dumps({**MINIMAL, "arch": "Hopper", "compute_capability": "9.0", "sm_count": 100, "price_per_hour_usd": 2.5,
                             "links": {"nvlink": {"generation": 4, "bandwidth": 400e9, "sources": "mine"},
                                       "pcie": {"generation": 5, "lanes": 16, "bandwidth": 63e9, "bandwidth_bidirectional": 126e9}}}))
    d = hardware.get(None, p)
    assert (d.arch, d.sm_count, d.price_per_hour) == ("hopper", 100, 2.5)
    assert d.nvlink == Link("nvlink", 4, 400e9, None, "mine", None) and d.pcie == Link("pcie", 5, 63e9, 126e9, "", 16)
    assert d.gpu_link is d.nvlink and d.nvlink.text == "NVLink4 400 GB/s" and d.pcie.text == "PCIe5 x16 63 GB/s"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"arch": "volta"}, "arch must be one of ampere, ada, hopper, blackwell, cdna3"),
        ({"arch": 9}, "arch must be one of"),
        ({"compute_capability": 9.0}, "compute_capability must be a string like \"9.0\""),
        ({"compute_capability": "sm90"}, "compute_capability must be a string"),
        ({"sm_count": 0}, "sm_count must be a positive integer"),
        ({"sm_count": 13.5}, "sm_count must be a positive integer"),
        ({"sm_count": True}, "sm_count must be a positive integer"),
        ({"links": []}, "'links' must be an object"),
        ({"links": {"infiniband": None}}, "unknown link 'infiniband'"),
        ({"links": {"nvlink": {"generation": 4}}}, "links.nvlink: missing 'bandwidth'"),
        ({"links": {"nvlink": {"bandwidth": -1}}}, "bandwidth must be a positive number"),
        ({"links": {"pcie": {"bandwidth": 1e9, "lanes": "x16"}}}, "lanes must be a positive integer"),
        ({"links": {"pcie": {"bandwidth": 1e9, "speed": 1}}}, "unknown key 'speed'"),
        ({"links": {"pcie": 5}}, "links.pcie must be an object"),
        ({"links": {"nvlink": {"bandwidth": 1e9}, "xgmi": {"bandwidth": 1e9}}}, "both 'nvlink' and 'xgmi'"),
        ({"links": {"nvlink": {"bandwidth": 1e9, "sources": 3}}}, "'sources' must be a string"),
        ({"price_per_hour_usd": "cheap"}, "price_per_hour_usd must be a positive number"),
    ],
)
def test_bad_new_fields_are_one_line(tmp_path: Path, extra: dict[str, Any], message: str) -> None:
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({**MINIMAL, **extra}))
    with pytest.raises(HardwareError) as e:
        hardware.read_file(p)
    assert message in str(e.value) and "\n" not in str(e.value)
    res = CliRunner().invoke(main, ["hardware", "--hardware-file", str(p)])
    assert res.exit_code == 2 and message in res.output and res.output.count("\n") == 1


def test_hardware_command_shows_arch_and_link() -> None:
    res = CliRunner().invoke(main, ["hardware"])
    assert res.exit_code == 0, res.output
    rows = {line.split()[0]: line for line in res.output.splitlines()[1:-1]}
    assert set(rows) == set(DEVICES)
    assert "hopper" in rows["h100"] and "NVLink4 450 GB/s" in rows["h100"]
    assert "ada" in rows["rtx4090"] and "PCIe4 x16 31 GB/s" in rows["rtx4090"]
    assert "cdna3" in rows["mi300x"] and "xGMI 448 GB/s" in rows["mi300x"]
    res = CliRunner().invoke(main, ["hardware", "--sources"])
    assert "links.nvlink: " in res.output and "sm_count: " in res.output and "arch: " in res.output
