"""Italian texts, prompts and conversations used to check a GGUF file against transformers."""

from __future__ import annotations

from ..data.loaders import bundled_data_path

PROSE_FILE = "prose_it.txt"
"""Bundled original Italian prose (CC BY 4.0, see ``data/bundled/README.md``), never used for training."""
DEFAULT_PROSE_CHARS = 2000
"""Prose characters in the default logit suite: with the prompts, ~800 scored positions for SmolLM2's 49k BPE
vocabulary (several thousand for the tiny test tokenizers), a few seconds per check on CPU. The benchmark
(``bench/bench_gguf.py --quality``) scores the whole file (~10k positions) for tighter intervals."""
PASSAGE_CHARS = 1200

TOKENIZATION_TEXTS: list[str] = [
    "Roma è la capitale d'Italia.",
    "L'anno scorso, nel 2023, abbiamo speso 1.234,56 € per l'affitto: però è più caro di prima!",
    "Perché c'è tanta gente all'ufficio postale? Boh... forse è lunedì.",
    "«Questo è un esempio», disse lei — con un sorriso.",
    "È Università, Città, Più: maiuscole accentate; àèéìòù minuscole.",
    "Riga uno\nRiga due\n\n  rientro di due spazi\tcon tabulazione.",
    "Il caffè ☕ costa 1,20 € 😊 e il cornetto 🥐 0,90.",
    "dell'anno, sull'isola, quest'estate, un'amica, c'era, po' di più",
    "URL: https://www.esempio.it/pagina?id=42&lingua=it — email: mario.rossi@esempio.it",
    "def somma(a, b):\n    return a + b  # funzione in Python",
]

LOGIT_PROMPTS: list[str] = [
    "La capitale d'Italia è Roma, una città ricca di storia",
    "Per preparare una buona carbonara servono uova, guanciale e pecorino.",
    "Ieri sera siamo andati al cinema e abbiamo visto un film italiano.",
    "Scrivi una breve poesia sul mare di Sicilia.",
    "L'Italia è una repubblica parlamentare dell'Europa meridionale: comprende la penisola, la Sicilia, "
    "la Sardegna e molte isole minori, e confina con Francia, Svizzera, Austria e Slovenia.",
    "Utente: mi consigli un libro per l'estate?\nAssistente: Certo! Ti consiglio «Il nome della rosa» di "
    "Umberto Eco, un romanzo ambientato in un'abbazia medievale.",
]

GENERATION_PROMPTS: list[str] = [
    "La pizza margherita è fatta con",
    "Il fiume più lungo d'Italia è",
]

CONVERSATIONS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Ciao! Come stai?"}],
    [
        {"role": "system", "content": "Sei un assistente che risponde in italiano."},
        {"role": "user", "content": "Qual è la capitale della Francia?"},
    ],
    [
        {"role": "user", "content": "Dimmi un proverbio."},
        {"role": "assistant", "content": "Chi dorme non piglia pesci."},
        {"role": "user", "content": "Cosa significa?"},
    ],
]


def prose_passages(max_chars: int | None = DEFAULT_PROSE_CHARS, passage_chars: int = PASSAGE_CHARS) -> list[str]:
    """Whole paragraphs of the bundled prose grouped into passages of about ``passage_chars`` characters.

    ``max_chars`` bounds the total (None: the whole file, ~34k characters). Passages follow the file's
    order, so a given budget always yields the same texts.
    """
    text = bundled_data_path(PROSE_FILE).read_text(encoding="utf-8")
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    passages: list[str] = []
    current: list[str] = []
    total = 0
    for para in paragraphs:
        if max_chars is not None and total + len(para) > max_chars:
            break
        if current and sum(map(len, current)) + len(para) > passage_chars:
            passages.append("\n\n".join(current))
            current = []
        current.append(para)
        total += len(para)
    if current:
        passages.append("\n\n".join(current))
    return passages


def logit_texts(max_prose_chars: int | None = DEFAULT_PROSE_CHARS) -> list[str]:
    """Texts whose every position is scored by the logit check: :data:`LOGIT_PROMPTS` plus prose passages."""
    return LOGIT_PROMPTS + prose_passages(max_prose_chars)
