import torch

from generation.engine.sampling import next_tokens


def test_temperature_zero_is_argmax():
    logits = torch.tensor([[0.1, 3.0, 0.2], [5.0, 0.0, 0.0]])
    assert next_tokens(logits, 0, 1.0, torch.Generator().manual_seed(0)).tolist() == [1, 0]


def test_top_p_keeps_only_the_nucleus():
    # probabilities ~ [0.70, 0.26, 0.04]: top_p=0.5 leaves only the first token, 0.9 the first two
    logits = torch.log(torch.tensor([[0.70, 0.26, 0.04]]))
    gen = torch.Generator().manual_seed(0)
    assert {next_tokens(logits, 1.0, 0.5, gen).item() for _ in range(200)} == {0}
    assert {next_tokens(logits, 1.0, 0.9, gen).item() for _ in range(400)} == {0, 1}


def test_sampling_follows_the_distribution():
    logits = torch.log(torch.tensor([[0.5, 0.5]]))
    gen = torch.Generator().manual_seed(1)
    picks = [next_tokens(logits, 1.0, 1.0, gen).item() for _ in range(2000)]
    assert 0.45 < sum(picks) / len(picks) < 0.55
