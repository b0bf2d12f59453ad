"""Italian texts, prompts and conversations used to check a GGUF file against transformers."""

from __future__ import annotations

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
