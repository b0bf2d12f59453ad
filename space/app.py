"""hf-ita Space: fine-tune an open LLM for Italian on Hugging Face Jobs, follow the run, chat with the result.

Two tabs, Italian first with English alongside:

- **Addestra (Train)**: sign in with Hugging Face (OAuth). The signed-in user's token is the only
  one used, for every Hub and Jobs call: never the Space owner's. Pick a preset or any model id, a
  dataset (Hub id, the bundled Italian data, or an uploaded JSONL/CSV checked at once and pushed to
  a private dataset repo of the user), hyperparameters, hardware (with price per hour; by default
  the cheapest GPU with the preset's ``model.gpu_memory_gb``, never a CPU for a large model), output
  repo and visibility. Launch starts an HF Job (:mod:`hf_ita_plugin.jobs.client`, the same launcher
  as ``hf-ita launch``) and says what it costs at most (price x timeout), or why the Hub refused it
  (402 / 403 / 429, with any dataset uploaded for it removed); its stage is refreshed on a timer,
  its logs stream live once it leaves SCHEDULING, a cancel shows "cancel requested" until the Hub
  reports CANCELED, earlier runs are listed by label, and the published repo is linked when done.
- **Chat**: the embedded default model, or an adapter / GGUF repo, streamed through llama.cpp (GGUF)
  or transformers + peft (:mod:`hf_ita_plugin.inference.chat`), with the Italian default system prompt and
  sampling controls.

Run locally: ``python space/app.py`` (Gradio mocks the sign-in with your own ``hf auth login``; without a
login the app still starts, chat works, and the sign-in button is disabled with a note saying what it needs).
"""

from __future__ import annotations


import contextlib
import hashlib
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import gradio as gr

from hf_ita_plugin.inference.chat import SAMPLING_BOUNDS, ChatModel, SamplingParams, default_system_prompt, load_chat_model
from hf_ita_plugin.config import RunConfig, list_presets
from hf_ita_plugin.hub.licenses import KNOWN_MODEL_LICENSES
from hf_ita_plugin.models.embedded import embedded_model
from hf_ita_plugin.errors import ConfigError, HfItaError
from hf_ita_plugin.utils.env import apply_runtime_defaults
from hf_ita_plugin.jobs.client import JobRun, JobsClient, cost_line, validate_job_id, validate_repo_id
from hf_ita_plugin.jobs.token_life import cap_timeout

DEFAULT_PRESET = "qwen2.5-7b"
DATA_HUB, DATA_UPLOAD, DATA_BUNDLED = "Dataset del Hub (Hub dataset)", "Carica un file (upload)", "Dati italiani inclusi (bundled)"
VIS_PRIVATE, VIS_PUBLIC = "Privato (private)", "Pubblico (public)"
EMBEDDED_CHOICE = "Modello incorporato (embedded SmolLM2-135M)"
GEMMA_NOTICE = ("ℹ️ Gemma è fornito secondo i [Termini d'uso di Gemma](https://ai.google.dev/gemma/terms), che valgono "
                "anche per il modello che addestri. *Gemma is provided under and subject to the Gemma Terms of Use "
                "(https://ai.google.dev/gemma/terms); they apply to the model you train too.*")
DATASET_HINT = "NAMESPACE/NOME di un dataset del Hub / a Hub dataset id, es. / e.g. mario/domande-ita"
LOG_LINES_SHOWN = 400
STATUS_REFRESH_S = 3.0

HYPERPARAMETERS: dict[str, tuple[str, float, float]] = {
    # UI name: (config key, min, max)
    "epochs": ("training.num_epochs", 0.1, 20),
    "learning_rate": ("training.learning_rate", 1e-6, 1e-3),
    "lora_r": ("lora.r", 1, 256),
    "lora_alpha": ("lora.alpha", 1, 1024),
    "max_seq_length": ("training.max_seq_length", 128, 16384),
    "batch_size": ("training.per_device_batch_size", 1, 128),
    "grad_accum": ("training.gradient_accumulation_steps", 1, 128),
}
_INT_PARAMS = {"lora_r", "lora_alpha", "max_seq_length", "batch_size", "grad_accum"}
NO_EVALUATION = ("data.eval=null", "evaluation.before_after=false", "evaluation.bpb_text=null",
                 "evaluation.response_loss=false", "evaluation.answer_quality=false")
"""Overrides when the "evaluate" box is unticked: no held-out measurement before or after (a shorter, cheaper job)."""


def _ok(text: str) -> str:
    return f"✅ {text}"


_MD_SPECIAL = re.compile(r"([\\*_<>\[\]])")
_CLI_HINT = re.compile(r"`?(hf-ita|hf auth|huggingface-cli)\b|--[a-z]")


def md_escape(text: str) -> str:
    """``text`` as literal Markdown: ``_`` and ``*`` stay characters (no italics), code spans are kept."""
    parts = str(text).split("`")
    return "`".join(part if i % 2 else _MD_SPECIAL.sub(r"\\\1", part) for i, part in enumerate(parts))


def _err(exc: BaseException | str, hint: str | None = None) -> str:
    """An error line for the page: the message as literal Markdown, with a hint that works in the Space
    (``hint`` replaces the exception's own; CLI commands and flags are dropped, a Space user has no shell)."""
    if isinstance(exc, HfItaError):
        text, own_hint = exc.message, exc.hint
    elif isinstance(exc, BaseException):  # a library's raw text: say what failed in both languages, no traceback
        text, own_hint = f"errore inatteso / unexpected error ({type(exc).__name__}): {exc}", None
    else:
        text, own_hint = str(exc), None
    hint = hint or (own_hint if own_hint and not _CLI_HINT.search(own_hint) else None)
    line = f"❌ {md_escape(text)}"
    return line + (f"  \n💡 suggerimento / hint: {md_escape(hint)}" if hint else "")


def _token_of(oauth_token: gr.OAuthToken | None) -> str | None:
    return oauth_token.token if oauth_token is not None and oauth_token.token else None


def _timeout_for(oauth_token: gr.OAuthToken | None):
    """The default timeout, capped to the sign-in token's life (``hf_oauth_expiration_minutes``)."""
    return cap_timeout(None, getattr(oauth_token, "expires_at", None))


class SpaceBackend:
    """Everything the UI does, as plain methods (the Gradio handlers are thin wrappers)."""

    def __init__(self, endpoint: str | None = None, *, chat_cache_size: int = 2):
        self.endpoint = endpoint
        self._chat_models: OrderedDict[tuple[str, str | None], ChatModel] = OrderedDict()
        self._chat_lock = threading.Lock()
        self._chat_cache_size = chat_cache_size
        self._cancel_requested: set[str] = set()
        self.follow_poll_s = 5.0
        """Seconds between stage checks while a followed job is SCHEDULING."""

    def client(self, oauth_token: gr.OAuthToken | None) -> JobsClient:
        """A Jobs client with the signed-in user's token only (no fallback on the Space's token)."""
        return JobsClient(_token_of(oauth_token), endpoint=self.endpoint, allow_local_token=False)

    def username(self, oauth_token: gr.OAuthToken | None) -> str | None:
        """The signed-in user's name, asked of the Hub with their own token (None when signed out)."""
        if _token_of(oauth_token) is None:
            return None
        try:
            return self.client(oauth_token).username
        except HfItaError:
            return None

    # ------------------------------------------------------------------ train: inputs
    def hardware_choices(self) -> list[tuple[str, str]]:
        try:
            return [(h.label, h.name) for h in JobsClient(None, endpoint=self.endpoint, allow_local_token=False).hardware()]
        except HfItaError:
            return [("a10g-small", "a10g-small")]

    def default_flavor(self, preset: str) -> str | None:
        """The cheapest GPU flavor fitting ``preset``'s ``model.gpu_memory_gb`` (never the CPU first entry)."""
        try:
            client = JobsClient(None, endpoint=self.endpoint, allow_local_token=False)
            return client.pick_flavor(RunConfig.from_preset(preset)).name
        except HfItaError:
            return None

    def check_upload(self, file_path: str | None, oauth_token: gr.OAuthToken | None) -> tuple[str, str]:
        """Validate an uploaded file at once; push it to a private dataset repo when signed in."""
        if not file_path:
            return "", ""
        from hf_ita_plugin.data import load_conversations

        try:
            conversations = load_conversations(file_path)
        except HfItaError as exc:
            return _err(f"{Path(file_path).name}: {exc}"), ""
        summary = f"{Path(file_path).name}: {len(conversations)} conversazioni valide / valid conversations"
        if _token_of(oauth_token) is None:
            return _ok(summary + " — accedi per caricarlo nel tuo dataset privato / sign in to push it to your private dataset"), ""
        try:
            repo = self.push_dataset(file_path, oauth_token)
        except HfItaError as exc:
            return _err(exc), ""
        return _ok(summary + f" — caricato nel dataset privato / pushed to the private dataset `{repo}`"), repo

    def push_dataset(self, file_path: str, oauth_token: gr.OAuthToken | None) -> str:
        client = self.client(oauth_token)
        return client.upload_dataset(file_path, self._data_repo(client, file_path), private=True)

    def dataset_for_run(self, file_path: str, oauth_token: gr.OAuthToken | None):
        """:meth:`push_dataset` as a context that deletes the new repo again if the launch fails."""
        client = self.client(oauth_token)
        return client.dataset_for_run(file_path, self._data_repo(client, file_path), private=True)

    @staticmethod
    def _data_repo(client: JobsClient, file_path: str) -> str:
        digest = hashlib.sha256(Path(file_path).read_bytes()).hexdigest()[:10]
        return f"{client.username}/hf-ita-data-{digest}"

    def build_config(self, preset: str, model_id: str, data_source: str, dataset_id: str, values: dict[str, Any],
                     max_steps: Any, evaluate: bool = True) -> RunConfig:
        """The RunConfig the form describes, every value checked with a message naming the field."""
        if preset not in list_presets():
            raise ConfigError(f"preset sconosciuto / unknown preset {preset!r}", hint=", ".join(list_presets()))
        overrides = []
        model_id = (model_id or "").strip()
        if model_id:
            overrides.append(f"model.name_or_path={validate_repo_id(model_id, what='modello / model')}")
        for name, (key, low, high) in HYPERPARAMETERS.items():
            value = values.get(name)
            if value is None or value == "":
                raise ConfigError(f"{name}: valore mancante / missing value")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{name}: serve un numero / must be a number, got {value!r}") from None
            if not low <= number <= high:
                raise ConfigError(f"{name} = {value} fuori intervallo / out of range: between {low:g} and {high:g}")
            if name in _INT_PARAMS:
                if number != int(number):
                    raise ConfigError(f"{name}: serve un intero / must be an integer, got {value!r}")
                number = int(number)
            overrides.append(f"{key}={number!r}")
        try:
            steps = int(float(max_steps if max_steps not in (None, "") else -1))
        except (TypeError, ValueError):
            raise ConfigError(f"max_steps: serve un intero / must be an integer, got {max_steps!r}") from None
        if steps == 0 or steps < -1 or steps > 100_000:
            raise ConfigError(f"max_steps = {steps}: usa -1 (epoche) o da 1 a 100000 / use -1 (epochs) or 1..100000")
        overrides.append(f"training.max_steps={steps}")
        if not evaluate:
            overrides.extend(NO_EVALUATION)
        dataset_id = (dataset_id or "").strip()
        if data_source == DATA_HUB:
            try:
                overrides.append(f"data.train={validate_repo_id(dataset_id, what='dataset')}")
            except HfItaError as exc:
                raise ConfigError(exc.message, hint=DATASET_HINT) from None
        elif dataset_id:  # never train on other data than the id typed: refuse the mismatch
            raise ConfigError(f"hai indicato il dataset {dataset_id!r} ma l'origine dei dati è {data_source!r} / you typed "
                              f"the dataset {dataset_id!r} but the data source is not the Hub",
                              hint=f"scegli / choose {DATA_HUB!r}, oppure svuota il campo / or clear the field")
        elif data_source == DATA_BUNDLED:
            overrides.append("data.train=bundled")
        elif data_source != DATA_UPLOAD:
            raise ConfigError(f"origine dei dati sconosciuta / unknown data source {data_source!r}")
        return RunConfig.from_preset(preset, overrides)

    # ------------------------------------------------------------------ train: actions
    def launch(self, preset, model_id, data_source, dataset_id, upload_path, uploaded_repo, values, max_steps, flavor,
               output_repo, visibility, oauth_token, evaluate: bool = True) -> tuple[str, str, str]:
        """Returns (message, job id, link markdown)."""
        try:
            client = self.client(oauth_token)
            client.whoami()  # signed out: say so first, before any other check
            config = self.build_config(preset, model_id, data_source, dataset_id, values, max_steps, evaluate)
            output_repo = validate_repo_id(output_repo, what="repo di output / output repo")
            if visibility not in (VIS_PRIVATE, VIS_PUBLIC):
                raise ConfigError(f"visibilità sconosciuta / unknown visibility {visibility!r}")
            hardware = client.pick_flavor(config, flavor or None)  # no CPU flavor for a non-embedded model
            timeout = _timeout_for(oauth_token)
            client.check_namespace(output_repo)
            if data_source == DATA_HUB and not client.dataset_exists(config.data.train):
                raise ConfigError(f"dataset {config.data.train!r} non trovato o non accessibile / not found or not "
                                  f"readable with your account")
            if data_source == DATA_UPLOAD and not upload_path and not uploaded_repo:
                raise ConfigError("carica un file JSONL/CSV / upload a JSONL/CSV file first")
            upload = (self.dataset_for_run(upload_path, oauth_token) if data_source == DATA_UPLOAD and not uploaded_repo
                      else contextlib.nullcontext(uploaded_repo))
            with upload as repo:  # a refused launch deletes the dataset repo it just created
                if data_source == DATA_UPLOAD:
                    config = config.with_overrides([f"data.train={repo}"])
                run = client.launch(config, flavor=hardware.name, output_repo=output_repo,
                                    private=visibility == VIS_PRIVATE, via="space", timeout=timeout.timeout)
        except HfItaError as exc:
            return _err(exc), "", ""
        return self._started(run, hardware, timeout, output_repo)

    def resume(self, job_id: str, oauth_token) -> tuple[str, str, str]:
        """Relaunch a canceled or failed run from the checkpoint it last pushed (its config, hardware, repo)."""
        try:
            client = self.client(oauth_token)
            run = client.status(validate_job_id(job_id))
            if run.stage not in ("CANCELED", "ERROR") or not run.output_repo:
                raise ConfigError(f"si riprende solo un job annullato o fallito, questo è {run.stage} / only a canceled "
                                  f"or failed run can be resumed, this one is {run.stage}")
            config, step, private = client.resume_config(run.output_repo)
            hardware = client.pick_flavor(config, run.flavor, force=True)  # the hardware it ran on
            timeout = _timeout_for(oauth_token)
            new = client.launch(config, flavor=hardware.name, output_repo=run.output_repo, private=private, via="space",
                                timeout=timeout.timeout, force=True, resume=True)
        except HfItaError as exc:
            return _err(exc), "", ""
        return self._started(new, hardware, timeout, run.output_repo, f"checkpoint-{step}")

    @staticmethod
    def _started(run: JobRun, hardware, timeout, output_repo: str, resumed: str | None = None) -> tuple[str, str, str]:
        what = f"Ripreso da / resumed from {resumed}" if resumed else "Job avviato / started"
        message = _ok(f"{what} on {hardware.label} — {cost_line(hardware, timeout.timeout)}"
                      + (f" — ⏱️ {timeout.note}" if timeout.note else ""))
        return message, run.id, f"[{run.id}]({run.url}) → `{output_repo}`"

    def status(self, job_id: str, oauth_token) -> tuple[str, str, bool]:
        """Returns (stage markdown, published-repo markdown, whether to keep refreshing)."""
        if not (job_id or "").strip():
            return "", "", False
        try:
            client = self.client(oauth_token)
            run = client.status(job_id)
            published = client.published_repo(run) if run.stage == "COMPLETED" else None
        except HfItaError as exc:
            return _err(exc), "", False
        return self.stage_markdown(run), self.published_markdown(run, published), not run.finished

    def stage_markdown(self, run: JobRun) -> str:
        """The stage line; a job whose cancel was asked here and that still runs says so (the Hub
        cancels asynchronously)."""
        icon = {"SCHEDULING": "⏳", "RUNNING": "🏃", "COMPLETED": "✅", "ERROR": "❌", "CANCELED": "🛑"}.get(run.stage, "•")
        extra = f" — {run.message}" if run.message else ""
        if run.id in self._cancel_requested and not run.finished:
            extra += " — 🛑 annullamento richiesto / cancel requested"
        return f"{icon} **{run.stage}** · {run.stage_text}{extra}"

    @staticmethod
    def published_markdown(run: JobRun, url: str | None) -> str:
        if url:
            return (f"📦 Pubblicato / published: [{run.output_repo}]({url}) — usa il pulsante qui sotto per chattarci / "
                    f"use the button below to chat with it")
        if run.stage == "COMPLETED":
            return f"⚠️ Job completato ma il repo `{run.output_repo}` non si trova / job completed but the repo is missing"
        return ""

    def follow_logs(self, job_id: str, oauth_token):
        """Yield the log text so far, growing as lines arrive, until the job ends (after SCHEDULING)."""
        if not (job_id or "").strip():
            yield ""
            return
        lines: list[str] = []
        try:
            client = self.client(oauth_token)
            if client.status(job_id).stage == "SCHEDULING":  # the Hub streams logs once the job runs
                yield "⏳ In attesa dell'hardware / waiting for the hardware (SCHEDULING)..."
            for line in client.follow(job_id, poll_s=self.follow_poll_s):
                lines.append(line)
                yield "\n".join(lines[-LOG_LINES_SHOWN:])
        except HfItaError as exc:
            lines.append(_err(exc))
        yield "\n".join(lines[-LOG_LINES_SHOWN:])

    def cancel(self, job_id: str, oauth_token) -> str:
        """Ask for the cancel; the status polling shows "cancel requested" until the stage changes."""
        try:
            run = self.client(oauth_token).cancel(job_id)
        except HfItaError as exc:
            return _err(exc)
        self._cancel_requested.add(run.id)
        return self.stage_markdown(run)

    def runs_table(self, oauth_token) -> tuple[list[list[str]], str]:
        """Rows (job link, stage in both languages, hardware, repo link, created) and a note."""
        rows, note, _ = self.runs_view(oauth_token)
        return rows, note

    def runs_view(self, oauth_token) -> tuple[list[list[str]], str, list[str]]:
        """:meth:`runs_table` plus the repos of completed runs (offered in the chat tab)."""
        if _token_of(oauth_token) is None:
            return [], "Accedi per vedere i tuoi job / sign in to see your jobs", []
        try:
            runs = self.client(oauth_token).list_runs(via="space")
        except HfItaError as exc:
            return [], _err(exc), []
        rows = [[f"[{r.id}]({r.url})", r.stage_text, r.flavor or "",
                 f"[{r.output_repo}]({r.repo_url})" if r.output_repo else "",
                 r.created_at.strftime("%Y-%m-%d %H:%M") if r.created_at else ""] for r in runs]
        trained = list(dict.fromkeys(r.output_repo for r in runs if r.stage == "COMPLETED" and r.output_repo))
        return rows, f"{len(rows)} job", trained

    # ------------------------------------------------------------------ chat
    def chat_model(self, source: str, oauth_token) -> ChatModel:
        token = _token_of(oauth_token)
        key = (source, hashlib.sha256(token.encode()).hexdigest() if token else None)
        with self._chat_lock:
            model = self._chat_models.get(key)
            if model is None:
                model = load_chat_model(None if source == EMBEDDED_CHOICE else source, token=token or False,
                                        endpoint=self.endpoint, allow_local=False)
                self._chat_models[key] = model
                while len(self._chat_models) > self._chat_cache_size:
                    self._chat_models.popitem(last=False)
            self._chat_models.move_to_end(key)
            return model

    def chat(self, message, history, source, system_prompt, temperature, top_k, top_p, repetition_penalty,
             max_new_tokens, oauth_token):
        """Stream (history, cleared textbox, status) while the assistant's reply grows."""
        history = list(history or [])
        try:
            params = SamplingParams(temperature=float(temperature), top_k=int(top_k), top_p=float(top_p),
                                    repetition_penalty=float(repetition_penalty),
                                    max_new_tokens=int(max_new_tokens)).validated()
            if not (message or "").strip():
                raise ConfigError("scrivi un messaggio / type a message")
            model = self.chat_model((source or EMBEDDED_CHOICE).strip(), oauth_token)
        except (HfItaError, TypeError, ValueError) as exc:
            yield history, message, _err(exc)
            return
        status = f"🤖 {model.describe()}"
        history = history + [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        yield history, "", status
        reply, started = "", time.perf_counter()
        try:
            for chunk in model.reply(history[:-2], message, system_prompt=system_prompt, params=params):
                reply += chunk
                history[-1] = {"role": "assistant", "content": reply}
                yield history, "", status
        except HfItaError as exc:
            yield history, "", _err(exc)
            return
        elapsed = time.perf_counter() - started
        yield history, "", f"{status} · ✔ completata / done in {elapsed:.1f} s"


# ---------------------------------------------------------------------------------- UI
INTRO = """# 🇮🇹 hf-ita — addestra e chatta in italiano
Affina un LLM aperto per l'italiano (QLoRA) su hardware Hugging Face con **HF Jobs**, segui il job e prova il risultato.
*Fine-tune an open LLM for Italian (QLoRA) on Hugging Face hardware with HF Jobs, follow the run, and chat with the result.*

Il job usa **solo il tuo account** (accesso OAuth): i costi dell'hardware sono a tuo carico.
*The job runs with **your account only** (OAuth sign-in): hardware is billed to you.*"""


LOCAL_NO_LOGIN = (
    "🔒 Accesso non disponibile: questo Space gira in locale e la macchina non ha un login Hugging Face. "
    "Per addestrare, accedi con `hf auth login` (o imposta `HF_TOKEN`) e riavvia l'app; la chat funziona già. / "
    "Sign-in unavailable: this Space runs locally and the machine has no Hugging Face login. To train, log in with "
    "`hf auth login` (or set `HF_TOKEN`) and restart the app; chat already works.")
CHAT_NOTE = (
    "ℹ️ Il modello incorporato è **SmolLM2-135M**, una demo minuscola (135 milioni di parametri, CPU): risponde "
    "poco e male in italiano. Scegli nel menu «Modello» un modello che hai addestrato per vedere la differenza. / "
    "*The embedded model is SmolLM2-135M, a tiny demo (135M parameters, CPU): its Italian is poor. Pick a model you "
    "trained in the Model menu to see the difference.*")
SET_LANG_JS = "() => { document.documentElement.lang = 'it'; }"
SCROLL_LOGS_JS = "() => { const t = document.querySelector('#logs textarea'); if (t) t.scrollTop = t.scrollHeight; }"
_MD_LINK = re.compile(r"\[([^\]]+)\]\(")


def terms_notice(cfg: RunConfig) -> str:
    """What a preset's base model asks its users to accept (Gemma's terms), shown when it is picked."""
    base = cfg.model.name_or_path or embedded_model(cfg.model.embedded).hub_id
    return GEMMA_NOTICE if KNOWN_MODEL_LICENSES.get(base) == "gemma" else ""


def sign_in_available() -> bool:
    """Whether Gradio can offer sign-in: always on a Space (OAuth); locally only with a Hub login, which its
    sign-in mock needs (without one, ``launch`` would raise)."""
    from gradio.utils import get_space
    from huggingface_hub import get_token

    return get_space() is not None or get_token() is not None


def build_app(endpoint: str | None = None) -> gr.Blocks:
    """The Space's Blocks app; ``endpoint`` overrides the Hub URL (tests use a local server)."""
    backend = SpaceBackend(endpoint)
    presets = list_presets()
    default_preset = DEFAULT_PRESET if DEFAULT_PRESET in presets else presets[0]
    defaults = RunConfig.from_preset(default_preset)
    hardware = backend.hardware_choices()

    can_sign_in = sign_in_available()
    signed_out_text = "Non hai effettuato l'accesso / not signed in" if can_sign_in else LOCAL_NO_LOGIN

    with gr.Blocks(title="hf-ita: addestra e chatta in italiano") as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            if can_sign_in:
                gr.LoginButton(value="Accedi con Hugging Face / Sign in", logout_value="Esci / Sign out ({})")
            else:  # no LoginButton: Gradio's local sign-in mock would refuse to start without a Hub login
                gr.Button("Accedi con Hugging Face / Sign in", interactive=False, elem_id="login-unavailable")
            who = gr.Markdown(signed_out_text, elem_id="who")

        with gr.Tabs() as tabs:
            with gr.Tab("Addestra (Train)", id="train"):
                with gr.Row():
                    with gr.Column():
                        gr.Markdown("### 1. Modello / Model")
                        preset = gr.Dropdown(presets, value=default_preset, label="Preset")
                        model_id = gr.Textbox(label="Oppure un modello del Hub / or any Hub model id",
                                              placeholder="es. / e.g. Qwen/Qwen2.5-1.5B-Instruct", elem_id="model-id")
                        gr.Markdown("### 2. Dati / Data")
                        data_source = gr.Radio([DATA_BUNDLED, DATA_HUB, DATA_UPLOAD], value=DATA_BUNDLED,
                                               label="Origine dei dati / data source", elem_id="data-source")
                        dataset_id = gr.Textbox(label="Dataset del Hub / Hub dataset id", placeholder="owner/name",
                                                info="Scrivere un id sceglie 'Dataset del Hub' / typing an id selects "
                                                     "'Hub dataset'", elem_id="dataset-id")
                        upload = gr.File(label="JSONL / CSV / JSON (messages, alpaca, sharegpt, prompt-completion)",
                                         file_types=[".jsonl", ".csv", ".json", ".parquet"], type="filepath",
                                         elem_id="upload")
                        upload_msg = gr.Markdown(elem_id="upload-msg")
                        uploaded_repo = gr.State("")
                    with gr.Column():
                        gr.Markdown("### 3. Iperparametri / Hyperparameters")
                        numbers = {}
                        with gr.Row():
                            numbers["epochs"] = gr.Number(defaults.training.num_epochs, label="Epoche / epochs (0.1–20)")
                            numbers["learning_rate"] = gr.Number(defaults.training.learning_rate,
                                                                 label="Learning rate (1e-6–1e-3)")
                        with gr.Row():
                            numbers["lora_r"] = gr.Number(defaults.lora.r, label="LoRA r (1–256)", precision=0)
                            numbers["lora_alpha"] = gr.Number(defaults.lora.alpha, label="LoRA alpha (1–1024)", precision=0)
                        with gr.Row():
                            numbers["max_seq_length"] = gr.Number(defaults.training.max_seq_length,
                                                                  label="Lunghezza max / max seq length (128–16384)", precision=0)
                            numbers["batch_size"] = gr.Number(defaults.training.per_device_batch_size,
                                                              label="Batch (1–128)", precision=0)
                        with gr.Row():
                            numbers["grad_accum"] = gr.Number(defaults.training.gradient_accumulation_steps,
                                                              label="Accumulo gradiente / grad. accumulation (1–128)", precision=0)
                            max_steps = gr.Number(-1, label="Passi max / max steps (-1 = epoche / epochs)", precision=0,
                                                  elem_id="max-steps")
                        evaluate = gr.Checkbox(True, label="Valuta prima e dopo sui dati di verifica (job più lungo) / "
                                                           "evaluate before and after on held-out data (longer job)",
                                               elem_id="evaluate")
                        gr.Markdown("### 4. Hardware e output")
                        flavor = gr.Dropdown(hardware, value=backend.default_flavor(default_preset), allow_custom_value=True,
                                             label="Hardware (prezzo orario / price per hour)", elem_id="flavor")
                        output_repo = gr.Textbox(label="Repo di output / output repo", placeholder="owner/name",
                                                 elem_id="output-repo")
                        visibility = gr.Radio([VIS_PRIVATE, VIS_PUBLIC], value=VIS_PRIVATE,
                                              label="Visibilità / visibility")
                launch_btn = gr.Button("🚀 Avvia il job / Launch", variant="primary", elem_id="launch")
                launch_msg = gr.Markdown(elem_id="launch-msg")
                with gr.Row():
                    job_id = gr.Textbox(label="ID del job / job id", elem_id="job-id", scale=3)
                    follow_btn = gr.Button("Segui / Follow", scale=1, elem_id="follow")
                    cancel_btn = gr.Button("🛑 Annulla / Cancel", variant="stop", scale=1, elem_id="cancel")
                    resume_btn = gr.Button("🔁 Riprendi / Resume", scale=1, elem_id="resume")
                job_link = gr.Markdown(elem_id="job-link")
                stage = gr.Markdown(elem_id="stage")
                published = gr.Markdown(elem_id="published")
                chat_it = gr.Button("💬 Chatta con questo modello / chat with it", visible=False, elem_id="chat-with-it")
                published_repo = gr.State("")
                logs = gr.Textbox(label="Log (live)", lines=14, max_lines=14, autoscroll=True, elem_id="logs")
                timer = gr.Timer(STATUS_REFRESH_S, active=False)
                gr.Markdown("### I tuoi job da questo Space / your runs from this Space")
                with gr.Row():
                    runs_btn = gr.Button("Aggiorna / Refresh", elem_id="refresh-runs", scale=1)
                    runs_msg = gr.Markdown(scale=3)
                runs = gr.Dataframe(headers=["Job", "Stato / Stage", "Hardware", "Repo", "Creato / Created"],
                                    datatype=["markdown", "str", "str", "markdown", "str"], interactive=False,
                                    elem_id="runs")

            with gr.Tab("Chat", id="chat"):
                with gr.Row():
                    with gr.Column(scale=3):
                        chat_source = gr.Dropdown([EMBEDDED_CHOICE], value=EMBEDDED_CHOICE, allow_custom_value=True,
                                                  label="Modello: predefinito, i tuoi modelli addestrati o un repo adapter/GGUF / "
                                                        "model: default, your trained models or an adapter/GGUF repo",
                                                  elem_id="chat-source")
                        chat_status = gr.Markdown(elem_id="chat-status")
                        chatbot = gr.Chatbot(label="Conversazione / conversation", height=300, elem_id="chatbot")
                        with gr.Row():
                            chat_input = gr.Textbox(placeholder="Scrivi in italiano... / write in Italian...", scale=4,
                                                    show_label=False, elem_id="chat-input")
                            send = gr.Button("Invia / Send", variant="primary", scale=1, elem_id="send")
                        with gr.Row():
                            clear = gr.Button("Nuova conversazione / new chat", elem_id="clear")
                    with gr.Column(scale=2):
                        gr.Markdown(CHAT_NOTE, elem_id="chat-note")
                        system_prompt = gr.Textbox(default_system_prompt(), lines=5,
                                                   label="Prompt di sistema / system prompt", elem_id="system-prompt")
                        b = SAMPLING_BOUNDS
                        temperature = gr.Slider(*b["temperature"], value=0.7, step=0.05, label="Temperatura / temperature")
                        top_k = gr.Slider(*b["top_k"], value=40, step=1, label="top_k",
                                          info="Sceglie tra i k token più probabili / samples among the k most likely tokens")
                        top_p = gr.Slider(*b["top_p"], value=0.9, step=0.01, label="top_p",
                                          info="Sceglie tra i token più probabili fino a questa probabilità totale / samples "
                                               "among the most likely tokens up to this total probability")
                        rep = gr.Slider(*b["repetition_penalty"], value=1.1, step=0.01,
                                        label="Penalità di ripetizione / repetition penalty")
                        max_new = gr.Slider(1, 1024, value=256, step=1, label="Token nuovi max / max new tokens",
                                            elem_id="max-new-tokens")


        # ------------------------------------------------------------------ events
        demo.load(None, None, None, js=SET_LANG_JS)
        logs.change(None, None, None, js=SCROLL_LOGS_JS)

        def chat_choices(trained: list[str]):
            return gr.update(choices=[EMBEDDED_CHOICE, *trained])

        def on_load(oauth_token: gr.OAuthToken | None, current_repo: str, preset_name: str):
            user = backend.username(oauth_token)
            rows, msg, trained = backend.runs_view(oauth_token)
            if user is None:
                return signed_out_text, current_repo, rows, msg, chat_choices(trained)
            repo = current_repo or f"{user}/{preset_name}-ita"
            return f"Accesso come / signed in as **{user}**", repo, rows, msg, chat_choices(trained)

        demo.load(on_load, [output_repo, preset], [who, output_repo, runs, runs_msg, chat_source], api_name=False)

        def on_preset(preset_name: str, current_repo: str):
            try:
                cfg = RunConfig.from_preset(preset_name)
            except HfItaError as exc:
                return [gr.update()] * (len(numbers) + 3) + [_err(exc)]
            owner = current_repo.split("/")[0] if "/" in (current_repo or "") else ""
            repo = f"{owner}/{preset_name}-ita" if owner else current_repo
            t = cfg.training
            return [t.num_epochs, t.learning_rate, cfg.lora.r, cfg.lora.alpha, t.max_seq_length, t.per_device_batch_size,
                    t.gradient_accumulation_steps, t.max_steps, repo, backend.default_flavor(preset_name) or gr.update(), terms_notice(cfg)]

        preset.change(on_preset, [preset, output_repo], [*numbers.values(), max_steps, output_repo, flavor, launch_msg],
                      api_name=False)

        def on_upload(path, oauth_token: gr.OAuthToken | None):
            msg, repo = backend.check_upload(path, oauth_token)
            return msg, repo, (DATA_UPLOAD if path else gr.update())

        upload.upload(on_upload, [upload], [upload_msg, uploaded_repo, data_source], api_name="check_upload")

        def on_dataset_typed(text: str):  # a typed Hub id is the data to train on: select its source
            return DATA_HUB if (text or "").strip() else gr.update()

        dataset_id.input(on_dataset_typed, [dataset_id], [data_source], api_name=False)

        def on_launch(preset_name, model, source, ds_id, up_path, up_repo, epochs, lr, lora_r, lora_alpha, seq_len,
                      batch, accum, steps, fl, out_repo, vis, evaluate, oauth_token: gr.OAuthToken | None):
            values = dict(zip(numbers, (epochs, lr, lora_r, lora_alpha, seq_len, batch, accum)))
            msg, jid, link = backend.launch(preset_name, model, source, ds_id, up_path, up_repo, values, steps, fl,
                                            out_repo, vis, oauth_token, evaluate)
            return msg, jid, link, "", "", "", gr.Timer(active=bool(jid))

        launch_inputs = [preset, model_id, data_source, dataset_id, upload, uploaded_repo, *numbers.values(), max_steps,
                         flavor, output_repo, visibility, evaluate]
        launch_event = launch_btn.click(on_launch, launch_inputs,
                                        [launch_msg, job_id, job_link, stage, published, logs, timer], api_name="launch")

        def on_status(jid, oauth_token: gr.OAuthToken | None):
            stage_md, pub_md, keep = backend.status(jid, oauth_token)
            return stage_md, pub_md, gr.Timer(active=keep)

        def on_follow(jid, oauth_token: gr.OAuthToken | None):
            yield from backend.follow_logs(jid, oauth_token)

        def on_runs(oauth_token: gr.OAuthToken | None):
            rows, note, trained = backend.runs_view(oauth_token)
            return rows, note, chat_choices(trained)

        runs_outputs = [runs, runs_msg, chat_source]

        def on_resume(jid, oauth_token: gr.OAuthToken | None):  # a canceled/failed run, from its last checkpoint
            msg, new_id, link = backend.resume(jid, oauth_token)
            return msg, new_id or jid, link, "", "", "", gr.Timer(active=bool(new_id))

        resume_event = resume_btn.click(on_resume, [job_id], [launch_msg, job_id, job_link, stage, published, logs, timer],
                                        api_name="resume")
        for event in (launch_event, resume_event):
            event.then(on_status, [job_id], [stage, published, timer], api_name=False).then(
                on_runs, None, runs_outputs, api_name=False).then(
                on_follow, [job_id], [logs], concurrency_limit=None, api_name=False)
        timer.tick(on_status, [job_id], [stage, published, timer], api_name="status").then(
            on_runs, None, runs_outputs, api_name=False)  # the table follows the stage shown above it
        follow_btn.click(on_status, [job_id], [stage, published, timer], api_name=False).then(
            on_follow, [job_id], [logs], concurrency_limit=None, api_name="logs")

        def on_cancel_then_poll(jid, oauth_token: gr.OAuthToken | None):
            try:
                validate_job_id(jid)
            except HfItaError as exc:  # nothing to poll: keep the message (and its hint) on screen
                return _err(exc, hint="copialo dalla tabella dei tuoi job / copy it from the runs table"), gr.Timer(active=False)
            return backend.cancel(jid, oauth_token), gr.Timer(active=True)

        cancel_btn.click(on_cancel_then_poll, [job_id], [stage, timer], api_name="cancel")

        runs_btn.click(on_runs, None, runs_outputs, api_name="runs")

        def on_published(md: str):
            found = _MD_LINK.search(md or "") if (md or "").startswith("📦") else None
            repo = found.group(1) if found else ""
            return gr.update(visible=bool(repo)), repo

        published.change(on_published, [published], [chat_it, published_repo], api_name=False)

        def on_chat_with_it(repo: str):
            return gr.update(value=repo), gr.Tabs(selected="chat")

        chat_it.click(on_chat_with_it, [published_repo], [chat_source, tabs], api_name=False)

        def on_pick_run(evt: gr.SelectData, table):
            row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            try:
                cell = str(table.iloc[row, 0])
            except (AttributeError, IndexError):
                return gr.update()
            found = _MD_LINK.search(cell)
            return found.group(1) if found else cell

        runs.select(on_pick_run, [runs], [job_id], api_name=False)

        def on_chat(message, history, source, system, t, k, p, r, n, oauth_token: gr.OAuthToken | None):
            yield from backend.chat(message, history, source, system, t, k, p, r, n, oauth_token)

        chat_inputs = [chat_input, chatbot, chat_source, system_prompt, temperature, top_k, top_p, rep, max_new]
        send.click(on_chat, chat_inputs, [chatbot, chat_input, chat_status], api_name="chat", concurrency_limit=4)
        chat_input.submit(on_chat, chat_inputs, [chatbot, chat_input, chat_status], api_name=False, concurrency_limit=4)
        clear.click(lambda: ([], "", ""), None, [chatbot, chat_input, chat_status], api_name=False)

    demo.backend = backend
    return demo


if __name__ == "__main__":
    # Before torch or llama.cpp start: generation threads share the Space's few vCPUs with the web server.
    apply_runtime_defaults()
    build_app().queue(default_concurrency_limit=8).launch()
