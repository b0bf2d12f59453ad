"""Synthetic generation from taxonomy seeds: an OpenAI-compatible endpoint (a local server written
here that speaks /v1/chat/completions), the embedded model through transformers and llama.cpp."""

from __future__ import annotations

import json
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hf_ita_plugin.cli.main import main
from hf_ita_plugin.data.generate import (
    GenerateOptions,
    OpenAICompatibleTeacher,
    build_prompt,
    generate,
    make_teacher,
    parse_pairs,
)
from hf_ita_plugin.data.prepare import PrepareOptions
from hf_ita_plugin.data.taxonomy import load_taxonomy
from hf_ita_plugin.errors import ConfigError, ModelError

from test_data_sources import write_taxonomy

SECRET = "sk-test-segreto-123"

REPLIES = {
    "storia d'Italia": (
        "1. Domanda: Chi fu il primo re d'Italia?\nRisposta: Vittorio Emanuele II di Savoia, re dal 1861.\n\n"
        "3. Domanda: Where was the kingdom proclaimed?\nRisposta: The kingdom was proclaimed in Turin, which was then the capital city.\n"
    ),
    "congiuntivo": (
        "Domanda: Correggi \"Spero che vieni\".\nRisposta: ### Risposta: La forma corretta è \"Spero che tu venga\": "
        "\"sperare che\" regge il congiuntivo.</s>\n\n"
        "Domanda: Correggi la frase \"Penso che è tardi\".\nRisposta: La forma corretta è \"Penso che sia tardi\", "
        "perché \"pensare che\" regge il congiuntivo.\n"  # a copy of the seed
    ),
    "email": "Mi dispiace, non posso aiutarti con questa richiesta.",
}


class ChatServer(BaseHTTPRequestHandler):
    """Speaks POST /v1/chat/completions; answers by the topic named in the prompt."""

    requests: list[dict] = []
    auth: list[str | None] = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        if body.get("model") == "rotto":
            self._send(500, {"error": {"message": "modello non caricato"}})
            return
        type(self).requests.append(body)
        type(self).auth.append(self.headers.get("Authorization"))
        prompt = body["messages"][-1]["content"]
        reply = next((text for topic, text in REPLIES.items() if topic in prompt), "")
        self._send(200, {"id": "x", "object": "chat.completion", "model": body.get("model"),
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": reply}}]})

    def _send(self, code, payload):
        data = json.dumps(payload).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def endpoint():
    ChatServer.requests, ChatServer.auth = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_parse_pairs_formats():
    text = "**Domanda:** Uno?\n**Risposta:** Primo.\n\nD: Due?\nR: Secondo,\nsu due righe.\n\nQuestion: Tre?\nAnswer: Terzo."
    assert parse_pairs(text) == [("Uno?", "Primo."), ("Due?", "Secondo,\nsu due righe."), ("Tre?", "Terzo.")]
    assert parse_pairs("Nessuna coppia qui.") == []


def test_prompt_shows_task_context_and_seeds(tmp_path):
    leaves = load_taxonomy(write_taxonomy(tmp_path / "tax"))
    prompt = build_prompt(leaves[0], n_pairs=4)
    user = prompt[-1]["content"]
    assert prompt[0]["role"] == "system"
    assert "storia d'Italia" in user and "Vittorio Emanuele II" in user  # the document is the context
    assert "Domanda: Quando fu proclamato il Regno d'Italia?" in user and "Scrivi 4 nuove coppie" in user


def test_generate_through_an_openai_compatible_endpoint(tmp_path, endpoint, monkeypatch):
    monkeypatch.setenv("HF_ITA_TEACHER_API_KEY", SECRET)
    out = tmp_path / "gen"
    options = GenerateOptions(rounds=1, pairs_per_request=3, temperature=0.0, prepare=PrepareOptions(progress=False))
    result = generate(write_taxonomy(tmp_path / "tax"), endpoint + "/v1", out, teacher_model="maestro", options=options)
    assert result.train_path == out / "train.jsonl" and result.report.kept == 6
    assert len(ChatServer.requests) == 3 and ChatServer.requests[0]["model"] == "maestro"
    assert ChatServer.requests[0]["max_tokens"] == options.max_new_tokens
    assert set(ChatServer.auth) == {f"Bearer {SECRET}"}
    rows = [json.loads(l) for l in (out / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    answers = [r["messages"][1]["content"] for r in rows]
    # 4 seeds + the new Italian pairs; the English pair, the seed copy and the refusal-without-pairs are reported
    assert len(rows) == 6
    assert "Vittorio Emanuele II di Savoia, re dal 1861." in answers
    assert any(a.startswith('La forma corretta è "Spero che tu venga"') and a.endswith("congiuntivo.") for a in answers)
    reasons = sorted(r["reason"] for r in map(json.loads, (out / "rejected.jsonl").read_text(encoding="utf-8").splitlines()))
    assert reasons == ["exact_duplicate", "not_italian", "unparseable"]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["stats"]["generated_pairs"] == 4 and report["fixed_by_kind"]["template_leak_removed"] == 1
    raw = (out / "generated_raw.jsonl").read_text(encoding="utf-8")
    assert "Vittorio Emanuele" in raw
    for path in out.iterdir():  # the API key is never written anywhere
        assert SECRET not in path.read_text(encoding="utf-8")


def test_endpoint_errors_are_clear(tmp_path, endpoint):
    teacher = OpenAICompatibleTeacher(endpoint, model="rotto")
    with pytest.raises(ModelError, match=r"answered HTTP 500: .*modello non caricato"):
        teacher.chat([{"role": "user", "content": "ciao"}], max_new_tokens=8, temperature=0, seed=0)
    with pytest.raises(ModelError, match="answered HTTP 404"):
        OpenAICompatibleTeacher(endpoint + "/altro/chat/completions").chat(
            [{"role": "user", "content": "ciao"}], max_new_tokens=8, temperature=0, seed=0)
    with pytest.raises(ModelError, match="cannot reach the teacher endpoint"):
        OpenAICompatibleTeacher("http://127.0.0.1:9", timeout=5).chat(
            [{"role": "user", "content": "ciao"}], max_new_tokens=8, temperature=0, seed=0)
    with pytest.raises(ConfigError, match="is not a URL, a .gguf file"):
        make_teacher(str(tmp_path / "nessun-modello"))


def test_cli_generate(tmp_path, endpoint, capsys):
    tax = write_taxonomy(tmp_path / "tax")
    code = main(["data", "generate", str(tax), "--teacher", endpoint, "--rounds", "1", "--output-dir", str(tmp_path / "o"), "--quiet"])
    assert code == 0 and "6/9" in capsys.readouterr().out
    assert main(["data", "generate", str(tax), "--teacher", endpoint, "--output-dir", str(tmp_path / "o")]) == 2
    assert "is not empty" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("teacher", ["embedded", "embedded-gguf"])
def test_local_teachers_run_end_to_end(tmp_path, teacher, request):
    """The embedded SmolLM2 as teacher (transformers, then llama.cpp): whatever it writes is kept or reported."""
    if teacher == "embedded-gguf":
        pytest.importorskip("llama_cpp")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see test_eval_suite.one_torch_thread
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    leaf = tmp_path / "tax" / "compositional_skills" / "saluti" / "qna.yaml"
    leaf.parent.mkdir(parents=True)
    leaf.write_text(textwrap.dedent("""
        version: 3
        task_description: Scrivere brevi saluti in italiano
        seed_examples:
          - question: Scrivi un saluto per un collega.
            answer: Buongiorno Luca, ti auguro una buona giornata di lavoro!
        """).lstrip(), encoding="utf-8")
    options = GenerateOptions(rounds=1, pairs_per_request=2, max_new_tokens=40, temperature=0.0,
                              prepare=PrepareOptions(progress=False))
    result = generate(tmp_path / "tax", teacher, tmp_path / "out", options=options)
    replies = [json.loads(l) for l in (tmp_path / "out" / "generated_raw.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(replies) == 1 and isinstance(replies[0]["reply"], str) and replies[0]["reply"].strip()
    report = result.report
    report.check_complete()
    assert report.input_rows == 1 + max(1, replies[0]["pairs"])
    assert report.kept >= 1  # the seed survives; generated rows are kept or reported with a reason
