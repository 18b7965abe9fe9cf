import pytest

from judging.engine.batching import plan_batches, run_halving


class FakeOOM(RuntimeError):
    pass


def test_it_plans_longest_first_batches_under_the_token_budget():
    lengths = [100, 900, 500, 880, 120, 510]

    plan = plan_batches(lengths, max_pairs=3, max_tokens=2 * 2 * 900, rows_per_pair=2)

    assert plan == [[1, 3], [5, 2, 4], [0]]
    for batch in plan:
        assert len(batch) * 2 * max(lengths[i] for i in batch) <= 2 * 2 * 900


def test_it_plans_a_batch_of_one_for_a_pair_above_the_budget():
    assert plan_batches([5000, 10], max_pairs=8, max_tokens=100, rows_per_pair=4) == [[0], [1]]


def test_it_halves_the_batch_until_it_fits_in_memory():
    tried: list[int] = []

    def run(items):
        tried.append(len(items))
        if len(items) > 2:
            raise FakeOOM
        return [item * 10 for item in items]

    failed: list[int] = []
    results = run_halving(
        list(range(8)), run=run, is_oom=lambda e: isinstance(e, FakeOOM), on_oom=failed.append
    )

    assert results == [i * 10 for i in range(8)]
    assert failed == [8, 4, 4]
    assert tried == [8, 4, 2, 2, 4, 2, 2]


def test_it_gives_none_for_an_item_that_does_not_fit_alone():
    def run(items):
        if 3 in items:
            raise FakeOOM
        return list(items)

    results = run_halving([1, 2, 3, 4], run=run, is_oom=lambda e: isinstance(e, FakeOOM))

    assert results == [1, 2, None, 4]


def test_it_does_not_swallow_other_errors():
    def run(items):
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run_halving([1, 2], run=run, is_oom=lambda e: isinstance(e, FakeOOM))
