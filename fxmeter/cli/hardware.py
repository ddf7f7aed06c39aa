"""``fxmeter hardware``: the device table used for time and fit."""

from __future__ import annotations

import click


@click.command("hardware")
@click.option("--hardware-file", type=click.Path(), default=None, help="Also list the devices of this JSON file.")
@click.option("--sources", is_flag=True, help="Print each number's source.")
def hardware(hardware_file: str | None, sources: bool) -> None:
    """List the devices time and fit can use (dense peaks, memory, links)."""
    from fxmeter.estimate.hardware import table

    tab = table(hardware_file)
    click.echo(f"{'name':<9} {'bf16 TFLOP/s':>12} {'fp8 TFLOP/s':>11} {'int8 TOP/s':>10} {'fp32 TFLOP/s':>12} {'TB/s':>6} {'GiB':>5}  "
               f"{'arch':<9} {'GPU link (per direction)':<24}  label")
    for d in sorted(tab.values(), key=lambda d: d.name):
        fp8 = d.tensor_core.get("fp8")
        fp8_text = f"{fp8 / 1e12:.1f}" if fp8 else "-"  # no fp8 tensor cores (e.g. A100)
        int8 = d.tensor_core.get("int8")
        int8_text = f"{int8 / 1e12:.1f}" if int8 else "-"  # no sourced dense INT8 peak
        link = d.gpu_link.text if d.gpu_link else "-"
        click.echo(f"{d.name:<9} {d.tc_peak('bf16') / 1e12:>12.1f} {fp8_text:>11} {int8_text:>10} {d.cuda_core_fp32 / 1e12:>12.1f} "
                   f"{d.memory_bandwidth / 1e12:>6.2f} {d.memory_bytes / 2**30:>5.0f}  {d.arch or '-':<9} {link:<24}  "
                   f"{d.label}" + (f" (aliases: {', '.join(d.aliases)})" if d.aliases else ""))
        if sources:
            for k, s in sorted(d.sources.items()):
                click.echo(f"    {k}: {s}")
            for lk in (d.nvlink, d.pcie):
                if lk is not None and lk.sources:
                    click.echo(f"    links.{lk.kind}: {lk.sources}")
    click.echo("Dense tensor-core peaks (datasheets print 2:4-sparse peaks, 2x these); GPU link: NVLink/xGMI, else PCIe "
               "(bytes/s per GPU per direction); `--sources` for each number's source.")


COMMANDS = (hardware,)
