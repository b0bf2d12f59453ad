"""hf_ita_plugin.inference.generate: one transformers generation path (greedy, sampled, batched, streamed)."""

from __future__ import annotations

import pytest
import torch

from hf_ita_plugin.inference.generate import generate, generate_batch, stop_token_ids, stream
from hf_ita_plugin.models import load_base, load_tokenizer
from hf_ita_plugin.models.embedded import ensure_embedded_model

QUESTION = [{"role": "user", "content": "Qual è la capitale d'Italia?"}]


@pytest.fixture(scope="module")
def smollm2():
    path = ensure_embedded_model(verbose=False)
    return load_base(path, dtype="float32").eval(), load_tokenizer(path)


def test_stop_ids_include_the_end_of_turn_token(smollm2):
    model, tokenizer = smollm2
    stops = stop_token_ids(model, tokenizer)
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in stops and tokenizer.eos_token_id in stops


def test_greedy_equals_plain_transformers_generate(smollm2):
    model, tokenizer = smollm2
    text = generate(model, tokenizer, QUESTION, max_new_tokens=10)
    ids = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=10, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert text and text == tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def test_batches_are_left_padded_like_single_prompts(smollm2):
    model, tokenizer = smollm2
    convs = [QUESTION, [{"role": "system", "content": "Rispondi in breve."},
                        {"role": "user", "content": "Dimmi il nome di un fiume italiano lungo."}]]
    together = generate_batch(model, tokenizer, convs, max_new_tokens=8, batch_size=2)
    assert together == [generate(model, tokenizer, c, max_new_tokens=8) for c in convs]


def test_stream_sampling_seed_and_training_mode(smollm2):
    model, tokenizer = smollm2
    chunks = list(stream(model, tokenizer, QUESTION, max_new_tokens=10))
    assert len(chunks) >= 2 and "".join(chunks).strip() == generate(model, tokenizer, QUESTION, max_new_tokens=10)
    sampled = [generate(model, tokenizer, QUESTION, max_new_tokens=10, temperature=1.0, top_k=50, top_p=0.95, seed=s)
               for s in (1, 1, 2)]
    assert sampled[0] == sampled[1] and sampled[0] != sampled[2]
    model.train()
    generate(model, tokenizer, QUESTION, max_new_tokens=2)
    assert model.training  # restored after generating in eval mode
    model.eval()
    with pytest.raises(ValueError, match="batch_size must be 1"):
        generate_batch(model, tokenizer, [QUESTION, QUESTION], streamer=object(), batch_size=2)
