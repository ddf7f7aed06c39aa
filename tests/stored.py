"""Reference results kept between test sessions: observations of the bundled pipelines
(``tests/references/observations/``) and FlopCounterMode's counts of training steps (``tests/references/training/``).

The observe tests compare each model's hand plan (fxmeter's side, computed live every session) with what
diffusers' real pipeline calls when it runs on meta (the reference side).  Running every bundled pipeline on
meta at several workloads is minutes of a test session; its result is a pure function of the call (model,
the workload the pipeline was built at, the workload it ran, dtype) and of the code that ran: torch,
diffusers and transformers (by version) and fxmeter's model layer and its base (every file of
``fxmeter/model`` and ``fxmeter/base``, bundled configs included, by content).  So, as the FlopCounterMode
counts of ``tests/conftest.py``, an observation recorded under the same environment is read from the store
instead of being made again, and any edit to that code or any library upgrade observes afresh.

The training tests compare fxmeter's traced step (live) with FlopCounterMode over ``loss.backward()`` of the
full model on meta (the reference side, seconds per model): kept the same way (:func:`stored_json`, whose key
holds the counting function's own source).

The environment also holds the Python version, the versions (or absence) of the optional packages that change
what a pipeline does (:data:`OPTIONAL`) and this module's own source; where torch, diffusers, transformers or
one of those is an editable or direct-URL install (code that can change under one version string), nothing is
stored or read.

``FXMETER_LIVE_REFERENCES=1`` observes and counts everything live (the store is neither read nor written);
``FXMETER_RECORD_REFERENCES=1`` writes what a run observes.  ``tests/test_references.py`` observes a sample
afresh and checks the store agrees.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fxmeter.model import observe as ob
from fxmeter.model.workload import Workload

REFERENCES = Path(__file__).parent / "references"
STORE = REFERENCES / "observations"
#: fxmeter's code and data an observation depends on (every file under these folders, by content)
CODE = ("fxmeter/model", "fxmeter/base")


#: packages whose presence or version changes what a pipeline does on meta besides the three named ones
#: (transformers' image processors fall back to PIL without torchvision; ftfy cleans prompts)
OPTIONAL = ("torchvision", "ftfy", "sentencepiece", "accelerate")


@functools.cache
def environment() -> dict[str, str]:
    """What every stored result depends on: the library versions, the Python, fxmeter's model and base code and
    this module's own. ``{}`` where a library is an editable or direct-URL install (its code can change under
    one version string): then nothing is read or written and every test runs live."""
    import sys
    from importlib.metadata import PackageNotFoundError, distribution

    out: dict[str, str] = {"python": f"{sys.version_info[0]}.{sys.version_info[1]}"}
    for name in ("torch", "diffusers", "transformers", *OPTIONAL):
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            out[name] = "missing"
            continue
        if dist.read_text("direct_url.json") is not None:
            return {}
        out[name] = dist.version
    root = Path(ob.__file__).resolve().parents[2]
    h = hashlib.sha256(Path(__file__).read_bytes())
    for folder in CODE:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    out["code"] = h.hexdigest()[:16]
    return out


def to_dict(o: ob.Observation) -> dict[str, Any]:
    return {"model": o.model, "pipeline": o.pipeline, "scheduler": o.scheduler, "workload": o.workload.to_dict(),
            "calls": [[c.component, c.method, [[n, list(t.shape), t.dtype] for n, t in c.inputs], c.step,
                       None if c.timestep is None else float(c.timestep).hex()] for c in o.calls],
            "patched": list(o.patched)}


def from_dict(d: dict[str, Any]) -> ob.Observation:
    calls = tuple(ob.Call(comp, method, tuple((n, ob.TensorSpec(tuple(shape), dtype)) for n, shape, dtype in inputs),
                          step, None if ts is None else float.fromhex(ts))
                  for comp, method, inputs, step, ts in d["calls"])
    return ob.Observation(d["model"], d["pipeline"], d["scheduler"], Workload(**d["workload"]), calls,
                          tuple(d["patched"]))


def path_of(model_id: str, built_at: Workload, wl: Workload, dtype: str) -> Path | None:
    """Where the observation is stored under this environment (None: not storable here)."""
    if not environment():
        return None
    text = json.dumps([model_id, built_at.to_dict(), wl.to_dict(), dtype, sorted(environment().items())],
                      sort_keys=True)
    return STORE / (hashlib.sha256(text.encode()).hexdigest()[:24] + ".json.gz")


def stored_path(kind: str, key: Any, compute: Callable[[], Any]) -> Path | None:
    """Where ``compute()``'s value for ``key`` is stored under this environment (None: not storable here). The
    function's own source is part of the key: editing the reference computation computes afresh."""
    import inspect

    env = environment()
    if not env:
        return None
    text = json.dumps([kind, key, inspect.getsource(compute), sorted(env.items())], sort_keys=True)
    return REFERENCES / kind / (hashlib.sha256(text.encode()).hexdigest()[:24] + ".json.gz")


def stored_json(kind: str, key: Any, compute: Callable[[], Any]) -> Any:
    """``compute()`` (a JSON value), read from ``tests/references/<kind>/`` when recorded for ``key`` (JSON) under
    this :func:`environment`, else computed now (and written with ``FXMETER_RECORD_REFERENCES``)."""
    live = bool(os.environ.get("FXMETER_LIVE_REFERENCES"))
    p = stored_path(kind, key, compute)
    if p is None or live:
        return compute()
    if p.exists():
        return json.loads(gzip.decompress(p.read_bytes()))["value"]
    value = compute()
    if os.environ.get("FXMETER_RECORD_REFERENCES"):
        write_doc(p, {"key": key, "environment": environment(), "value": value})
    return value


def write_doc(p: Path, doc: Any) -> None:
    """``doc`` as gzipped compact JSON at ``p`` (folders made; written whole or not at all, reproducibly: mtime 0)."""
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), mtime=0))
    tmp.replace(p)


def observed(model: Any, workloads: Sequence[Workload], dtype: str = "bfloat16", *,
             built_at: Workload | None = None) -> list[ob.Observation]:
    """One observation of ``model``'s pipeline per workload, the pipeline built once at ``built_at`` (default: the
    first workload), as ``ob.build`` then ``ob.run`` per workload: read from the store where recorded, else
    observed now."""
    at = workloads[0] if built_at is None else built_at
    live = bool(os.environ.get("FXMETER_LIVE_REFERENCES"))
    record = bool(os.environ.get("FXMETER_RECORD_REFERENCES")) and not live
    out: list[ob.Observation | None] = []
    paths = [path_of(model.id, at, w, dtype) for w in workloads]
    for p in paths:
        out.append(None if live or p is None or not p.exists()
                   else from_dict(json.loads(gzip.decompress(p.read_bytes()))))
    built = None
    for i, w in enumerate(workloads):
        if out[i] is not None:
            continue
        built = built or ob.build(model, at, dtype)
        o = ob.run(built, w, model.id)
        out[i] = o
        p = paths[i]
        if record and p is not None:
            write_doc(p, to_dict(o))
    return [o for o in out if o is not None]
