"""The cleaner on a messy machine-translated Italian sample keeps exactly the good rows."""

from __future__ import annotations

import json

import pytest

from hf_ita_plugin.data import load_examples
from hf_ita_plugin.data.cleaning import CleaningConfig, clean_conversation, clean_text, split_code
from hf_ita_plugin.data.language import identify, requested_languages
from hf_ita_plugin.data.prepare import PrepareOptions, prepare_examples

CODE_ANSWER = (
    "Puoi   usare `sorted(voti,  key=len)` così:\n\n"
    "```python\n"
    "def  ordina(voti):\n"
    "    # ordina  per lunghezza   \n"
    "    return sorted(voti,  key=len)\n"
    "\n\n\n"
    "print(ordina(['bb', 'a']))\n"
    "```\n\n\n\n"
    "La funzione restituisce una nuova lista ordinata, senza modificare quella originale."
)

GOOD = {"instruction": "Spiega perché il cielo è azzurro.",
        "output": "Il cielo appare azzurro perché l'atmosfera diffonde la luce blu del sole più delle altre "
                  "lunghezze d'onda: è la cosiddetta diffusione di Rayleigh."}

# (row, expected: "keep" or the rejection reason)
MESSY = [
    (GOOD, "keep"),
    ({"instruction": "Qual Ã¨ la capitale della Francia?",
      "output": "La capitale della Francia Ã¨ Parigi, una cittÃ  famosa per la Torre Eiffel e per i suoi musei."}, "keep"),
    ({"instruction": "### Istruzione:\nDai un consiglio per dormire meglio.",
      "output": "### Risposta:\nCerca di andare a letto sempre alla stessa ora e di evitare gli schermi la sera.\n\n"
                "### Istruzione:\nScrivi una poesia"}, "keep"),
    ({"instruction": "Come si dice grazie in tedesco?",
      "output": "<|im_start|>assistant\nIn tedesco grazie si dice «danke», e «danke schön» è più cortese.<|im_end|>"}, "keep"),
    ({"instruction": "Descrivi una giornata al mare.",
      "output": "A day at the beach is relaxing: you can swim, read a book under the umbrella and eat an ice cream."}, "not_italian"),
    ({"instruction": "Traduci in inglese: «Domani andiamo al mercato a comprare la frutta».",
      "output": "Tomorrow we are going to the market to buy some fruit."}, "keep"),
    ({"instruction": "Spiega perché il cielo è azzurro.",
      "output": "Il cielo appare azzurro perché l'atmosfera diffonde la luce blu del sole più delle altre "
                "lunghezze d'onda: è la cosiddetta diffusione di Rayleigh, descritta nell'Ottocento."}, "near_duplicate"),
    ({"instruction": "  spiega PERCHÉ il cielo è azzurro ",
      "output": "Il cielo appare azzurro, perché l'atmosfera diffonde la luce blu del sole più delle altre "
                "lunghezze d'onda; è la cosiddetta diffusione di Rayleigh."}, "exact_duplicate"),
    ({"instruction": "Scrivi un saluto.", "output": "### Risposta:"}, "empty"),
    ({"instruction": "Scrivi la prima lettera dell'alfabeto.", "output": "A"}, "too_short"),
    ({"instruction": "Come ordino una lista di parole per lunghezza in Python?", "output": CODE_ANSWER}, "keep"),
    ({"instruction": "Conta fino a tre.", "output": 3}, "invalid"),
    ({"domanda": "Che ore sono?", "risposta": "Non lo so."}, "invalid"),
    ({"instruction": "Scrivi un tema lungo.", "output": "Questa è una frase italiana abbastanza lunga. " * 500}, "too_long"),
    ({"instruction": "Input: Che cos'è un vulcano?",
      "output": "Output: Un vulcano è un'apertura della crosta terrestre da cui escono lava, gas e ceneri."}, "keep"),
]


@pytest.fixture(scope="module")
def messy_result(tmp_path_factory):
    path = tmp_path_factory.mktemp("messy") / "messy.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r, _ in MESSY) + "\n", encoding="utf-8")
    loaded = load_examples(str(path))
    return prepare_examples(loaded, PrepareOptions(progress=False))


def test_keeps_exactly_the_good_rows(messy_result):
    kept = [ex.index for ex in messy_result.examples]
    assert kept == [i for i, (_, expected) in enumerate(MESSY) if expected == "keep"]
    reasons = {r.index: r.reason for r in messy_result.report.rejections}
    assert reasons == {i: expected for i, (_, expected) in enumerate(MESSY) if expected != "keep"}
    messy_result.report.check_complete()


def test_cleaned_contents(messy_result):
    by_index = {ex.index: ex.messages for ex in messy_result.examples}
    assert by_index[1][0]["content"] == "Qual è la capitale della Francia?"
    assert "città" in by_index[1][1]["content"] and "Ã" not in by_index[1][1]["content"]
    assert by_index[2] == [
        {"role": "user", "content": "Dai un consiglio per dormire meglio."},
        {"role": "assistant", "content": "Cerca di andare a letto sempre alla stessa ora e di evitare gli schermi la sera."},
    ]
    assert by_index[3][1]["content"] == "In tedesco grazie si dice «danke», e «danke schön» è più cortese."
    assert by_index[14][0]["content"] == "Che cos'è un vulcano?"
    assert by_index[14][1]["content"].startswith("Un vulcano è")


def test_code_is_kept_as_code(messy_result):
    answer = next(ex.messages[1]["content"] for ex in messy_result.examples if ex.index == 10)
    fence = CODE_ANSWER[CODE_ANSWER.index("```python"): CODE_ANSWER.rindex("```") + 3]
    assert fence in answer  # byte for byte: indentation, double spaces, blank lines inside the block
    assert "`sorted(voti,  key=len)`" in answer  # inline code untouched
    assert answer.startswith("Puoi usare `")  # prose spaces collapsed
    assert "```\n\nLa funzione" in answer  # 4 newlines after the block became one blank line


def test_report_counts_and_examples(messy_result):
    d = messy_result.report.to_dict()
    assert d["input_rows"] == len(MESSY) and d["kept"] == 7
    assert d["dropped_by_reason"]["invalid"] == 2
    assert d["fixed_by_kind"]["encoding_repaired"] == 1
    assert d["fixed_by_kind"]["template_leak_removed"] == 3
    assert d["examples_by_reason"]["near_duplicate"][0]["detail"].startswith("duplicate of row 0")
    assert "missing field 'instruction'" in d["examples_by_reason"]["invalid"][1]["detail"] or \
        "cannot tell the format" in d["examples_by_reason"]["invalid"][1]["detail"]
    md = messy_result.report.to_markdown()
    assert "quasi duplicato / near duplicate" in md and "| 7" not in md.split("## ")[0]


@pytest.mark.parametrize("text, expected", [
    ("Ciao</s>", "Ciao"),
    ("[INST] Ciao [/INST]", "Ciao"),
    ("<|start_header_id|>assistant<|end_header_id|>\n\nBuongiorno!<|eot_id|>", "Buongiorno!"),
    ("Risposta: Sì, certo.", "Sì, certo."),
    ("Prima riga   con  spazi\t\tdoppi   \n\n\n\nSeconda riga", "Prima riga con spazi doppi\n\nSeconda riga"),
    ("  - elenco\n    - annidato", "- elenco\n    - annidato"),
])
def test_clean_text_cases(text, expected):
    cleaned, _ = clean_text(text, "assistant", CleaningConfig())
    assert cleaned == expected


def test_nfc_normalisation():
    decomposed = "perche\u0301 e\u0300"  # e + combining accents
    cleaned, fixes = clean_text(decomposed, "user", CleaningConfig())
    assert cleaned == "perché è" and "unicode_normalized" in fixes


@pytest.mark.parametrize("damaged, repaired", [
    ("Lâ€™Italia è una repubblica â€“ dal 1946.", "L’Italia è una repubblica – dal 1946."),  # only 'plain' characters
    ("PerchÃ© no? Ãˆ cosÃ¬.", "Perché no? È così."),
    ("Disse: Â«Andiamo a 30Â°Â».", "Disse: «Andiamo a 30°»."),
])
def test_mojibake_is_repaired_even_when_made_of_plain_characters(damaged, repaired):
    cleaned, fixes = clean_text(damaged, "assistant", CleaningConfig())
    assert cleaned == repaired and fixes == ["encoding_repaired"]


def test_plain_italian_typography_is_left_alone():
    text = "«Città», disse: “Sì” – è l’unica… 5 € o 3° posto; caffè·latte «perché» «È»"
    assert clean_text(text, "assistant", CleaningConfig()) == (text, [])


def test_split_code_round_trips():
    text = "a `b` c\n```\nd  e\n```\nf ~~~x~~~"
    assert "".join(p for _, p in split_code(text)) == text
    assert [c for c, _ in split_code(text)][:4] == [False, True, False, True]


def test_language_identification_and_requests():
    assert identify("Il treno per Milano parte alle otto e arriva a destinazione alle dieci.").language == "it"
    assert identify("The train to Milan leaves at eight and arrives at ten o'clock.").language == "en"
    assert identify("```python\nprint('hello world, this is code only')\n```").language is None
    assert identify("Sì.").language is None
    assert requested_languages("Traduci in inglese questa frase") == {"en"}
    assert requested_languages("Rispondi in lingua francese") == {"fr"}
    assert requested_languages("Spiega la fotosintesi") == set()


def test_invalid_structures_are_reasons_not_crashes():
    assert clean_conversation("ciao").reason == "invalid"
    assert clean_conversation([]).reason == "invalid"
    assert clean_conversation([{"role": "user", "content": None}]).reason == "invalid"
    out = clean_conversation([{"role": "assistant", "content": "Ciao a tutti, come state oggi?"}])
    assert out.reason == "invalid" and "user" in out.detail


def test_fast_italian_check_agrees_with_the_model():
    from hf_ita_plugin.data import load_conversations
    from hf_ita_plugin.data.language import looks_italian

    answers = [m["content"] for c in load_conversations("bundled-heldout") for m in c if m["role"] == "assistant"]
    fast = [a for a in answers if looks_italian(a)]
    assert len(fast) >= len(answers) // 2  # most real Italian answers skip the model...
    assert all(identify(a).language == "it" for a in fast)  # ...and the model agrees on every one
    for other in ["El perro de mi vecino es muy grande y ladra todas las noches cuando pasa alguien por la calle.",
                  "Le chien de mon voisin est très grand et il aboie toutes les nuits quand quelqu'un passe dans la rue.",
                  "O cachorro do meu vizinho é muito grande e late todas as noites quando alguém passa na rua.",
                  "The dog of my neighbour is very big and it barks every night when someone walks in the street."]:
        assert not looks_italian(other)
