"""Packing examples behind their shared prefix, and running the packed rows' attention as
prefix and tails (packed_attention.py), change the cost of training, not what is learned: with
the real base model, the loss and its gradients equal those of one sequence per example."""

import pytest

from askwise.policy import Costs, Turn, render_prompt
from askwise.training import packed_attention
from askwise.training.data import load_ambigqa
from askwise.training.finetune import _collate, encode_examples, packed_spans


@pytest.fixture(scope="module")
def model_and_tokenizer(base_checkpoint):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    return (AutoModelForCausalLM.from_pretrained(base_checkpoint, dtype=torch.float32),
            AutoTokenizer.from_pretrained(base_checkpoint))


def loss_and_grad(model, tokenizer, examples, share: bool, selective: bool, packed: bool = False):
    import torch

    groups, dropped = encode_examples(tokenizer, examples, 1024, share)
    assert dropped == 0
    ids, mask, positions, labels, weights, keep = _collate(groups, list(range(len(groups))), 0,
                                                           selective, 10.0)
    model.set_attn_implementation(packed_attention.register() if packed else "sdpa")
    spans = {"packed_spans": packed_spans(groups, list(range(len(groups))))} if packed else {}
    model.zero_grad()
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                   logits_to_keep=keep, **spans).logits
    per_token = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="none")
    loss = (per_token * weights.reshape(-1)).sum() / weights.sum()
    loss.backward()
    grad = model.model.layers[3].self_attn.q_proj.weight.grad.clone()
    return len(groups), ids.numel(), float(loss.detach()), grad


@pytest.fixture(scope="module")
def examples():
    examples = []
    # Three items: the two packed rows of unequal length leave padding in the shorter one.
    for item in load_ambigqa("dev", limit=3):
        turns = [Turn("user", item.query)]
        for alpha in (0.02, 0.5):
            reply = "#CLARIFY Which one?" if alpha < 0.1 else f"#ANSWER {item.interpretations[0].answers[0]}"
            examples.append((render_prompt(turns, Costs(alpha=alpha, beta=0.001), item.documents), reply))
    return examples


def test_shared_prefix_packing_gives_the_same_loss_and_gradients(model_and_tokenizer, examples):
    model, tokenizer = model_and_tokenizer
    n_alone, tokens_alone, loss_alone, grad_alone = loss_and_grad(model, tokenizer, examples, False, False)
    n_packed, tokens_packed, loss_packed, grad_packed = loss_and_grad(model, tokenizer, examples, True, True)
    assert (n_alone, n_packed) == (6, 3)
    assert tokens_packed < 0.7 * tokens_alone
    assert loss_packed == pytest.approx(loss_alone, rel=1e-4)
    assert (grad_packed - grad_alone).abs().max() <= 1e-4 * grad_alone.abs().max()


def test_prefix_and_tails_attention_gives_the_same_loss_and_gradients(model_and_tokenizer, examples,
                                                                    monkeypatch):
    from transformers.integrations import sdpa_attention

    model, tokenizer = model_and_tokenizer
    *_, loss_mask, grad_mask = loss_and_grad(model, tokenizer, examples, True, True)
    # Each layer of each row must run as a causal prefix call and a batched tails call: a
    # forward that lost `packed_spans` on its way down would run plain SDPA and prove nothing.
    calls, sdpa = [], sdpa_attention.sdpa_attention_forward
    monkeypatch.setattr(sdpa_attention, "sdpa_attention_forward",
                        lambda *args, **kwargs: calls.append(kwargs["is_causal"]) or sdpa(*args, **kwargs))
    *_, loss_split, grad_split = loss_and_grad(model, tokenizer, examples, True, True, packed=True)
    layers = model.config.num_hidden_layers
    assert (calls.count(True), calls.count(False)) == (3 * layers, 3 * layers)
    assert loss_split == pytest.approx(loss_mask, rel=1e-5)
    assert (grad_split - grad_mask).abs().max() <= 1e-5 * grad_mask.abs().max()
