"""hf_ita_plugin.inference.chat: llama.cpp (embedded GGUF, GGUF repos) and transformers + peft (adapters), streamed."""

from __future__ import annotations

import shutil

import pytest

from hf_ita_plugin.inference.chat import (
    LlamaCppChat, SamplingParams, TransformersChat, build_messages, load_chat_model, normalize_history, parse_source,
    pick_gguf,
)
from hf_ita_plugin.models.embedded import EMBEDDED_HUB_ID, embedded_gguf_path, ensure_embedded_model
from hf_ita_plugin.errors import ConfigError, HubError, ModelError
from hf_ita_plugin.rundir import RunDir, RunMetrics
from hf_ita_plugin.templates import DEFAULT_SYSTEM_PROMPT
from jobs_server import hub_endpoint, jobs_hub  # noqa: F401 - fixtures

GREEDY = SamplingParams(temperature=0.0, max_new_tokens=12, repetition_penalty=1.0)
QUESTION = "Qual è la capitale d'Italia?"


@pytest.fixture(scope="module")
def embedded_llama():
    return load_chat_model(None, n_threads=2)


@pytest.fixture(scope="module")
def adapter_run(tmp_path_factory):
    """A training OUTPUT_DIR as the recipe writes it: adapter/ (peft + tokenizer with template) + metrics.json."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("run")
    base = ensure_embedded_model(verbose=False)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    peft_model.peft_config["default"].base_model_name_or_path = EMBEDDED_HUB_ID
    run = RunDir(out)
    peft_model.save_pretrained(run.adapter_dir)
    AutoTokenizer.from_pretrained(base).save_pretrained(run.adapter_dir)
    run.write_metrics(RunMetrics(base_model=EMBEDDED_HUB_ID, template="chatml"))
    return out


# ---------------------------------------------------------------------------------- inputs
def test_messages_default_system_prompt_and_history():
    history = [{"role": "user", "content": "Ciao"},
               {"role": "assistant", "content": [{"type": "text", "text": "Ciao! "}, {"type": "text", "text": "Dimmi."}]}]
    msgs = build_messages(history, f"  {QUESTION} ")
    assert msgs[0] == {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
    assert msgs[1:] == [{"role": "user", "content": "Ciao"}, {"role": "assistant", "content": "Ciao! Dimmi."},
                        {"role": "user", "content": QUESTION}]
    assert build_messages([], "Ciao", "")[0]["role"] == "user"
    assert build_messages([], "Ciao", "Sii breve.")[0] == {"role": "system", "content": "Sii breve."}
    with pytest.raises(ConfigError, match="vuoto|empty"):
        build_messages([], "   ")
    with pytest.raises(ConfigError, match=r"history\[0\]"):
        normalize_history([{"role": "robot", "content": "x"}])


@pytest.mark.parametrize("field, value", [("temperature", 2.5), ("top_k", 500), ("top_p", 0.0),
                                          ("repetition_penalty", 0.5), ("max_new_tokens", 0), ("top_k", 4.5)])
def test_sampling_bounds_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        SamplingParams(**{field: value}).validated()


def test_source_parsing():
    assert parse_source(None) == ("embedded", None)
    assert parse_source("embedded") == ("embedded", None)
    assert parse_source("mario/smol-ita") == ("hub", "mario/smol-ita")
    assert parse_source("mario/smol-ita-gguf:model-Q8_0.gguf") == ("hub", "mario/smol-ita-gguf:model-Q8_0.gguf")
    with pytest.raises(HubError, match="invalid model.*malformed repo id 'not a model id'"):
        parse_source("not a model id")
    with pytest.raises(HubError, match="invalid model"):  # the Space never reads server paths
        parse_source("/etc/passwd", allow_local=False)
    with pytest.raises(HubError, match="malformed repo id 'mario/x--y'"):  # the Hub's own rules, as for push
        parse_source("mario/x--y:model.gguf")
    with pytest.raises(HubError, match=r"\.gguf file name after ':'"):
        parse_source("mario/smol-ita:weights.bin")
    assert pick_gguf(["m-F16.gguf", "m-Q8_0.gguf", "m-Q4_K_M.gguf"]) == "m-Q4_K_M.gguf"
    assert pick_gguf(["m.f16.gguf", "m.Q8_0.gguf"]) == "m.Q8_0.gguf"


# ---------------------------------------------------------------------------------- llama.cpp
def test_embedded_streams_through_llama_cpp(embedded_llama):
    assert isinstance(embedded_llama, LlamaCppChat)
    assert embedded_llama.engine == "llama.cpp" and embedded_llama.template == "smollm2"  # its official template, recognised
    chunks = list(embedded_llama.reply([], QUESTION, params=SamplingParams(max_new_tokens=16, seed=3)))
    assert len(chunks) >= 3 and "".join(chunks).strip()
    assert embedded_llama.count_tokens("".join(chunks)) <= 16 + 1


def test_greedy_is_deterministic_and_history_matters(embedded_llama):
    first = "".join(embedded_llama.reply([], QUESTION, params=GREEDY))
    again = "".join(embedded_llama.reply([], QUESTION, params=GREEDY))
    assert first == again and first.strip()
    other_system = "".join(embedded_llama.reply([], QUESTION, system_prompt="You are a pirate. Answer in English.",
                                                params=GREEDY))
    assert other_system != first


# ---------------------------------------------------------------------------------- transformers + peft
@pytest.mark.slow
def test_local_adapter_with_transformers_matches_peft_generate(adapter_run):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    chat = load_chat_model(str(adapter_run), device="cpu")
    assert isinstance(chat, TransformersChat) and chat.template == "chatml" and chat.device == "cpu"
    streamed = list(chat.reply([], QUESTION, params=GREEDY))
    text = "".join(streamed)
    assert len(streamed) >= 2 and text.strip()

    tok = AutoTokenizer.from_pretrained(adapter_run / "adapter")
    base = AutoModelForCausalLM.from_pretrained(ensure_embedded_model(verbose=False), dtype=torch.float32)
    ids = tok.apply_chat_template(build_messages([], QUESTION), add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)
    with torch.inference_mode():
        plain = base.generate(**ids, max_new_tokens=12, do_sample=False)
        tuned = PeftModel.from_pretrained(base, adapter_run / "adapter").generate(**ids, max_new_tokens=12, do_sample=False)
    n = ids["input_ids"].shape[1]
    assert text == tok.decode(tuned[0, n:], skip_special_tokens=True)
    assert text != tok.decode(plain[0, n:], skip_special_tokens=True)  # the adapter is really applied


# ---------------------------------------------------------------------------------- Hub repos
def test_gguf_repo_from_the_hub(hub_endpoint, tmp_path):
    from huggingface_hub import HfApi

    server = hub_endpoint.server
    token = server.add_token("mario")
    api = HfApi(endpoint=server.url, token=token)
    api.create_repo("mario/smol-gguf", private=True)
    gguf = tmp_path / "smol-ita-Q4_1.gguf"
    shutil.copyfile(embedded_gguf_path(), gguf)
    api.upload_file(path_or_fileobj=str(gguf), path_in_repo=gguf.name, repo_id="mario/smol-gguf")
    api.upload_file(path_or_fileobj=b"not a model", path_in_repo="notes-F16.gguf.txt", repo_id="mario/smol-gguf")

    chat = load_chat_model("mario/smol-gguf", token=token, endpoint=server.url, cache_dir=tmp_path / "cache", n_threads=2)
    assert isinstance(chat, LlamaCppChat) and chat.source == "mario/smol-gguf:smol-ita-Q4_1.gguf"
    assert "".join(chat.reply([], "Ciao!", params=SamplingParams(max_new_tokens=6))).strip()

    with pytest.raises(ModelError, match="missing.gguf"):
        load_chat_model("mario/smol-gguf:missing.gguf", token=token, endpoint=server.url, cache_dir=tmp_path / "cache")
    with pytest.raises(ModelError, match="not found"):  # private: invisible without the owner's token
        load_chat_model("mario/smol-gguf", token=False, endpoint=server.url, cache_dir=tmp_path / "cache")


@pytest.mark.slow
def test_adapter_repo_from_the_hub(hub_endpoint, adapter_run, tmp_path):
    from huggingface_hub import HfApi

    server = hub_endpoint.server
    token = server.add_token("mario")
    api = HfApi(endpoint=server.url, token=token)
    api.create_repo("mario/smol-ita")
    api.upload_folder(folder_path=str(adapter_run / "adapter"), repo_id="mario/smol-ita")
    chat = load_chat_model("mario/smol-ita", token=token, endpoint=server.url, cache_dir=tmp_path / "cache", device="cpu")
    assert isinstance(chat, TransformersChat) and chat.source == "mario/smol-ita"
    local = load_chat_model(str(adapter_run), device="cpu")
    assert "".join(chat.reply([], QUESTION, params=GREEDY)) == "".join(local.reply([], QUESTION, params=GREEDY))

    # As `hf-ita push --gguf` publishes it: adapter at the root, GGUF files in gguf/. On CPU the GGUF wins.
    api.upload_file(path_or_fileobj=str(embedded_gguf_path()), path_in_repo="gguf/smol-ita-Q4_1.gguf", repo_id="mario/smol-ita")
    on_cpu = load_chat_model("mario/smol-ita", token=token, endpoint=server.url, cache_dir=tmp_path / "cache", device="cpu")
    assert isinstance(on_cpu, LlamaCppChat) and on_cpu.source == "mario/smol-ita:gguf/smol-ita-Q4_1.gguf"
    forced = load_chat_model("mario/smol-ita", token=token, endpoint=server.url, cache_dir=tmp_path / "cache",
                             device="cpu", engine="transformers")
    assert isinstance(forced, TransformersChat)


def test_repo_without_model_files(hub_endpoint, tmp_path):
    from huggingface_hub import HfApi

    server = hub_endpoint.server
    token = server.add_token("mario")
    api = HfApi(endpoint=server.url, token=token)
    api.create_repo("mario/empty")
    with pytest.raises(ModelError, match="no GGUF, adapter or model"):
        load_chat_model("mario/empty", token=token, endpoint=server.url, cache_dir=tmp_path)
    with pytest.raises(ModelError, match="not found"):
        load_chat_model("mario/nothing-here", token=token, endpoint=server.url, cache_dir=tmp_path)


# ---------------------------------------------------------------------------------- hf-ita chat (the real CLI)
def _hf_ita_chat(*args: str, stdin: str | None = None):
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "hf_ita_plugin.cli", "chat", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_chat_prompt_and_stdin_on_the_embedded_gguf(embedded_llama):
    once = _hf_ita_chat("embedded", "--prompt", QUESTION, "--temperature", "0", "--max-new-tokens", "12")
    assert once.returncode == 0, once.stderr[-2000:]
    assert "llama.cpp" in once.stderr and "SmolLM2" in once.stderr
    answer = once.stdout.strip()
    assert answer and embedded_llama.count_tokens(answer) <= 12 + 1

    # stdin: one message per line (blank lines skipped) until EOF; the first reply is the --prompt one,
    # the second comes after it in the same conversation
    session = _hf_ita_chat("--temperature", "0", "--max-new-tokens", "12", stdin=f"{QUESTION}\n\nE di dove sei?\n")
    assert session.returncode == 0, session.stderr[-2000:]
    assert session.stdout.startswith(once.stdout)
    assert session.stdout[len(once.stdout):].strip()

    sampled = _hf_ita_chat("--prompt", QUESTION, "--temperature", "0.9", "--seed", "7", "--max-new-tokens", "12",
                           "--system", "")
    assert sampled.returncode == 0 and sampled.stdout.strip()


def test_cli_chat_errors_are_clear():
    bad = _hf_ita_chat("mario/bad name", "--prompt", "Ciao")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "malformed repo id 'mario/bad name'" in bad.stderr and "owner/name:file.gguf" in bad.stderr
    wrong = _hf_ita_chat("--prompt", "Ciao", "--temperature", "5")
    assert wrong.returncode == 2 and "temperature" in wrong.stderr and "Traceback" not in wrong.stderr
