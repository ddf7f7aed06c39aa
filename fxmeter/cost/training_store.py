"""Training-step graphs kept between runs: ``fxmeter train`` traces forward + backward once per model,
workload and LoRA setup, not on every call.

A traced step (:func:`fxmeter.model.training.capture_training`: AOTAutograd's forward and backward graphs
of the model with one and two blocks per repeated list) takes 5-25 s to make and is a pure function of
the model's config, the sample's dims, the dtype, the LoRA rank and targets, the attention kernel and the
code that ran.  Its node records are kept in the user cache (``<cache>/training/<digest>.fxt``) under a
key of the first group (and torch's major.minor: AOTAutograd's behaviour), with a header listing the
files of the second, as the inference traces (:mod:`fxmeter.cost.deps`), each whole: every library file a
function of the model's (eager, warm-up) forward came from (AOTAutograd's graphs carry no stack traces, so
the files are recorded while that forward runs) and those defining its module classes, the adapter's code,
the engine and the capture code (:data:`CAPTURE_FILES`).  A stored step whose files changed here is traced
again.  Its graph names must be the key's and every field of every record is checked on reading: a file
rewritten with a matching hash is refused, never trusted.

Only the graphs are stored, never their costs: the rules and the time model run on the records at each
call, so an edit to a rule or a kernel constant needs no new trace.  The records are written in a tagged
JSON that round-trips every value exactly (floats by their hex form, tuples and lists kept apart); a
record holding a value of another type is not stored (the step is traced each time, never stored wrong).
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from fxmeter.base import fileio
from fxmeter.cost import store as symstore
from fxmeter.rules import OpCall, TensorMeta

if TYPE_CHECKING:
    from fxmeter.model.capture import NodeRecord
    from fxmeter.model.pipeline import Component
    from fxmeter.model.training import JointGraph

LOG = logging.getLogger(__name__)

MAGIC = "fxmeter-training-step"
FORMAT = 1
SUFFIX = ".fxt"
#: what a stored step may inflate to (Flux.1-dev's three graphs: 0.75 MB): a file that says otherwise is refused
MAX_PAYLOAD_BYTES = 16 << 20
#: the header line's bound, checked before it is parsed (a real one: a few kB)
MAX_HEADER_BYTES = 1 << 20
#: fxmeter's code that decides a training graph besides the adapter's (the engine's files are listed too)
CAPTURE_FILES = ("fxmeter/model/training.py", "fxmeter/cost/training_store.py")


class Unstorable(ValueError):
    """A record value the tagged JSON does not round-trip exactly."""


# -- values <-> tagged JSON --------------------------------------------------------------------
def _enc(v: Any) -> Any:
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        if not -(1 << 63) <= v < (1 << 63):
            raise Unstorable(f"integer {v} out of range")
        return v
    if isinstance(v, float):
        return ["f", v.hex()]
    if isinstance(v, TensorMeta):
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in v.shape):
            raise Unstorable("a symbolic shape")
        return ["m", v.dtype, v.itemsize, *v.shape]
    if isinstance(v, tuple):
        return ["t", *(_enc(x) for x in v)]
    if isinstance(v, list):
        return ["l", *(_enc(x) for x in v)]
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        return ["d", {k: _enc(x) for k, x in v.items()}]
    raise Unstorable(f"a value of type {type(v).__name__}")


def _dec(v: Any) -> Any:
    if not isinstance(v, list):
        if isinstance(v, (dict, float)):
            raise ValueError(f"an untagged {type(v).__name__}")
        return v
    if not v:
        raise ValueError("an empty tagged value")
    tag, rest = v[0], v[1:]
    if tag == "f" and len(rest) == 1 and isinstance(rest[0], str):
        return float.fromhex(rest[0])
    if (tag == "m" and len(rest) >= 2 and isinstance(rest[0], str) and _int(rest[1])
            and all(_int(x) and x >= 0 for x in rest[2:])):
        return TensorMeta(tuple(rest[2:]), rest[0], rest[1])
    if tag == "t":
        return tuple(_dec(x) for x in rest)
    if tag == "l":
        return [_dec(x) for x in rest]
    if tag == "d" and len(rest) == 1 and isinstance(rest[0], dict):
        return {k: _dec(x) for k, x in rest[0].items()}
    raise ValueError(f"a malformed tagged value {str(v)[:40]}")


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _records_out(records: list[NodeRecord]) -> list[Any]:
    return [[r.name, r.target, r.module, _enc(r.call.args),
             _enc(r.call.kwargs), _enc(r.call.outputs), list(r.uses)] for r in records]


def _records_in(rows: Any) -> list[NodeRecord]:
    from fxmeter.model.capture import NodeRecord

    if not isinstance(rows, list):
        raise ValueError("records are not a list")
    out = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 7 and all(isinstance(x, str) for x in row[:3])
                and isinstance(row[6], list) and all(isinstance(u, str) for u in row[6])):
            raise ValueError(f"a malformed record {str(row)[:60]}")
        name, target, module, args, kwargs, outs, uses = row
        call = OpCall(target, _dec(args), _dec(kwargs), _dec(outs))
        if not (isinstance(call.args, tuple) and isinstance(call.kwargs, dict) and isinstance(call.outputs, tuple)
                and all(isinstance(t, TensorMeta) for t in call.outputs)):
            raise ValueError(f"record {name!r}: arguments or outputs of the wrong kind")
        out.append(NodeRecord(name, target, module, call, tuple(uses)))
    return out


#: a stored graph's fields and what each must be (records are checked by :func:`_records_in`)
_INTS = ("input_bytes", "output_bytes", "parameters", "trainable_parameters", "parameter_bytes", "trainable_bytes",
         "linear_weight_parameters", "trainable_tensors")
_INT_MAPS = ("saved", "blocks", "block_input_bytes")


def _check_fields(d: Any) -> None:
    if not isinstance(d, dict):
        raise ValueError("a graph is not a mapping")
    for f in _INTS:
        if not (_int(d.get(f)) and d[f] >= 0):
            raise ValueError(f"{f} is not a count")
    for f in _INT_MAPS:
        m = d.get(f)
        if not (isinstance(m, dict) and all(_int(v) and v >= 0 for v in m.values())):
            raise ValueError(f"{f} is not a mapping of counts")
    blw = d.get("block_linear_weights")
    if not (isinstance(blw, dict) and all(isinstance(v, dict) and all(_int(x) for x in v.values()) for v in blw.values())):
        raise ValueError("block_linear_weights is not a mapping of mappings of counts")
    shapes = d.get("trainable_shapes")
    if not (isinstance(shapes, list) and all(isinstance(r, list) and len(r) == 2 and isinstance(r[0], list)
                                             and all(_int(x) for x in r[0]) and _int(r[1]) for r in shapes)):
        raise ValueError("trainable_shapes is not a list of [shape, count]")
    for f in ("lora_layers", "sources"):
        if not (isinstance(d.get(f), list) and all(isinstance(x, str) for x in d[f])):
            raise ValueError(f"{f} is not a list of names")


def graph_to_dict(g: JointGraph) -> dict[str, Any]:
    """One joint graph as plain JSON values (:class:`Unstorable` when a record holds another type)."""
    if any(r.call.target != r.target for r in (*g.forward, *g.backward)):
        raise Unstorable("a record whose call names another op")
    return {
        "forward": _records_out(g.forward), "backward": _records_out(g.backward),
        "saved": dict(g.saved), "input_bytes": g.input_bytes, "output_bytes": g.output_bytes,
        "blocks": dict(g.blocks), "parameters": g.parameters, "trainable_parameters": g.trainable_parameters,
        "parameter_bytes": g.parameter_bytes, "trainable_bytes": g.trainable_bytes,
        "block_input_bytes": dict(g.block_input_bytes), "lora_layers": list(g.lora_layers),
        "trainable_shapes": [[list(s), n] for s, n in g.trainable_shapes.items()],
        "linear_weight_parameters": g.linear_weight_parameters,
        "block_linear_weights": {k: dict(v) for k, v in g.block_linear_weights.items()},
        "trainable_tensors": g.trainable_tensors, "sources": list(g.sources),
    }


def graph_from_dict(d: Any) -> JointGraph:
    """A stored graph, every field checked (ValueError: what is wrong)."""
    from fxmeter.model.training import JointGraph

    _check_fields(d)
    return JointGraph(
        forward=_records_in(d["forward"]), backward=_records_in(d["backward"]), saved=dict(d["saved"]),
        input_bytes=d["input_bytes"], output_bytes=d["output_bytes"], blocks=dict(d["blocks"]),
        parameters=d["parameters"], trainable_parameters=d["trainable_parameters"],
        parameter_bytes=d["parameter_bytes"], trainable_bytes=d["trainable_bytes"],
        block_input_bytes=dict(d["block_input_bytes"]), lora_layers=list(d["lora_layers"]),
        trainable_shapes={tuple(s): n for s, n in d["trainable_shapes"]},
        linear_weight_parameters=d["linear_weight_parameters"],
        block_linear_weights={k: dict(v) for k, v in d["block_linear_weights"].items()},
        trainable_tensors=d["trainable_tensors"], sources=tuple(d["sources"]),
    )


# -- keys, files -------------------------------------------------------------------------------
def key(component: Component, dtype: str, dims: Mapping[str, int], *, lora_rank: int,
        lora_targets: tuple[str, ...], attention: str, replicate: bool = True) -> dict[str, Any]:
    """What a stored training step is; what it depends on is in its header."""
    from fxmeter.model.training import graph_names

    return {"format": FORMAT, "graphs": list(graph_names(dict(component.config), component.adapter, replicate)),
            "class": str(component.config.get("_class_name")), "adapter": component.adapter.name,
            "config_sha256": component.config_sha256, "dtype": dtype, "dims": dict(sorted(dims.items())),
            "lora_rank": int(lora_rank), "lora_targets": list(lora_targets), "attention": attention,
            "replicate": bool(replicate), "torch": symstore.torch_minor()}


def entry_path(k: Mapping[str, Any]) -> Path:
    return symstore.cache_dir() / "training" / (symstore.digest(k) + SUFFIX)


def dependencies(graphs: Mapping[str, JointGraph], adapter: Any) -> dict[str, list[Any]]:
    """file -> digest: every library file a function of the forward came from or that defines a module class of
    the model (whole: the warm-up forward saw every function that ran, so no helper files are needed), the
    adapter's and the engine's files, the capture code."""
    from fxmeter.cost import deps

    named = deps.name_files([*sorted({s for g in graphs.values() for s in g.sources}), *deps.adapter_files(adapter)])
    named.update(deps.engine_files())
    named.update({n: p for n, p in ((n, deps.resolve(n)) for n in CAPTURE_FILES) if p is not None})
    files = deps.digests(named)
    deps.save_memo()
    return files


def encode(k: Mapping[str, Any], graphs: Mapping[str, JointGraph], files: Mapping[str, Any],
           seconds: float) -> bytes:
    """Header line + zlib-compressed payload (:class:`Unstorable` when a graph does not round-trip)."""
    payload = zlib.compress(orjson.dumps({name: graph_to_dict(g) for name, g in graphs.items()}), 6)
    header = {"magic": MAGIC, "format": FORMAT, "key": dict(k), "class": k.get("class", ""), "deps": dict(files),
              "rule_map": {},
              "payload_sha256": hashlib.sha256(payload).hexdigest(), "payload_bytes": len(payload),
              "seconds": round(seconds, 3)}
    return orjson.dumps(header) + b"\n" + payload


def decode(blob: bytes, k: Mapping[str, Any]) -> dict[str, JointGraph] | symstore.Stale:
    """The graphs in ``blob`` (a ValueError says why they are unusable; :class:`~fxmeter.cost.store.Stale`
    returned when their files changed here)."""
    head, sep, payload = blob.partition(b"\n")
    if not sep or len(head) > MAX_HEADER_BYTES:
        raise ValueError("no header line of sensible size")
    header = orjson.loads(head)
    if not isinstance(header, dict) or header.get("magic") != MAGIC or header.get("format") != FORMAT:
        raise ValueError("not an fxmeter training-step file of this format")
    if header.get("key") != dict(k):
        raise ValueError("key mismatch")
    if header.get("payload_bytes") != len(payload) or header.get("payload_sha256") != hashlib.sha256(payload).hexdigest():
        raise ValueError("payload hash mismatch (truncated or modified)")
    what = symstore.current(header)
    if what is not None:
        return symstore.Stale.of(header, what)
    inflate = zlib.decompressobj()
    raw = inflate.decompress(payload, MAX_PAYLOAD_BYTES)
    if inflate.unconsumed_tail or not inflate.eof:
        raise ValueError(f"payload inflates beyond {MAX_PAYLOAD_BYTES} bytes or is cut short")
    d = orjson.loads(raw)
    if not isinstance(d, dict) or set(d) != set(k.get("graphs") or ()):
        raise ValueError(f"payload holds graphs {sorted(d) if isinstance(d, dict) else '?'}, not the key's")
    return {name: graph_from_dict(g) for name, g in d.items()}


def load(k: Mapping[str, Any]) -> dict[str, JointGraph] | symstore.Stale | None:
    """The stored graphs of ``k``; a Stale naming what changed; None when missing or unusable (logged)."""
    path = entry_path(k)
    blob = symstore.read_entry(path, "training-step cache", LOG)
    if blob is None:
        return None
    try:
        return decode(blob, k)
    except Exception as e:  # a file anyone could have written: whatever is wrong with it, it is traced over
        LOG.warning("ignoring unusable training-step cache %s: %s: %s", path, type(e).__name__, e)
        return None


def save(k: Mapping[str, Any], graphs: Mapping[str, JointGraph], adapter: Any, seconds: float) -> Path | None:
    """Write the graphs atomically; a graph that does not round-trip or a failed write is a log line, never an error."""
    path = entry_path(k)
    try:
        blob = encode(k, graphs, dependencies(graphs, adapter), seconds)
    except (Unstorable, OSError, TypeError, ValueError) as e:  # orjson's errors are TypeError/ValueError
        LOG.info("not storing the training step (%s): it is traced again next time", e)
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fileio.atomic_write(path, blob)
    except OSError as e:
        LOG.warning("cannot write training-step cache %s (%s)", path, e.strerror)
        return None
    return path


def get(component: Component, dtype: str, dims: Mapping[str, int], *, lora_rank: int, lora_targets: tuple[str, ...],
        attention: str, cache: bool = True, progress: Any = None) -> dict[str, JointGraph]:
    """The training graphs of ``component`` at ``dims``: read from the cache, or traced now (and stored)."""
    import time

    from fxmeter.model.training import capture_training

    k = key(component, dtype, dims, lora_rank=lora_rank, lora_targets=lora_targets, attention=attention)
    got = load(k) if cache else None
    if isinstance(got, dict):
        return got
    cls = str(component.config.get("_class_name"))
    if progress:
        if isinstance(got, symstore.Stale):
            progress(f"{got.what} ({cls}): tracing forward + backward again, ~{max(got.seconds, 1):.0f} s")
        else:
            progress(f"tracing forward + backward of {cls} ({'LoRA rank ' + str(lora_rank) if lora_rank else 'full'}"
                     + ("; once per model, sample and LoRA setup; cached afterwards) ..." if cache else ") ..."))
    t0 = time.perf_counter()
    graphs = capture_training(dict(component.config), component.adapter, dtype, dict(dims), lora_rank=lora_rank,
                              lora_targets=lora_targets, attention=attention)
    if cache:
        save(k, graphs, component.adapter, time.perf_counter() - t0)
    return graphs


def clear() -> int:
    """Remove every stored training step; returns how many."""
    return symstore.remove_entries(symstore.cache_dir() / "training", ("*" + SUFFIX, ".*" + SUFFIX + ".*"), LOG)


def info() -> dict[str, Any]:
    d = symstore.cache_dir() / "training"
    entries = list(d.glob("*" + SUFFIX)) if d.is_dir() else []
    return {"training_dir": str(d), "training_entries": len(entries),
            "training_bytes": sum(p.stat().st_size for p in entries)}
