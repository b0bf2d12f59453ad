"""``hf-ita chat MODEL_OR_REPO``: chat in the terminal with the Space's back end, replies streamed."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    chat = subparsers.add_parser(
        "chat", help="chat with a model in the terminal / conversa con un modello",
        description="Conversa con un modello (predefinito incorporato, cartella di addestramento o adattatore, repo "
                    "dell'Hub, GGUF): risposte in streaming. Con --prompt risponde una volta; altrimenti legge un "
                    "messaggio per riga da stdin fino a EOF. / Chat with a model (embedded default, run folder or "
                    "adapter, Hub repo, GGUF), replies streamed. --prompt answers once; otherwise one user message "
                    "per stdin line until EOF, with the conversation kept.")
    chat.add_argument("model", metavar="MODEL_OR_REPO", nargs="?", default="embedded",
                      help="'embedded' (default), an OUTPUT_DIR / adapter / model folder, a .gguf file, a Hub repo "
                           "owner/name or owner/name:file.gguf")
    chat.add_argument("--prompt", help="answer this message and exit")
    chat.add_argument("--system", help="system prompt (default: the Italian default; '' for none)")
    chat.add_argument("--max-new-tokens", type=int, default=256)
    chat.add_argument("--temperature", type=float, default=0.7, help="0 = greedy (default 0.7)")
    chat.add_argument("--seed", type=int, help="sampling seed (reproducible replies)")
    chat.add_argument("--engine", choices=("auto", "llama.cpp", "transformers"), default="auto")
    chat.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    chat.set_defaults(func=run_chat_command)


def _answer(model, history: list[dict[str, str]], message: str, args: argparse.Namespace, params) -> str:
    """Stream one reply to stdout; return its text."""
    chunks = []
    for chunk in model.reply(history, message, system_prompt=args.system, params=params):
        chunks.append(chunk)
        sys.stdout.write(chunk)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
    return "".join(chunks)


def run_chat_command(args: argparse.Namespace) -> int:
    from ...inference.chat import SamplingParams, load_chat_model

    params = SamplingParams(temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed).validated()
    model = load_chat_model(args.model, engine=args.engine, device=args.device)
    print(f"hf-ita: {model.describe()}", file=sys.stderr)
    if args.prompt is not None:
        _answer(model, [], args.prompt, args, params)
        return 0
    interactive = sys.stdin.isatty()
    history: list[dict[str, str]] = []
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        message = line.strip()
        if not message:
            continue
        reply = _answer(model, history, message, args, params)
        history += [{"role": "user", "content": message}, {"role": "assistant", "content": reply}]
    return 0
