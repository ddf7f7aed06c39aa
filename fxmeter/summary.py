"""summary.md, rendered from the report document alone (re-renderable)."""

from __future__ import annotations

from typing import Any


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23 M'; exact integers stay in report.json."""
    for div, suffix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.2f} {suffix}{unit}"
    return f"{n:g} {unit}".strip()


def human_bytes(n: float) -> str:
    for div, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(n) >= div:
            return f"{n / div:.2f} {suffix}"
    return f"{int(n)} B"


def top_modules(
    data: dict[str, Any], k: int = 10, metric: str = "tensor_core_flops", *, by_self: bool = True
) -> list[dict[str, Any]]:
    """Modules ranked by their own nodes' ``metric`` (``by_self``) or by leaf-most totals."""
    mods = data["modules"]
    if by_self:
        ranked = [m for m in mods if m["self"][metric] > 0]
        return sorted(ranked, key=lambda m: (-m["self"][metric], natural_key(m["id"])))[:k]
    children: dict[str, list[dict[str, Any]]] = {}
    for m in mods:
        if m["parent"]:
            children.setdefault(m["parent"], []).append(m)
    leaves = [
        m
        for m in mods
        if m["per_forward"][metric] > 0 and not any(c["per_forward"][metric] > 0 for c in children.get(m["id"], []))
    ]
    return sorted(leaves, key=lambda m: (-m["per_forward"][metric], natural_key(m["id"])))[:k]


def natural_key(module_id: str) -> tuple[Any, ...]:
    """blocks.2 before blocks.10."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in module_id.split("."))


def render(data: dict[str, Any]) -> str:
    wl, model, tot, mem = data["workload"], data["model"], data["totals"], data["memory"]
    pf, e2e = tot["per_forward"], tot["end_to_end"]
    out: list[str] = []
    out.append(f"# fxmeter: {model['id']} @ {wl['name']}\n")
    out.append(
        f"`{model['diffusers_class']}` ({model['parameters']:,} parameters, {wl['dtype']}), "
        f"traced with {data['trace']['exporter']} ({data['trace']['mode']} shapes).\n"
    )
    out.append("## Workload\n")
    out.append("| knob | value |\n|---|---|")
    for k in ("frames", "height", "width", "steps", "batch", "text_len", "guidance_scale", "passes_per_step"):
        out.append(f"| {k} | {wl[k]} |")
    out.append(f"| latent shape | {' x '.join(map(str, wl['latent_shape']))} |")
    out.append(f"| tokens | {wl['tokens']:,} |\n")
    out.append("## Totals\n")
    out.append("| metric | per forward | end to end |\n|---|---:|---:|")
    for k in ("tensor_core_flops", "cuda_core_flops", "flops", "bytes_read", "bytes_written"):
        out.append(f"| {k} | {pf[k]:,} | {e2e[k]:,} |")
    out.append(
        f"\nEnd to end = per forward x {wl['steps']} steps x {wl['passes_per_step']} passes per step "
        f"= {human(e2e['flops'], 'FLOP')}.\n"
    )
    out.append("## Memory\n")
    out.append("| item | bytes |\n|---|---:|")
    out.append(f"| weights | {mem['weight_bytes']:,} ({human_bytes(mem['weight_bytes'])}) |")
    for dt, b in mem["weight_bytes_by_dtype"].items():
        out.append(f"| weights in {dt} | {b:,} |")
    out.append(
        f"| peak activations | {mem['activation_peak_bytes']:,} ({human_bytes(mem['activation_peak_bytes'])}) |"
    )
    out.append(f"| weights + peak activations | {mem['total_bytes']:,} ({human_bytes(mem['total_bytes'])}) |\n")
    out.append("## Top modules (own tensor-core FLOPs per forward)\n")
    out.append("| module | class | tensor-core FLOPs | share |\n|---|---|---:|---:|")
    total = pf["tensor_core_flops"] or 1
    for m in top_modules(data):
        v = m["self"]["tensor_core_flops"]
        out.append(f"| `{m['id']}` | {m['class']} | {v:,} | {100 * v / total:.2f}% |")
    out.append("\n## Categories\n")
    out.append("| category | tensor-core FLOPs | share | CUDA-core FLOPs | bytes read+written |\n|---|---:|---:|---:|---:|")
    cats = sorted(data["categories"].items(), key=lambda kv: (-kv[1]["flops"], kv[0]))
    for name, c in cats:
        out.append(
            f"| {name} | {c['tensor_core_flops']:,} | {100 * c['tensor_core_share']:.2f}% | "
            f"{c['cuda_core_flops']:,} | {c['bytes_read'] + c['bytes_written']:,} |"
        )
    out.append("\n## Unmodeled ops\n")
    if data["unmodeled_ops"]:
        out.append("| op | count | modules |\n|---|---:|---|")
        for u in data["unmodeled_ops"]:
            mods = ", ".join(f"`{x}`" for x in u["modules"][:5]) + (" ..." if len(u["modules"]) > 5 else "")
            out.append(f"| `{u['op']}` | {u['count']} | {mods} |")
    else:
        out.append("None: every op in the graph has a rule or is on the free list.")
    out.append("\n## Notes\n")
    out.extend(f"- {n}" for n in data["notes"])
    return "\n".join(out) + "\n"


def render_files(data: dict[str, Any]) -> dict[str, bytes]:
    """Files that go beside report.json: summary.md (and its charts)."""
    return {"summary.md": render(data).encode()}


def headline(data: dict[str, Any]) -> str:
    """The few console lines `fxmeter trace` prints."""
    wl, tot, mem = data["workload"], data["totals"], data["memory"]
    pf, e2e = tot["per_forward"], tot["end_to_end"]
    lines = [
        f"{data['model']['id']} @ {wl['name']}: {wl['tokens']:,} tokens (latent {'x'.join(map(str, wl['latent_shape']))}), "
        f"{wl['steps']} steps x {wl['passes_per_step']} passes",
        f"  tensor-core FLOPs per forward  {pf['tensor_core_flops']:>28,}  ({human(pf['tensor_core_flops'], 'FLOP')})",
        f"  CUDA-core FLOPs per forward    {pf['cuda_core_flops']:>28,}  ({human(pf['cuda_core_flops'], 'FLOP')})",
        f"  FLOPs end to end               {e2e['flops']:>28,}  ({human(e2e['flops'], 'FLOP')})",
        f"  weights {human_bytes(mem['weight_bytes'])}, peak activations {human_bytes(mem['activation_peak_bytes'])}",
        "  top modules: "
        + ", ".join(
            f"{m['id'].removeprefix('transformer.')} {100 * m['self']['tensor_core_flops'] / (pf['tensor_core_flops'] or 1):.1f}%"
            for m in top_modules(data, 3, "tensor_core_flops", by_self=True)
        ),
    ]
    return "\n".join(lines)
