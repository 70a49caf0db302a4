"""Packing examples behind their shared prefix changes the cost of training, not what is
learned: with the real base model, the loss and its gradients equal those of one sequence per
example."""

import pytest

from askwise.policy import Costs, Turn, render_prompt
from askwise.training.data import load_ambigqa
from askwise.training.finetune import _collate, encode_examples


@pytest.fixture(scope="module")
def model_and_tokenizer(base_checkpoint):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    return (AutoModelForCausalLM.from_pretrained(base_checkpoint, dtype=torch.float32),
            AutoTokenizer.from_pretrained(base_checkpoint))


def loss_and_grad(model, tokenizer, examples, share: bool, selective: bool):
    import torch

    groups, dropped = encode_examples(tokenizer, examples, 1024, share)
    assert dropped == 0
    ids, mask, positions, labels, weights, keep = _collate(groups, list(range(len(groups))), 0,
                                                           selective, 10.0)
    model.zero_grad()
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                   logits_to_keep=keep).logits
    per_token = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="none")
    loss = (per_token * weights.reshape(-1)).sum() / weights.sum()
    loss.backward()
    grad = model.model.layers[3].self_attn.q_proj.weight.grad.clone()
    return len(groups), ids.numel(), float(loss.detach()), grad


def test_shared_prefix_packing_gives_the_same_loss_and_gradients(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    items = load_ambigqa("dev", limit=2)
    examples = []
    for item in items:
        turns = [Turn("user", item.query)]
        for alpha in (0.02, 0.5):
            reply = "#CLARIFY Which one?" if alpha < 0.1 else f"#ANSWER {item.interpretations[0].answers[0]}"
            examples.append((render_prompt(turns, Costs(alpha=alpha, beta=0.001), item.documents), reply))
    n_alone, tokens_alone, loss_alone, grad_alone = loss_and_grad(model, tokenizer, examples, False, False)
    n_packed, tokens_packed, loss_packed, grad_packed = loss_and_grad(model, tokenizer, examples, True, True)
    assert (n_alone, n_packed) == (4, 2)
    assert tokens_packed < 0.7 * tokens_alone
    assert loss_packed == pytest.approx(loss_alone, rel=1e-4)
    assert (grad_packed - grad_alone).abs().max() <= 1e-4 * grad_alone.abs().max()
