import pytest
import torch

from askwise.training.finetune import Group, _batches, _collate, _tag_targets, cost_contrast_loss

GROUPS = [
    Group([1, 2, 3], [([4, 5, 6], 2, 1), ([7, 8], 1, 1)]),  # one prefix, two cost pairs
    Group([], [([9, 10, 11, 12], 3, 2)]),  # an example that shares nothing
]


@pytest.mark.parametrize("selective", [True, False])
def test_labels_are_the_reply_tokens_each_kept_logit_predicts(selective):
    input_ids, mask, positions, labels, weights, keep = _collate(GROUPS, [0, 1], 0, selective, 5.0)
    assert input_ids.shape == (2, 8) and mask.shape == (2, 1, 8, 8)
    kept = keep.tolist() if selective else list(range(8))
    for row, group in enumerate(GROUPS):
        targets = [int(labels[row, j]) for j in range(len(kept)) if labels[row, j] != -100]
        assert targets == [t for ids, n, _ in group.suffixes for t in ids[-n:]]
        # the tag's tokens (the reply's first) weigh 5, the rest 1, prompt and padding 0
        assert [float(weights[row, j]) for j in range(len(kept)) if labels[row, j] != -100] == [
            w for _, n, tag in group.suffixes for w in [5.0] * tag + [1.0] * (n - tag)]
        assert float(weights[row][labels[row] == -100].sum()) == 0
        for j, position in enumerate(kept):
            if labels[row, j] != -100:
                assert labels[row, j] == input_ids[row, position + 1]
    if selective:  # logits only where some row predicts a reply token
        assert kept == [0, 1, 2, 3, 4, 6]


def test_tag_weight_zero_trains_the_reply_but_not_the_choice_of_action():
    *_, labels, weights, _ = _collate(GROUPS, [0, 1], 0, True, 0.0)
    for row, group in enumerate(GROUPS):
        assert [float(w) for w, label in zip(weights[row], labels[row]) if label != -100] == [
            w for _, n, tag in group.suffixes for w in [0.0] * tag + [1.0] * (n - tag)]


def test_each_suffix_sees_the_prefix_and_itself_only():
    _, mask, positions, *_ = _collate(GROUPS, [0], 0)
    m = mask[0, 0]
    # prefix [0,3), first suffix [3,6), second suffix [6,8)
    assert m[:3, :3].equal(m.new_ones(3, 3).tril()) and not m[:3, 3:].any()
    assert m[6:8, :3].all() and not m[6:8, 3:6].any() and not m[3:6, 6:8].any()
    assert positions[0].tolist() == [0, 1, 2, 3, 4, 5, 3, 4]


def test_steps_hold_a_batch_of_examples_and_cover_every_group():
    groups = [Group([0] * n, [([1], 1, 1)] * k) for n, k in ((5, 3), (50, 1), (6, 1), (51, 2), (7, 1))]
    batches = _batches(groups, 3, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(5))
    assert all(sum(len(groups[i].suffixes) for i in b) >= 3 for b in batches)


TAGS = [50, 51, 52]  # the token after "#" of each action tag, as action_tag_ids gives them
TAGGED = [
    Group([1, 2, 3], [([4, 19, 50, 9], 3, 2), ([5, 19, 51], 2, 2)]),  # one prompt, two costs, two actions
    Group([], [([6, 19, 52, 8], 3, 2), ([7, 8], 1, 1)]),  # the second reply has no tag
]


def test_tag_targets_point_at_the_logit_that_chooses_the_action():
    rows, cols, targets, owners = _tag_targets(TAGGED, [0, 1], TAGS)
    assert targets == [0, 1, 2] and owners == [0, 0, 1]
    for selective in (False, True):
        _, _, _, labels, _, keep = _collate(TAGGED, [0, 1], 0, selective)
        at = torch.searchsorted(keep, torch.tensor(cols)) if selective else torch.tensor(cols)
        assert labels[torch.tensor(rows), at].tolist() == [TAGS[t] for t in targets]


def test_cost_contrast_loss_ignores_what_a_prompts_examples_share():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [5.0, 1.0, 0.0]])
    targets, owners = [0, 1, 2], [0, 0, 1]
    loss = cost_contrast_loss(logits, targets, owners)
    # the same shift for every example of a group (the group's "usual" action) changes nothing
    shifted = logits + torch.tensor([[3.0, -1.0, 7.0], [3.0, -1.0, 7.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(cost_contrast_loss(shifted, targets, owners), loss)
    # a group whose examples all want one action (owner 1) adds nothing; zero groups, zero loss
    assert cost_contrast_loss(logits[2:], [2], [1]).item() == 0.0
    # separating the two examples by their targets lowers it
    apart = logits + torch.tensor([[2.0, -2.0, 0.0], [-2.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    assert cost_contrast_loss(apart, targets, owners) < loss


def test_cpu_info_reads_the_first_cpu_and_strips_the_padding_around_its_keys(tmp_path):
    from askwise.policy.hardware import cpu_info

    listing = tmp_path / "cpuinfo"
    listing.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512_bf16\n\n"
                       "processor\t: 1\nmodel name\t: Other\nflags\t\t: fpu\n")
    info = cpu_info(str(listing))
    assert info["model name"] == "AMD EPYC"
    assert info["flags"].split() == ["fpu", "avx2", "avx512_bf16"]
    assert cpu_info(str(tmp_path / "missing")) == {}
