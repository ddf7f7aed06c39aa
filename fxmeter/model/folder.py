"""A diffusers pipeline folder as ``save_pretrained`` writes it (without weights): ``fxmeter trace PATH``.

``fxmeter trace --config PATH`` reads a transformer config, or a model folder leniently (a stage
whose config is missing is left out until asked for).  ``fxmeter trace PATH`` /
``fxmeter observe PATH`` take a *pipeline* folder and check it whole, in pure Python (no torch
import), so that what is missing is one ``error:`` line before anything is built:

* ``model_index.json`` exists and names a pipeline class (``_class_name``);
* that class is a pipeline fxmeter knows how its transformer class runs (:data:`PIPELINES`, or
  an adapter's own ``pipelines`` attribute, for a zoo model's adapter);
* every model component it lists (not tokenizers, processors or the scheduler) has its
  ``<name>/config.json``, and a scheduler it lists has ``scheduler/scheduler_config.json``;
* the transformer's class has an adapter (the registry's error otherwise), and the pipeline class
  is the one that adapter's variant runs (a ``WanPipeline`` folder with an image-to-video
  transformer is refused, naming ``WanImageToVideoPipeline``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fxmeter.errors import ConfigError

if TYPE_CHECKING:
    from fxmeter.model.adapters.base import Adapter
    from fxmeter.model.registry import ResolvedModel

#: the diffusers pipeline each adapter variant (its ``name``; else its ``family``) is driven by
PIPELINES: dict[str, str] = {
    "wan": "WanPipeline",
    "wan-ti2v": "WanPipeline",
    "wan-experts": "WanPipeline",
    "wan-i2v": "WanImageToVideoPipeline",
    "wan-i2v-experts": "WanImageToVideoPipeline",
    "flux": "FluxPipeline",
    "sd3": "StableDiffusion3Pipeline",
    "hunyuan_video": "HunyuanVideoPipeline",
    "cogvideox": "CogVideoXPipeline",
    "ltx_video": "LTXPipeline",
    # the zoo's models (fxmeter/model/zoo/), by adapter name
    "flux2": "Flux2Pipeline",
    "qwen_image": "QwenImagePipeline",
    "z_image": "ZImagePipeline",
    "ltx2": "LTX2Pipeline",
    "wan-vace": "WanVACEPipeline",
    "skyreels-v2": "SkyReelsV2Pipeline",
    "sana": "SanaPipeline",
    "sana_video": "SanaVideoPipeline",
    "cogview4": "CogView4Pipeline",
    "chroma": "ChromaPipeline",
    "allegro": "AllegroPipeline",
    "cosmos-predict2": "Cosmos2TextToImagePipeline",
    "cosmos-predict2-v2w": "Cosmos2VideoToWorldPipeline",
}

#: component names / class suffixes that are not models (no config.json of their own)
_NOT_MODELS = ("tokenizer", "image_processor", "feature_extractor", "processor")
_NOT_MODEL_CLASSES = ("Tokenizer", "TokenizerFast", "Processor", "ImageProcessor", "ImageProcessorPil",
                      "FeatureExtractor")


def pipelines_for(adapter: Adapter) -> tuple[str, ...]:
    """The pipeline classes that drive ``adapter``'s variant: its own ``pipelines`` attribute (a zoo
    adapter may declare one), else :data:`PIPELINES` by name, then by family."""
    own = getattr(adapter, "pipelines", None)
    if isinstance(own, (list, tuple)) and own:
        return tuple(str(p) for p in own)
    name = PIPELINES.get(adapter.name) or PIPELINES.get(adapter.family)
    return (name,) if name else ()


def known_pipelines() -> tuple[str, ...]:
    """Every pipeline class fxmeter knows (sorted)."""
    from fxmeter.model.adapters import ADAPTERS

    names = set(PIPELINES.values())
    for a in ADAPTERS.values():
        names.update(pipelines_for(a))
    return tuple(sorted(names))


def looks_like_path(arg: str) -> bool:
    """True when a MODEL argument is a path rather than a model id (a registered id always wins)."""
    from fxmeter.model.registry import MODELS

    if arg in MODELS:
        return False
    return "/" in arg or "\\" in arg or arg in (".", "..") or arg.endswith(".json") or Path(arg).is_dir()


def _index(folder: Path) -> dict[str, Any]:
    from fxmeter.model.registry import _read_json

    return _read_json(folder / "model_index.json", "model index")


def check_folder(path: str | Path) -> Path:
    """The pipeline folder of ``path`` (a folder or its model_index.json), checked whole (see the
    module docstring); a ConfigError naming what is missing otherwise."""
    p = Path(path)
    if p.name == "model_index.json" and p.is_file():
        p = p.parent
    if not p.exists():
        raise ConfigError(f"{path}: no such model folder (a folder with model_index.json, as "
                          "DiffusionPipeline.save_pretrained writes it)")
    if not p.is_dir():
        raise ConfigError(f"{path} is a file, not a pipeline folder; a lone config.json goes with --config")
    if not (p / "model_index.json").is_file():
        raise ConfigError(f"{p}: no model_index.json (a pipeline folder as DiffusionPipeline.save_pretrained writes "
                          "it: model_index.json and <component>/config.json); a lone transformer config.json goes with "
                          "--config")
    index = _index(p)
    cls = index.get("_class_name")
    if not isinstance(cls, str) or not cls:
        raise ConfigError(f"{p / 'model_index.json'} names no pipeline class ('_class_name')")
    known = known_pipelines()
    if cls not in known:
        raise ConfigError(f"{p / 'model_index.json'}: unknown pipeline class {cls!r}; fxmeter runs: {', '.join(known)}")
    for name, v in index.items():
        if name.startswith("_") or not (isinstance(v, (list, tuple)) and len(v) == 2 and v[1] is not None):
            continue
        ccls = str(v[1])
        if name.startswith(_NOT_MODELS) or ccls.endswith(_NOT_MODEL_CLASSES):
            continue
        file = "scheduler_config.json" if name == "scheduler" else "config.json"
        if not (p / name / file).is_file():
            raise ConfigError(f"model folder {p}: model_index.json lists {name!r} ({ccls}) but {name}/{file} is missing")
    return p


def check_pipeline(model_adapter: Adapter, folder: Path) -> None:
    """The folder's pipeline class is the one the transformer's adapter variant runs."""
    cls = _index(folder).get("_class_name")
    want = pipelines_for(model_adapter)
    if want and cls not in want:
        raise ConfigError(f"{folder / 'model_index.json'} names {cls}, but its transformer config is a "
                          f"{model_adapter.diffusers_class} that {' or '.join(want)} runs ({model_adapter.name}); "
                          "fix _class_name or the transformer config")


def resolve_folder(path: str | Path) -> ResolvedModel:
    """The model of a pipeline folder, checked whole (:func:`check_folder`, then the registry's reading
    and :func:`check_pipeline`)."""
    from fxmeter.model.registry import resolve_model

    folder = check_folder(path)
    model = resolve_model(None, folder)
    check_pipeline(model.adapter, folder)
    if model.missing:  # check_folder saw every listed config; a stage config absent is still named here
        raise ConfigError(next(iter(model.missing.values())))
    return model
