"""Serving a trained policy: a LoRA adapter merged into the base, in-process or exported."""

import asyncio

import torch

from askwise.policy.checkpoints import merged_checkpoint, read_meta
from askwise.policy.engines import SamplingParams
from askwise.policy.engines.transformers_engine import TransformersEngine

CHAT = [{"role": "user", "content": "What is the capital of France?"}]


def greedy(engine, tokens=12):
    engine.wait_ready(300)
    try:
        return asyncio.run(engine.complete(CHAT, SamplingParams(max_tokens=tokens))).text
    finally:
        asyncio.run(engine.aclose())


def peft_reference(base, adapter, tokens=12):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                                      str(adapter)).eval()
    ids = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, do_sample=False)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_embedded_engine_serves_the_adapter(base_checkpoint, adapter):
    base_text = greedy(TransformersEngine(base_checkpoint, dtype="float32"))
    tuned_text = greedy(TransformersEngine(base_checkpoint, adapter=adapter, dtype="float32"))
    assert tuned_text != base_text
    assert tuned_text == peft_reference(base_checkpoint, adapter)


def test_merged_export_is_cached_and_equivalent(base_checkpoint, adapter, tmp_path):
    merged = merged_checkpoint(base_checkpoint, adapter, cache=tmp_path)
    assert read_meta(merged)["kind"] == "merged"
    assert merged_checkpoint(base_checkpoint, adapter, cache=tmp_path) == merged
    via_adapter = greedy(TransformersEngine(base_checkpoint, adapter=adapter, dtype="float32"))
    assert greedy(TransformersEngine(merged, dtype="float32")) == via_adapter
