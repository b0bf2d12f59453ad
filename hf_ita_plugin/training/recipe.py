"""ItalianSFT: the QLoRA fine-tuning recipe.

config -> tokenizer + chat template -> conversations -> token ids with assistant-only masks
-> base model in 4-bit NF4 (double quantization) -> ``prepare_model_for_kbit_training`` -> LoRA on
all linear layers -> TRL ``SFTTrainer`` (padding-free or packed batches, cosine schedule, periodic
eval, checkpoints) -> held-out evaluation before/after -> adapter directory + metrics + loss curve.

Example::

    from hf_ita_plugin import ItalianSFT
    result = ItalianSFT.from_yaml("examples/smollm2-135m-cpu.yaml").train()
    print(result.adapter_dir, result.metrics["eval"])
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..utils import atomic
from . import distributed
from .patches import training_patches
from ..config import RunConfig
from ..evaluation.compare import relative_change
from ..data import load_examples, seeded_sample
from ..data.curriculum import curriculum_order
from ..models.embedded import EmbeddedModel, embedded_model, ensure_embedded_model
from ..models.loader import load_base, resolve_compute_dtype
from ..errors import ConfigError, DataError, HfItaError, ModelError, bilingual
from ..rundir import DataSummary, EvalSummary, RunDir, RunMetrics, TrainSummary, metrics_hyperparameters


@dataclass
class TrainResult:
    """What :meth:`ItalianSFT.train` leaves behind."""

    output_dir: Path
    adapter_dir: Path
    metrics_path: Path
    config_path: Path
    loss_curve_path: Path | None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class PreparedData:
    train: list[dict[str, list[int]]]
    eval: list[dict[str, list[int]]]
    dropped_truncated: int
    train_tokens: int
    phases: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    """Curriculum phases in training order as ``(name, number of rows)``; empty without a curriculum."""


class ItalianSFT:
    """The QLoRA supervised fine-tuning recipe for Italian.

    Build it from a :class:`~hf_ita_plugin.config.schema.RunConfig`, a YAML file (:meth:`from_yaml`) or a
    packaged preset (:meth:`from_preset`). ``model``/``tokenizer`` may be passed already loaded
    (e.g. by your own transformers code); otherwise ``config.model`` says what to load, and no
    model named means an embedded model (``model.embedded``, default SmolLM2-135M-Instruct). ``callbacks`` are extra transformers
    ``TrainerCallback`` objects handed to the trainer.
    """

    def __init__(self, config: RunConfig | None = None, *, model=None, tokenizer=None, callbacks=None):
        self.config = config or RunConfig()
        self.callbacks = list(callbacks or [])
        if (model is None) != (tokenizer is None):
            raise ConfigError(bilingual("passa sia model= sia tokenizer=, oppure nessuno dei due",
                                        "pass both model= and tokenizer=, or neither"))
        self._user_model = model
        self._user_tokenizer = tokenizer
        self.answers: dict[str, dict] = {}
        """The answers :meth:`evaluate` scored, by label (``before``/``after``); also in ``answers.json``."""

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: list[str] | None = None) -> "ItalianSFT":
        """Recipe from a YAML config file with optional ``section.key=value`` overrides."""
        return cls(RunConfig.from_yaml(path, overrides))

    @classmethod
    def from_preset(cls, name: str, overrides: list[str] | None = None) -> "ItalianSFT":
        """Recipe from a packaged preset (``smollm2-135m-cpu``, ``mistral-7b``...)."""
        return cls(RunConfig.from_preset(name, overrides))

    # ------------------------------------------------------------------ public steps
    def embedded(self) -> EmbeddedModel | None:
        """The embedded model the run trains (``model.embedded``), or ``None`` when a model is named or passed."""
        if self._user_model is not None or self.config.model.name_or_path is not None:
            return None
        return embedded_model(self.config.model.embedded)

    def resolve_model_path(self) -> str:
        """Local directory or Hub id of the base model (imports the embedded one if needed)."""
        name = self.config.model.name_or_path
        return str(ensure_embedded_model(self.config.model.embedded)) if name is None else name

    def uses_embedded_model(self) -> bool:
        """Whether the run trains an embedded model (dequantized from a GGUF on PyPI)."""
        return self.embedded() is not None

    def base_model_id(self) -> str:
        """Public id of the base model, for cards and metadata (never a machine path)."""
        name = self.config.model.name_or_path
        if name is None:
            return embedded_model(self.config.model.embedded).hub_id
        return name

    def template_choice(self) -> str | None:
        """``model.template``, except that ``auto`` on an embedded model is the template it trains with
        (Gemma-3-270M is a base model and ships none)."""
        template, embedded = self.config.model.template, self.embedded()
        if template in (None, "auto") and embedded is not None and self._user_tokenizer is None:
            return embedded.template
        return template

    def load_tokenizer(self):
        """Tokenizer with the configured chat template and BOS/EOS/PAD hygiene applied."""
        from transformers import AutoTokenizer

        from ..templates import apply_template

        tokenizer = self._user_tokenizer
        if tokenizer is None:
            path = self.resolve_model_path()
            try:
                tokenizer = AutoTokenizer.from_pretrained(
                    path, revision=self.config.model.revision, trust_remote_code=self.config.model.trust_remote_code
                )
            except (OSError, ValueError) as exc:
                raise ModelError(
                    bilingual(f"impossibile caricare il tokenizer del modello {path!r}",
                              f"cannot load the tokenizer of model {path!r}: {_first_line(exc)}"),
                    hint="check model.name_or_path (a Hub id you can access, or a local directory with tokenizer files)",
                ) from None
        return apply_template(tokenizer, self.template_choice())

    def prepare_data(self, tokenizer) -> PreparedData:
        """Load, validate and tokenize train/eval conversations with assistant-only masks.

        ``data.max_*_examples`` keep a seeded random sample spread over the whole source (the
        bundled file is grouped by category). With ``data.curriculum`` the training rows are put
        in curriculum order and :attr:`PreparedData.phases` says which rows belong to which phase.
        """
        from ..templates import registry_template_of, tokenize_conversation, validate_messages, with_system_prompt

        cfg = self.config.data
        max_length = self.config.training.max_seq_length
        seed = self.config.training.seed

        def tokenize_all(source: str, limit: int | None, curriculum: str = "none"):
            examples = load_examples(source, format=cfg.format, split=cfg.split, strict=True,
                                     encoding=cfg.encoding).examples
            template = registry_template_of(tokenizer)
            for example in examples:  # every row, before the sample is drawn
                try:
                    validate_messages(example.messages, template, for_training=True, system_prompt=cfg.system_prompt)
                except HfItaError as exc:
                    raise type(exc)(f"{source}: row {example.index}: {exc.message}", hint=exc.hint) from None
            examples = seeded_sample(examples, limit, seed)
            phase_names = [None] * len(examples)
            if curriculum != "none":
                examples, phase_names = curriculum_order(examples, curriculum, short_to_long=cfg.curriculum_short_to_long,
                                                         seed=seed)
            out, phases, dropped = [], [], 0
            for example, phase in zip(examples, phase_names):
                messages = with_system_prompt(example.messages, cfg.system_prompt)
                try:
                    tokenized = tokenize_conversation(tokenizer, messages, max_length=max_length)
                except HfItaError as exc:
                    raise type(exc)(f"{source}: row {example.index}: {exc.message}", hint=exc.hint) from None
                if sum(tokenized["assistant_masks"]) == 0:
                    dropped += 1  # truncation removed every answer token: nothing to learn
                    continue
                out.append({"input_ids": tokenized["input_ids"], "assistant_masks": tokenized["assistant_masks"]})
                phases.append(phase)
            if not out:
                raise DataError(bilingual(f"nessun esempio utilizzabile (tutte le {len(examples)} righe perdono la risposta "
                                          f"col troncamento a training.max_seq_length={max_length})",
                                          f"no usable example (all {len(examples)} rows lost their answer to "
                                          f"truncation at training.max_seq_length={max_length})", where=source))
            return out, dropped, phases

        train, dropped, train_phases = tokenize_all(cfg.train, cfg.max_train_examples, cfg.curriculum)
        evals: list[dict[str, list[int]]] = []
        if cfg.eval:
            evals, dropped_eval, _ = tokenize_all(cfg.eval, cfg.max_eval_examples)
            dropped += dropped_eval
        tokens = sum(len(e["input_ids"]) for e in train)
        phases = _phase_sizes(train_phases) if cfg.curriculum != "none" else []
        return PreparedData(train=train, eval=evals, dropped_truncated=dropped, train_tokens=tokens, phases=phases)

    def load_model(self):
        """Base model (4-bit NF4 + double quant unless ``quantization.mode: none``) wrapped with LoRA."""
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        qcfg, train_cfg = self.config.quantization, self.config.training
        model = self._user_model
        if model is None:
            model = load_base(
                self.resolve_model_path(), revision=self.config.model.revision,
                quantization=None if qcfg.mode == "none" else qcfg.mode, double_quant=qcfg.double_quant,
                compute_dtype=qcfg.compute_dtype, dtype=resolve_compute_dtype(qcfg.compute_dtype, training=True),
                attn_implementation=self.attn_implementation(), allow_pickle=True,
                trust_remote_code=self.config.model.trust_remote_code, training=True,
                quant_storage=distributed.quant_storage(self.config),
                hint="check model.name_or_path and that you have access to it",
            )
        from ..models import quant_layout

        quant_layout.for_training(model)  # before any evaluation can pack the 4-bit layers
        if getattr(model, "peft_config", None):
            return model  # already a PeftModel: train the adapter as given
        quantized = getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
        if quantized and not distributed.uses_fsdp(self.config):  # FSDP keeps every weight in the storage dtype
            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=train_cfg.gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False},
            )
        elif train_cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
        lora = self.config.lora
        peft_config = LoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
            bias="none", task_type="CAUSAL_LM",
        )
        return get_peft_model(model, peft_config)

    def attn_implementation(self) -> str | None:
        """The configured attention kernel; by default, for padding-free or packed batches, SDPA
        run per sequence (:mod:`hf_ita_plugin.training.patches.varlen_sdpa`) instead of one dense block mask."""
        if self.config.model.attn_implementation:
            return self.config.model.attn_implementation
        from .trainer import resolve_batching

        if resolve_batching(self.config.training.batching) in ("padding_free", "packed"):
            from .patches.varlen_sdpa import register_varlen_sdpa

            return register_varlen_sdpa()
        return None

    def evaluate(self, model, tokenizer, data: PreparedData, *, label: str) -> dict[str, float]:
        """Held-out bits per byte (prose) and response loss (held-out conversations).

        Computed by :func:`hf_ita_plugin.evaluation.metrics.heldout_metrics`, the function
        ``hf-ita eval`` uses, so the numbers of both compare directly.
        """
        from ..evaluation.metrics import heldout_metrics

        ecfg = self.config.evaluation
        metrics, _ = heldout_metrics(model, tokenizer, bpb_text=ecfg.bpb_text, bpb_max_chars=ecfg.bpb_max_chars,
                                     examples=data.eval if ecfg.response_loss and data.eval else None,
                                     max_length=ecfg.max_length, label=label)
        if ecfg.answer_quality:
            from ..evaluation.quality import answer_quality

            answers: dict = {}
            metrics.update(answer_quality(model, tokenizer, prompts=ecfg.answer_prompts,
                                          max_new_tokens=ecfg.answer_max_new_tokens, label=label, answers_out=answers))
            self.answers[label] = answers
        return metrics

    # ------------------------------------------------------------------ the whole run
    def train(self, *, resume: bool = False) -> TrainResult:
        """Run the recipe end to end and return paths and metrics.

        With ``resume=True`` training continues from the newest complete checkpoint in
        ``OUTPUT_DIR/checkpoints`` (from step 0 when a crash left none complete); a finished run is
        not resumed (:class:`ConfigError`). An output folder holding files ``hf-ita train`` did not
        write is refused. Everything that can be checked (config, data, tokenizer, chat
        template) is checked before anything is written.
        """
        from transformers import set_seed

        from ..templates import template_name

        started = time.time()
        cfg = self.config
        distributed.setup(cfg)  # a multi-process run: join the others before anything heavy
        main = distributed.is_main()  # the only process that writes the output folder
        run = RunDir(cfg.training.output_dir)
        resume_from = _check_output_dir(run, resume)
        if main and resume_from is not None:
            print(f"hf-ita: resuming from {resume_from.name}")
        elif main and resume:
            print(f"hf-ita: --resume: no complete checkpoint in {run.checkpoints_dir} (the run stopped before its "
                  "first save finished): training starts again from step 0")
        set_seed(cfg.training.seed)
        embedded = self.embedded()
        if main and embedded is not None and embedded.terms:
            print(f"hf-ita: {embedded.hub_id}: {embedded.terms}")

        tokenizer = self.load_tokenizer()
        data = self.prepare_data(tokenizer)
        print(f"hf-ita: {len(data.train)} training and {len(data.eval)} held-out conversations, "
              f"{data.train_tokens} training tokens"
              + (f" ({data.dropped_truncated} dropped: answer truncated away)" if data.dropped_truncated else ""))
        model = self.load_model()
        if main:
            _print_trainable(model)
            print(distributed.batch_line(cfg))
            for leftover in run.remove_incomplete_checkpoints():
                print(f"hf-ita: removed an incomplete checkpoint left by a crash: {leftover}")
            run.record(run.CHECKPOINTS)
        eval_before = run.read_eval_before() if resume else None
        if main and eval_before is None and cfg.evaluation.before_after:
            eval_before = self.evaluate(model, tokenizer, data, label="before")
            run.write_eval_before(eval_before)
            if "before" in self.answers:
                run.write_answers("before", self.answers["before"])
        distributed.barrier()  # the others wait while the main process evaluates

        trainer = self._build_trainer(model, tokenizer, data, run.checkpoints_dir)
        with training_patches():
            train_out = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        train_seconds = train_out.metrics.get("train_runtime", 0.0)
        full_state = distributed.full_state_dict(trainer)  # FSDP: every process gathers the shards
        if not main:
            distributed.barrier()  # until the main process has written the outputs
            return _written_result(run)

        # under FSDP no process holds the whole model (distributed.check_plan requires before_after off)
        eval_after = {} if full_state is not None else self.evaluate(model, tokenizer, data, label="after")
        history = trainer.state.log_history
        trained_tokens = _last_logged(history, "num_tokens")

        metrics = RunMetrics(
            base_model=self.base_model_id(),
            base_model_path=self.resolve_model_path() if self._user_model is None else None,
            base_model_weights=embedded.weights_note if embedded is not None else None,
            template=template_name(tokenizer) or cfg.model.template,
            quantization=cfg.quantization.mode,
            data=DataSummary(train_examples=len(data.train), eval_examples=len(data.eval),
                             train_tokens=data.train_tokens, dropped_truncated=data.dropped_truncated,
                             train_source=cfg.data.train, eval_source=cfg.data.eval,
                             curriculum=[{"phase": name, "examples": n} for name, n in data.phases]),
            train=TrainSummary(
                steps=trainer.state.global_step,
                epochs=round(trainer.state.epoch or 0.0, 4),
                final_loss=_last_logged(history, "loss"),
                mean_loss=round(train_out.training_loss, 5),
                eval_loss=_last_logged(history, "eval_loss"),
                trained_tokens=trained_tokens,
                tokens_per_second=round(trained_tokens / train_seconds, 2) if trained_tokens and train_seconds else None,
                train_runtime_s=round(train_seconds, 2),
                peak_memory_mb=_peak_memory_mb(),
                resumed=bool(resume),
            ),
            eval=EvalSummary(before=eval_before or {}, after=eval_after,
                             change=relative_change(eval_before, eval_after)),
            hyperparameters=metrics_hyperparameters(cfg),
            hardware=_hardware(),
            loss_history=[{"step": h["step"], **{k: h[k] for k in ("loss", "eval_loss", "learning_rate") if k in h}}
                          for h in history if "loss" in h or "eval_loss" in h],
            wall_time_s=round(time.time() - started, 2),
        )
        try:
            return self._write_outputs(run, model, tokenizer, metrics, state_dict=full_state)
        finally:
            distributed.barrier()

    # ------------------------------------------------------------------ internals
    def _build_trainer(self, model, tokenizer, data: PreparedData, ckpt_dir: Path):
        from .trainer import build_trainer

        return build_trainer(self.config, model, tokenizer, data.train, data.eval, ckpt_dir,
                             callbacks=self.callbacks, sequential=bool(data.phases))

    def _write_outputs(self, run: RunDir, model, tokenizer, metrics: RunMetrics, *, state_dict=None) -> TrainResult:
        from ..models.weights import verify_weights_dir
        from .plotting import plot_loss_curve

        run.record(run.ADAPTER, run.CONFIG, run.LOSS_CURVE, run.METRICS, run.CARD)
        with atomic.atomic_directory(run.adapter_dir, overwrite=True) as tmp:
            model.save_pretrained(tmp, safe_serialization=True, **({"state_dict": state_dict} if state_dict else {}))
            tokenizer.save_pretrained(tmp)
            verify_weights_dir(tmp)  # only whole weights are reported as written
        config_path = run.write_config(self.config)
        heldout = [(0, metrics.eval.before.get("response_loss")), (metrics.train.steps, metrics.eval.after.get("response_loss"))]
        loss_path = plot_loss_curve(metrics.loss_history, run.loss_curve_path,
                                    title=f"{metrics.base_model} · QLoRA ({metrics.quantization})",
                                    heldout=[(step, loss) for step, loss in heldout if loss is not None])
        metrics_path = run.write_metrics(metrics)
        if "after" in self.answers:
            run.write_answers("after", self.answers["after"])
        from ..hub.card import write_card

        write_card(run.path, lookup=False, allow_local_base=True)  # README.md; `hf-ita push` may ask for --base-model
        result = TrainResult(run.path, run.adapter_dir, metrics_path, config_path, loss_path, metrics.to_dict())
        print_summary(result)
        return result


def _written_result(run: RunDir) -> TrainResult:
    """What a process other than the main one returns: the paths the main one wrote."""
    return TrainResult(run.path, run.adapter_dir, run.metrics_path, run.config_path, run.loss_curve_path)


def _phase_sizes(phase_names: list[str | None]) -> list[tuple[str, int]]:
    return [(str(name), len(list(run))) for name, run in itertools.groupby(phase_names)]


def _check_output_dir(run: RunDir, resume: bool) -> Path | None:
    """What the output folder allows, writing nothing: the checkpoint to resume from (``None``: step 0).

    A folder is a run of ours when its manifest says so (or, written before manifests, when it holds
    only ``checkpoints/``); anything else that is not empty is refused, so files the user put there
    are never replaced. A finished run is never resumed (nothing in it is rewritten).
    """
    from ..utils.atomic import stale_temps
    from ..utils.manifest import MANIFEST_NAME

    path = run.path
    if path.exists() and not path.is_dir():
        raise ConfigError(bilingual(f"--output-dir {path} esiste e non è una cartella",
                                    f"--output-dir {path} exists and is not a directory"),
                          hint="choose a folder path for --output-dir")
    leftovers = {p.name for p in stale_temps(path)}  # temporary files of a crashed hf-ita writer
    entries = sorted(p.name for p in path.iterdir() if p.name not in leftovers) if path.is_dir() else []
    legacy = entries == [run.CHECKPOINTS]  # an interrupted run of a version without manifests
    if entries and not run.is_ours() and not legacy:
        shown = [e for e in entries if e != MANIFEST_NAME]
        raise ConfigError(bilingual(f"la cartella di output {path} contiene file non scritti da hf-ita train, "
                                    "che non vengono sostituiti",
                                    f"output directory {path} holds files hf-ita train did not write, and they are "
                                    f"never replaced: {_sample(shown)}"),
                          hint="choose another (empty or new) --output-dir")
    foreign = run.foreign_entries() if entries and not legacy else []
    if foreign:
        raise ConfigError(bilingual(f"la cartella del run {path} contiene file aggiunti dopo: non vengono sostituiti",
                                    f"run folder {path} holds files hf-ita train did not write, and they are never "
                                    f"replaced: {_sample(foreign)}"),
                          hint="move those files elsewhere, or choose another --output-dir")
    if run.is_finished():
        if resume:
            raise ConfigError(bilingual(f"--resume: {path} è un run già concluso (adapter/ scritto): nulla da riprendere",
                                        f"--resume: {path} is a finished run (adapter/ written): there is nothing to "
                                        "resume, and nothing in it was changed"),
                              hint="to train again, choose another --output-dir")
        raise ConfigError(bilingual(f"la cartella di output {path} contiene già un run (concluso: adapter/ scritto)",
                                    f"output directory {path} already holds a run (finished: adapter/ written)"),
                          hint="choose another --output-dir")
    latest = run.latest_checkpoint()
    if not resume:
        if latest is not None:
            raise ConfigError(bilingual(f"la cartella di output {path} contiene già un run (interrotto, ultimo checkpoint "
                                        f"completo: {latest.name})",
                                        f"output directory {path} already holds a run (interrupted, last complete "
                                        f"checkpoint: {latest.name})"), hint="use --resume to continue it, or choose another --output-dir")
        return None
    if latest is None and not entries:
        raise ConfigError(bilingual(f"nessun checkpoint da riprendere in {run.checkpoints_dir}",
                                    f"no checkpoint to resume in {run.checkpoints_dir}", where="--resume"),
                          hint="run without --resume to start, or point --output-dir at an interrupted run")
    return latest


def _sample(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _last_logged(history: list[dict[str, Any]], key: str):
    for entry in reversed(history):
        if key in entry:
            return entry[key]
    return None


def _peak_memory_mb() -> dict[str, float]:
    import torch

    out = {"process_rss": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        out["cuda_allocated"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _hardware() -> dict[str, Any]:
    """The machine (CPU model and the flags that change kernels, cores, torch, GPU) and torch's thread count."""
    from ..utils.hardware import describe

    info = describe()
    info.pop("load_average", None)  # a property of the moment, not of the machine
    info["cpu_threads"] = info.pop("torch_threads", None)
    info["processes"] = distributed.world_size()
    return info


def _print_trainable(model) -> None:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    print(f"hf-ita: LoRA trains {trainable:,} of {total:,} parameters ({100 * trainable / max(total, 1):.2f}%)")


def print_summary(result: TrainResult) -> None:
    """A short human summary of a finished run."""
    m = RunMetrics.from_dict(result.metrics, source=str(result.metrics_path))
    tr, ev = m.train, m.eval
    lines = [
        "",
        "=== hf-ita: run summary ===",
        f"base model        {m.base_model}  (template {m.template}, quantization {m.quantization})",
        f"data              {m.data.train_examples} train / {m.data.eval_examples} held-out conversations",
        f"training          {tr.steps} steps, final loss {tr.final_loss}, {tr.tokens_per_second} tokens/s, "
        f"{tr.train_runtime_s} s",
    ]
    for key, label in (("response_loss", "response loss"), ("bits_per_byte", "bits per byte")):
        if key in ev.after:
            before = ev.before.get(key)
            change = ev.change.get(key)
            lines.append(f"{label:<17} {before} -> {ev.after[key]}" + (f"  ({change:+.1%})" if change is not None else ""))
    for suffix, setting in (("", "system prompt"), ("_no_system", "no system")):
        cells = [f"{name} {ev.before.get(key + suffix, '-')} -> {ev.after[key + suffix]}"
                 for key, name in (("italian_rate", "Italian"), ("dictionary_rate", "words in dictionary"),
                                   ("loop_rate", "loops"), ("echo_rate", "repeating the prompt"))
                 if key + suffix in ev.after]
        if cells:
            lines.append(f"answers ({setting}) " + ", ".join(cells))
    answers = RunDir(result.output_dir).answers_path
    lines += [f"adapter           {result.adapter_dir}", f"metrics           {result.metrics_path}",
              *([f"answers           {answers}"] if answers.is_file() else []),
              f"loss curve        {result.loss_curve_path}", f"wall time         {m.wall_time_s} s", ""]
    print("\n".join(lines))
