"""Chat with a fine-tuned model: streaming replies from llama.cpp (GGUF) or transformers + peft.

Sources (:func:`load_chat_model`):

- ``None`` / ``"embedded"``: the embedded SmolLM2-135M-Instruct GGUF, through llama.cpp (CPU);
- a GGUF file, or a Hub repo holding ``*.gguf`` files (``owner/name`` or ``owner/name:file.gguf``):
  llama.cpp, with the chat template stored in the GGUF;
- a peft adapter (a training OUTPUT_DIR, its ``adapter/`` folder, or a Hub adapter repo): transformers
  + peft on the base model, with the tokenizer and chat template the adapter was trained with (GPU
  when there is one, else CPU);
- a full transformers model folder or repo.

Every reply is a generator of text chunks; the conversation is the usual list of
``{"role", "content"}`` messages, with the Italian default system prompt unless another is given.

Example::

    model = load_chat_model()                       # the embedded default, llama.cpp on CPU
    for chunk in model.reply([], "Qual è la capitale d'Italia?", params=SamplingParams(max_new_tokens=64)):
        print(chunk, end="", flush=True)
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError, HfItaError, HubError, ModelError, bilingual
from ..hub.paths import is_repo_id, validate_repo_id
from ..rundir import RunDir

EMBEDDED_SOURCE = "embedded"
GGUF_PREFERENCE = ("Q4_K_M", "Q8_0", "Q5_K_M", "Q4_K_S", "Q6_K", "Q4_0", "Q4_1", "Q5_0", "F16", "BF16", "F32")
"""Which GGUF file of a repo is chosen when several are present (first match wins)."""

SAMPLING_BOUNDS: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_k": (0, 200),
    "top_p": (0.05, 1.0),
    "repetition_penalty": (1.0, 2.0),
    "max_new_tokens": (1, 2048),
}
_GGUF_FILE_RE = re.compile(r"^[^/\s][^\s]*\.gguf$", re.IGNORECASE)
_SOURCE_HINT = "a Hub repo id owner/name (adapter or GGUF), owner/name:file.gguf, or 'embedded'"


def default_system_prompt() -> str:
    """The Italian default system prompt of the template registry."""
    from ..templates import DEFAULT_SYSTEM_PROMPT

    return DEFAULT_SYSTEM_PROMPT


@dataclass(frozen=True)
class SamplingParams:
    """Sampling controls (``temperature == 0`` means greedy decoding)."""

    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    max_new_tokens: int = 256
    seed: int | None = None

    def validated(self) -> "SamplingParams":
        """Return self, or raise ConfigError naming the first value outside :data:`SAMPLING_BOUNDS`."""
        for name, (low, high) in SAMPLING_BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise ConfigError(f"{name}: serve un numero / must be a number, got {value!r}")
            if name in ("top_k", "max_new_tokens") and int(value) != value:
                raise ConfigError(f"{name}: serve un intero / must be an integer, got {value!r}")
            if not low <= value <= high:
                raise ConfigError(f"{name} = {value} fuori intervallo / out of range: between {low:g} and {high:g}")
        return self


def normalize_history(history: list[Any] | None) -> list[dict[str, str]]:
    """Chat history as plain ``{"role", "content"}`` text messages (accepts Gradio's message dicts)."""
    out = []
    for i, item in enumerate(history or []):
        if not isinstance(item, dict) or item.get("role") not in ("user", "assistant", "system"):
            raise ConfigError(bilingual("atteso un messaggio {role, content}", f"expected a {{role, content}} message, got {item!r:.80}",
                                        where=f"history[{i}]"))
        content = item.get("content")
        if isinstance(content, list):  # Gradio 6 may send [{"type": "text", "text": ...}, ...]
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            continue  # files and components are not part of a text conversation
        out.append({"role": item["role"], "content": content})
    return out


def build_messages(history: list[Any] | None, user_message: str, system_prompt: str | None = None) -> list[dict[str, str]]:
    """System prompt (if any) + history + the new user message, checked."""
    text = (user_message or "").strip()
    if not text:
        raise ConfigError("il messaggio è vuoto / the message is empty")
    messages = [m for m in normalize_history(history) if m["role"] != "system"]
    system = default_system_prompt() if system_prompt is None else system_prompt.strip()
    head = [{"role": "system", "content": system}] if system else []
    return [*head, *messages, {"role": "user", "content": text}]


class ChatModel:
    """A loaded model that streams chat replies. Subclasses implement :meth:`stream`."""

    engine: str = ""
    source: str = ""
    template: str = ""
    device: str = "cpu"

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one generation at a time per loaded model

    def stream(self, messages: list[dict[str, str]], params: SamplingParams) -> Iterator[str]:
        raise NotImplementedError

    def reply(self, history: list[Any] | None, user_message: str, *, system_prompt: str | None = None,
              params: SamplingParams | None = None) -> Iterator[str]:
        """Stream the answer to ``user_message`` after ``history``, as text chunks."""
        params = (params or SamplingParams()).validated()
        messages = build_messages(history, user_message, system_prompt)
        with self._lock:
            yield from self.stream(messages, params)

    def describe(self) -> str:
        return f"{self.source} · {self.engine} ({self.device}) · template: {self.template}"


class LlamaCppChat(ChatModel):
    """A GGUF model through llama-cpp-python, with the chat template stored in the file."""

    engine = "llama.cpp"

    def __init__(self, gguf_path: str | Path, *, source: str | None = None, n_ctx: int = 2048, n_threads: int | None = None):
        super().__init__()
        from ..gguf.quantize import require_llama_cpp

        llama_cpp = require_llama_cpp()
        gguf_path = Path(gguf_path)
        if not gguf_path.is_file():
            raise ModelError(f"{gguf_path}: file GGUF mancante / GGUF file not found")
        try:
            self.llm = llama_cpp.Llama(model_path=str(gguf_path), n_ctx=n_ctx, n_threads=n_threads or _cpu_threads(),
                                       verbose=False)
        except ValueError as exc:
            raise ModelError(f"{gguf_path}: llama.cpp non riesce a caricarlo / llama.cpp cannot load it ({exc})") from None
        self.path = gguf_path
        self.source = source or gguf_path.name
        self.template = _template_label(self.llm.metadata.get("tokenizer.chat_template"), "GGUF")

    def stream(self, messages, params):
        kwargs = dict(messages=messages, stream=True, max_tokens=int(params.max_new_tokens),
                      temperature=float(params.temperature), top_k=int(params.top_k), top_p=float(params.top_p),
                      repeat_penalty=float(params.repetition_penalty))
        if params.seed is not None:
            kwargs["seed"] = int(params.seed)
        for chunk in self.llm.create_chat_completion(**kwargs):
            text = chunk["choices"][0]["delta"].get("content")
            if text:
                yield text

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))


class TransformersChat(ChatModel):
    """A transformers model (optionally with a peft adapter on top), streamed with TextIteratorStreamer."""

    engine = "transformers"

    def __init__(self, model_dir: str | Path, *, adapter_dir: str | Path | None = None, source: str | None = None,
                 device: str = "auto", token: str | bool | None = None, template: str | None = None):
        super().__init__()
        from ..models.loader import attach_adapter, load_base, load_tokenizer
        from ..templates import template_name
        from .generate import stop_token_ids

        self.device = _pick_device(device)
        tok_dir = adapter_dir if adapter_dir and (Path(adapter_dir) / "tokenizer_config.json").is_file() else model_dir
        self.tokenizer = load_tokenizer(model_dir, adapter_dir=adapter_dir, token=token)
        model = load_base(model_dir, dtype="auto" if self.device == "cuda" else "float32", token=token,
                          allow_pickle=True, what=f"modello / model {str(model_dir)!r}")
        if adapter_dir is not None:
            model = attach_adapter(model, adapter_dir, tokenizer=self.tokenizer)
        self.model = model.to(self.device).eval()
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelError(f"{tok_dir}: il tokenizer non ha un chat template / the tokenizer has no chat template",
                             hint="train with hf-ita (it saves the template with the adapter) or pick a chat model")
        self.source = source or str(adapter_dir or model_dir)
        self.template = template or template_name(self.tokenizer) or _template_label(self.tokenizer.chat_template, "tokenizer")
        self._eos_ids = stop_token_ids(self.model, self.tokenizer)

    def stream(self, messages, params):
        from .generate import stream

        greedy = params.temperature == 0
        yield from stream(self.model, self.tokenizer, messages, max_new_tokens=params.max_new_tokens,
                          temperature=None if greedy else params.temperature, top_k=params.top_k, top_p=params.top_p,
                          repetition_penalty=params.repetition_penalty, seed=params.seed, stop_ids=self._eos_ids)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


# ---------------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class ResolvedSource:
    """What a user's source string points to, on local disk."""

    kind: str  # "gguf", "adapter" or "model"
    path: Path
    label: str
    template: str | None = None


def parse_source(source: str | None, *, allow_local: bool = True) -> tuple[str, str | None]:
    """Classify a source string: ``("embedded", None)``, ``("local", path)`` or ``("hub", repo[:file])``.

    A malformed Hub id raises :class:`HubError` (:func:`hf_ita_plugin.hub.paths.validate_repo_id`).
    """
    text = (source or "").strip()
    if text in ("", EMBEDDED_SOURCE, "predefinito", "default"):
        return "embedded", None
    if allow_local and (text.startswith(("/", "./", "../", "~")) or Path(text).expanduser().exists()):
        path = Path(text).expanduser()
        if not path.exists():
            raise ModelError(f"{text}: percorso inesistente / path does not exist")
        return "local", str(path)
    repo, sep, filename = text.partition(":")  # owner/name:file.gguf -> the file part first
    what = "modello non valido / invalid model"
    if sep and not _GGUF_FILE_RE.match(filename):
        raise HubError(f"{what}: dopo ':' serve un file .gguf / expected a .gguf file name after ':' in {text!r}",
                       hint=_SOURCE_HINT)
    try:
        repo = validate_repo_id(repo, what=what)
    except HubError as exc:
        raise HubError(exc.message, hint=_SOURCE_HINT) from None
    return "hub", f"{repo}{sep}{filename}"


def resolve_local(path: str | Path, *, prefer_gguf: bool = False) -> ResolvedSource:
    """Classify a local GGUF file, adapter / OUTPUT_DIR (with its ``gguf/``), or model folder.

    With ``prefer_gguf`` (CPU) a folder's GGUF files win over its adapter or model.
    """
    from ..models.resolve import find_adapter_dir

    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelError(f"{path}: serve un file .gguf / expected a .gguf file")
        return ResolvedSource("gguf", path, path.name)
    ggufs = sorted(str(g.relative_to(path)) for g in [*path.glob("*.gguf"), *RunDir(path).gguf_dir.glob("*.gguf")])
    adapter = find_adapter_dir(path)
    if ggufs and (prefer_gguf or (adapter is None and not (path / "config.json").is_file())):
        chosen = pick_gguf(ggufs)
        return ResolvedSource("gguf", path / chosen, f"{path}/{chosen}")
    if adapter is not None:
        return ResolvedSource("adapter", adapter, str(path), _trained_template(adapter))
    if (path / "config.json").is_file():
        return ResolvedSource("model", path, str(path))
    raise ModelError(f"{path}: né GGUF, né adapter, né modello / neither a GGUF, an adapter nor a model folder",
                     hint="expected *.gguf, adapter_config.json (or adapter/), or config.json")


def pick_gguf(names: list[str]) -> str:
    """The preferred GGUF among file names (see :data:`GGUF_PREFERENCE`)."""
    ggufs = [n for n in names if n.lower().endswith(".gguf")]
    if not ggufs:
        raise ModelError("nessun file .gguf / no .gguf file")
    for quant in GGUF_PREFERENCE:
        pattern = re.compile(rf"(^|[._-]){quant}($|[._-])", re.IGNORECASE)
        for name in sorted(ggufs):
            if pattern.search(Path(name).stem):
                return name
    return sorted(ggufs)[0]


_ADAPTER_FILES = (".json", ".safetensors", ".jinja", ".txt", ".model", ".yaml")


def resolve_hub(spec: str, *, token: str | bool | None = None, endpoint: str | None = None,
                cache_dir: str | Path | None = None, prefer_gguf: bool = False) -> ResolvedSource:
    """Download what a Hub repo holds (a GGUF file, an adapter or a model) and classify it.

    A repo published by ``hf-ita push`` may hold the adapter at its root and GGUF files in
    ``gguf/``: with ``prefer_gguf`` (CPU) a GGUF file is used, else the adapter.
    """
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    repo_id, _, filename = spec.partition(":")
    api = HfApi(endpoint=endpoint, token=token)
    kwargs = dict(repo_id=repo_id, token=token, endpoint=endpoint, cache_dir=str(cache_dir) if cache_dir else None)
    try:
        files = api.list_repo_files(repo_id)
        if filename:
            if filename not in files:
                raise ModelError(f"{repo_id}: il file {filename!r} non esiste / file not found in the repo")
            return ResolvedSource("gguf", Path(hf_hub_download(filename=filename, **kwargs)), spec)
        ggufs = [f for f in files if f.lower().endswith(".gguf")]
        has_adapter = RunDir.ADAPTER_CONFIG in files or f"{RunDir.ADAPTER}/{RunDir.ADAPTER_CONFIG}" in files
        if ggufs and (prefer_gguf or not (has_adapter or "config.json" in files)):
            chosen = pick_gguf(ggufs)
            return ResolvedSource("gguf", Path(hf_hub_download(filename=chosen, **kwargs)), f"{repo_id}:{chosen}")
        if has_adapter:
            wanted = [f for f in files if f.endswith(_ADAPTER_FILES) and ("/" not in f or f.startswith(f"{RunDir.ADAPTER}/"))]
            local = Path(snapshot_download(allow_patterns=wanted, **kwargs))
            adapter = RunDir(local).adapter_dir if RunDir(local).has_adapter() else local
            return ResolvedSource("adapter", adapter, repo_id, _trained_template(adapter))
        if "config.json" in files:
            return ResolvedSource("model", Path(snapshot_download(**kwargs)), repo_id)
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        italian, english = {401: ("accesso negato", "access denied (sign in?)"), 403: ("accesso negato", "access denied"),
                            404: ("repo non trovato", "repo not found")}.get(status, (f"errore HTTP {status}", f"HTTP {status}"))
        raise ModelError(bilingual(italian, english, where=repo_id)) from None
    raise ModelError(f"{repo_id}: il repo non contiene GGUF, adapter né modello / holds no GGUF, adapter or model")


def load_chat_model(source: str | None = None, *, token: str | bool | None = None, endpoint: str | None = None,
                    device: str = "auto", engine: str = "auto", allow_local: bool = True,
                    cache_dir: str | Path | None = None, n_threads: int | None = None) -> ChatModel:
    """Load ``source`` (see the module docstring) into a :class:`ChatModel`.

    ``engine``: ``auto`` (llama.cpp for GGUF files, preferred on CPU when a repo or folder has both
    GGUF files and an adapter; transformers + peft on GPU), ``llama.cpp`` or ``transformers``.
    ``token`` reads private Hub repos (the Space passes the signed-in user's token, or ``False``
    when signed out so that no locally saved token is used); ``allow_local`` lets ``source`` be a
    path on this machine (off in the Space).
    """
    if engine not in ("auto", "llama.cpp", "transformers"):
        raise ConfigError(bilingual("engine deve essere auto, llama.cpp o transformers",
                                    f"engine must be auto, llama.cpp or transformers, got {engine!r}"))
    kind, value = parse_source(source, allow_local=allow_local)
    if kind == "embedded":
        from ..models.embedded import EMBEDDED_HUB_ID, embedded_gguf_path

        return LlamaCppChat(embedded_gguf_path(), source=f"{EMBEDDED_HUB_ID} (embedded, Q4_1)", n_threads=n_threads)
    prefer_gguf = engine == "llama.cpp" or (engine == "auto" and _pick_device(device) == "cpu")
    if kind == "local":
        resolved = resolve_local(value, prefer_gguf=prefer_gguf)
    else:
        resolved = resolve_hub(value, token=token, endpoint=endpoint, cache_dir=cache_dir, prefer_gguf=prefer_gguf)
    if resolved.kind != "gguf" and engine == "llama.cpp":
        raise ModelError(f"{resolved.label}: nessun file GGUF per llama.cpp / no GGUF file for llama.cpp")
    if resolved.kind == "gguf":
        if engine == "transformers":
            raise ModelError(f"{resolved.label}: solo GGUF, serve llama.cpp / only GGUF here, use engine llama.cpp")
        return LlamaCppChat(resolved.path, source=resolved.label, n_threads=n_threads)
    if resolved.kind == "model":
        return TransformersChat(resolved.path, source=resolved.label, device=device, token=token)
    base = _base_model_dir(resolved.path, token=token)
    return TransformersChat(base, adapter_dir=resolved.path, source=resolved.label, device=device, token=token,
                            template=resolved.template)


def _base_model_dir(adapter_dir: Path, *, token: str | bool | None) -> str | Path:
    """The adapter's base model: a local checkpoint if one is known, else its Hub id (downloaded)."""
    from ..models.resolve import read_adapter_config, resolve_base_dir

    try:
        return resolve_base_dir(adapter_dir)
    except ModelError:
        base = read_adapter_config(adapter_dir).get("base_model_name_or_path")
        if not base or not is_repo_id(base):
            raise
        return base  # transformers downloads it (with the user's token)


def _trained_template(adapter_dir: Path) -> str | None:
    """The template name a run trained with, from its metrics.json / run_config.yaml, if present."""
    for run in (RunDir.of_adapter(adapter_dir), RunDir(adapter_dir)):
        try:
            metrics = run.read_metrics()
        except (HfItaError, OSError):  # an unreadable metrics.json only loses this hint
            metrics = None
        if metrics is not None and metrics.template:
            return metrics.template
    return None


def _template_label(source: str | None, where: str) -> str:
    from ..templates import registry_name_of

    if not source:
        return f"nessuno / none ({where})"
    name = registry_name_of(source)
    if name:
        return name
    if "<|im_start|>" in source:
        return f"ChatML ({where})"
    return f"proprio del modello / model's own ({where})"


def _pick_device(device: str) -> str:
    if device != "auto":
        if device not in ("cpu", "cuda"):
            raise ConfigError(bilingual("device deve essere auto, cpu o cuda", f"device must be auto, cpu or cuda, got {device!r}"))
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _cpu_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


__all__ = [
    "ChatModel", "LlamaCppChat", "TransformersChat", "SamplingParams", "SAMPLING_BOUNDS", "EMBEDDED_SOURCE",
    "build_messages", "normalize_history", "load_chat_model", "parse_source", "resolve_local", "resolve_hub",
    "pick_gguf", "default_system_prompt",
]
