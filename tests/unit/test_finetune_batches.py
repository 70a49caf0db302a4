from askwise.training.finetune import _batches, _collate


import pytest


@pytest.mark.parametrize("selective", [True, False])
def test_labels_are_the_reply_tokens_each_kept_logit_predicts(selective):
    encoded = [([1, 2, 3, 4, 5, 6], 2, 1), ([7, 8, 9], 3, 2), ([10, 11, 12, 13], 1, 1)]
    input_ids, attention, positions, labels, weights, keep = _collate(encoded, [0, 1, 2], 0, selective, 5.0)
    width = input_ids.shape[1]
    assert keep == (4 if selective else width) and labels.shape == (3, keep)
    for row, (ids, n_reply, n_tag) in enumerate(encoded):
        targets = [int(labels[row, j]) for j in range(keep) if labels[row, j] != -100]
        assert targets == ids[-n_reply:]
        # the tag's tokens (the reply's first) weigh 5, the rest 1, prompt and padding 0
        assert [float(weights[row, j]) for j in range(keep) if labels[row, j] != -100] == (
            [5.0] * n_tag + [1.0] * (n_reply - n_tag))
        assert float(weights[row][labels[row] == -100].sum()) == 0
        for j in range(keep):
            if labels[row, j] != -100:
                assert labels[row, j] == input_ids[row, width - keep + j + 1]
        # left padding: real tokens end at the last position, positions count from 0
        assert attention[row].sum() == len(ids) and attention[row, -1] == 1
        assert int(positions[row, -1]) == len(ids) - 1


def test_batches_group_similar_lengths_and_cover_every_example():
    encoded = [([0] * n, 1, 1) for n in (5, 50, 6, 51, 7, 52)]
    batches = _batches(encoded, 3, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for batch in batches:
        lengths = [len(encoded[i][0]) for i in batch]
        assert max(lengths) - min(lengths) <= 2
