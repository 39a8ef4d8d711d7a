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


def test_numpy_nucleus_keeps_exactly_what_a_full_sort_keeps():
    """The NumPy sampler sorts only the tokens above a floor; over peaked and flat rows alike, every pick lies
    in the nucleus a full sort gives, and each nucleus token is picked."""
    import numpy as np

    from generation.engine.sampling import next_tokens_np

    rng = np.random.default_rng(0)
    for scale in (8.0, 0.5):  # peaked, like a trained model; nearly flat
        logits = (rng.standard_normal((3, 5000)) * scale).astype(np.float32)
        for row in logits:
            probs = np.exp(row - row.max())
            probs /= probs.sum()
            order = np.argsort(-probs, kind="stable")
            mass = np.cumsum(probs[order])
            nucleus = set(order[: int(np.count_nonzero(mass - probs[order] < 0.6))].tolist())
            picks = {next_tokens_np(row[None, :], 1.0, 0.6, rng)[0] for _ in range(3000)}
            assert picks <= nucleus
            if len(nucleus) <= 20:
                assert picks == nucleus


def test_numpy_sampler_is_greedy_at_zero_and_follows_the_distribution():
    import numpy as np

    from generation.engine.sampling import next_tokens_np

    logits = np.log(np.array([[0.5, 0.5, 1e-9], [0.1, 0.2, 0.7]], dtype=np.float32))
    assert next_tokens_np(logits, 0, 1.0, np.random.default_rng(0)) == [0, 2]
    rng = np.random.default_rng(1)
    picks = [next_tokens_np(logits[:1], 1.0, 1.0, rng)[0] for _ in range(4000)]
    assert 0.45 < picks.count(1) / len(picks) < 0.55 and 2 not in picks
