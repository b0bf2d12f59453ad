"""Licenses of a fine-tune: the base model's, the training data's, and whether they combine.

The base model's license comes from a table of the presets' models or from its card on the Hub;
a dataset's from what the run recorded, the bundled data's ``LICENSE.md``, or its card on the Hub.
A dataset license that is neither permissive nor the model's own is a conflict: the card then
declares ``license: other`` and a :class:`LicenseConflictWarning` is emitted.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field

from .paths import hub_endpoint, is_local_path

KNOWN_MODEL_LICENSES = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0",
    "mistralai/Mistral-7B-Instruct-v0.3": "apache-2.0",
    "Qwen/Qwen2.5-7B-Instruct": "apache-2.0",
    "meta-llama/Llama-3.1-8B-Instruct": "llama3.1",
    "google/gemma-2-9b-it": "gemma",
    "google/gemma-3-270m": "gemma",
}
"""Licenses of the presets' base models, so cards need no network for them."""

BUNDLED_DATA = {"bundled": "train.jsonl", "bundled-heldout": "heldout.jsonl"}
"""The packaged Italian data sets (``hf_ita_plugin/data/bundled``) by config name."""
BUNDLED_DATA_LICENSE = "cc-by-4.0"  # hf_ita_plugin/data/bundled/LICENSE.md

PERMISSIVE_LICENSES = {
    "apache-2.0", "mit", "bsd", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "cc-by-4.0", "cc-by-3.0",
    "cc-by-2.0", "unlicense", "odc-by", "pddl", "isc", "zlib", "bsl-1.0", "artistic-2.0",
}


class LicenseConflictWarning(UserWarning):
    """The base model's license and a training dataset's license do not combine cleanly."""


@dataclass
class LicenseDecision:
    """The license a card declares, whether it comes from a conflict, and where each license came from."""

    license: str
    license_name: str | None = None
    conflict: bool = False
    sources: dict[str, str] = field(default_factory=dict)  # what -> license ("unknown" when not found)


def is_hub_dataset(source: object) -> bool:
    """True when ``source`` (a ``data.train``/``data.eval`` value) is a Hub dataset id."""
    return isinstance(source, str) and source not in BUNDLED_DATA and not is_local_path(source) \
        and re.fullmatch(r"[\w.-]+/[\w.-]+", source) is not None


def dataset_license(source: str, m_data: dict, lookup: bool, endpoint: str | None, token: str | None) -> str:
    """License of a training data source (``unknown`` when it cannot be told); ``m_data``: metrics.json's ``data``."""
    licenses = m_data.get("licenses")
    if isinstance(licenses, dict) and isinstance(licenses.get(source), str):
        return licenses[source]
    if source in BUNDLED_DATA:
        return BUNDLED_DATA_LICENSE
    if is_hub_dataset(source) and lookup:
        return _hub_license(source, "dataset", endpoint, token) or "unknown"
    return "unknown"


def base_model_license(base: str, lookup: bool, endpoint: str | None, token: str | None) -> str:
    """License of the base model: the presets' table, else its card on the Hub (``unknown`` on failure)."""
    if base in KNOWN_MODEL_LICENSES:
        return KNOWN_MODEL_LICENSES[base]
    if lookup:
        return _hub_license(base, "model", endpoint, token) or "unknown"
    return "unknown"


def _hub_license(repo_id: str, repo_type: str, endpoint: str | None, token: str | None) -> str | None:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return None
    try:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=hub_endpoint(endpoint), token=token)
        info = api.repo_info(repo_id, repo_type=repo_type, timeout=10)
        card = getattr(info, "card_data", None)
        value = card.get("license") if card is not None else None
        return value if isinstance(value, str) else None
    except Exception:  # unreachable Hub, private or missing repo: the card says "unknown"
        return None


def decide_license(base_model: str, dataset_licenses: dict[str, str], *, model_license: str) -> LicenseDecision:
    """The card's license: the base model's, or ``other`` (with a warning) when a dataset's conflicts.

    A dataset license conflicts when it differs from the model's and is not permissive (share-alike,
    non-commercial, custom). Unknown licenses are reported in the card, not treated as conflicts.
    """
    sources = {f"base model {base_model}": model_license, **{f"dataset {k}": v for k, v in dataset_licenses.items()}}
    conflicting = sorted({lic for lic in dataset_licenses.values()
                          if lic not in ("unknown", model_license) and lic.lower() not in PERMISSIVE_LICENSES})
    if model_license == "unknown":
        return LicenseDecision(license="other", license_name="unknown", sources=sources)
    if not conflicting:
        return LicenseDecision(license=model_license, sources=sources)
    warnings.warn(
        f"conflitto di licenze / license conflict: base model {base_model} is {model_license}, "
        f"training data is {', '.join(conflicting)}; the card declares license 'other'",
        LicenseConflictWarning, stacklevel=3,
    )
    name = "-and-".join([model_license, *conflicting]).lower()
    return LicenseDecision(license="other", license_name=re.sub(r"[^a-z0-9.-]+", "-", name), conflict=True, sources=sources)
