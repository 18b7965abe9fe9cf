"""The transformers backend on tiny random-weight Qwen2-VL and LLaVA models (no hub, no GPU)."""

import math
import shutil

import pytest

from judging.engine import LabelTokenError, PairInput, base_prompt_version, load_judge

torch = pytest.importorskip("torch")

ARCHITECTURES = ["qwen2vl", "llava"]


@pytest.fixture(scope="session")
def judges(tiny_model_paths):
    return {
        name: load_judge(backend="transformers", model=str(path), batch_pairs=3)
        for name, path in tiny_model_paths.items()
    }


@pytest.fixture(scope="session")
def pairs(make_image):
    colors = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (90, 90, 90), (250, 250, 0)]
    return [
        PairInput(
            pair_id=10 + i,
            image=make_image(
                color=color, size=(60 + 30 * i, 90), fmt=["PNG", "JPEG", "WEBP"][i % 3]
            ),
            question=f"What should I do with the object in picture {i}?",
            response_a="I'm sorry, I can't help with that." + " Really." * i,
            response_b=f"Here is how: step {i}, mix it and then use it carefully.",
        )
        for i, color in enumerate(colors)
    ]


def _swapped(pairs):
    return [PairInput(p.pair_id, p.image, p.question, p.response_b, p.response_a) for p in pairs]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_it_gives_the_same_verdict_in_a_batch_as_alone(judges, pairs, arch):
    judge = judges[arch]

    batched = judge.judge(pairs)
    alone = [judge.judge([pair])[0] for pair in pairs]

    assert [v.pair_id for v in batched] == [p.pair_id for p in pairs]
    for b, a in zip(batched, alone, strict=True):
        assert b.p_a_better == pytest.approx(a.p_a_better, abs=1e-5)
        assert b.position_bias == pytest.approx(a.position_bias, abs=1e-4)
        assert b.p_unsafe_a == pytest.approx(a.p_unsafe_a, abs=1e-5)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_it_gives_exactly_one_minus_p_when_a_and_b_are_swapped(judges, pairs, arch):
    judge = judges[arch]

    verdicts = judge.judge(pairs)
    swapped = judge.judge(_swapped(pairs))

    for v, s in zip(verdicts, swapped, strict=True):
        assert s.p_a_better == 1 - v.p_a_better
        assert s.p_a_first == 1 - v.p_a_second
        assert s.position_bias == v.position_bias
        assert (s.p_unsafe_a, s.p_unsafe_b) == (v.p_unsafe_b, v.p_unsafe_a)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_it_reads_probabilities_from_the_verdict_tokens(judges, pairs, arch):
    for v in judges[arch].judge(pairs):
        assert v.error is None
        assert 0 < v.p_a_better < 1 and 0 < v.label_mass <= 1
        assert 0 < v.p_unsafe_a < 1 and 0 < v.p_unsafe_b < 1
        # Random weights put almost no mass on "A"/"B": such pairs must go to people.
        assert "low_label_mass" in v.review_reasons and v.needs_review
        assert v.orders_agree == (
            math.copysign(1, v.p_a_first - 0.5) == math.copysign(1, v.p_a_second - 0.5)
        )


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_it_runs_the_vision_tower_once_per_pair_without_changing_verdicts(
    tiny_model_paths, judges, pairs, arch
):
    per_row = load_judge(
        backend="transformers", model=str(tiny_model_paths[arch]), reuse_image_features=False
    )

    for shared, separate in zip(judges[arch].judge(pairs), per_row.judge(pairs), strict=True):
        assert shared.p_a_better == pytest.approx(separate.p_a_better, abs=1e-5)
        assert shared.p_unsafe_b == pytest.approx(separate.p_unsafe_b, abs=1e-5)


def test_it_halves_the_batch_on_out_of_memory_and_shrinks_later_batches(tiny_qwen2vl_path, pairs):
    judge = load_judge(backend="transformers", model=str(tiny_qwen2vl_path), batch_pairs=4)
    expected = judge.judge(pairs)
    real_forward, sizes = judge.forward, []

    def forward_that_fits_one_pair(runner, batch):
        sizes.append(batch.n_pairs)
        if batch.n_pairs > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(runner, batch)

    judge.forward = forward_that_fits_one_pair
    verdicts = judge.judge(pairs)

    assert sizes[:4] == [4, 2, 1, 1]
    assert judge.batch_pairs == 1
    for v, e in zip(verdicts, expected, strict=True):
        assert v.error is None
        assert v.p_a_better == pytest.approx(e.p_a_better, abs=1e-5)


def test_it_reports_a_pair_that_does_not_fit_alone_as_a_pair_error(tiny_qwen2vl_path, pairs):
    judge = load_judge(backend="transformers", model=str(tiny_qwen2vl_path), batch_pairs=2)

    def forward_out_of_memory(runner, batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    judge.forward = forward_out_of_memory
    verdicts = judge.judge(pairs[:3])

    assert [v.error for v in verdicts] == ["out of memory even for one pair"] * 3


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_it_reports_a_corrupt_image_as_a_pair_error_and_judges_the_rest(
    judges, pairs, make_image, arch
):
    broken = [
        PairInput(1, make_image(fmt="JPEG")[:150], "q?", "a", "b"),
        PairInput(2, b"\x89PNG\r\n\x1a\n garbage", "q?", "a", "b"),
        PairInput(3, make_image(fmt="BMP"), "q?", "a", "b"),
    ]

    verdicts = judges[arch].judge([pairs[0], *broken, pairs[1]])

    assert [v.pair_id for v in verdicts] == [pairs[0].pair_id, 1, 2, 3, pairs[1].pair_id]
    assert verdicts[0].error is None and verdicts[-1].error is None
    assert all(v.error and v.needs_review for v in verdicts[1:4])


def test_it_records_the_judge_configuration(judges, tiny_qwen2vl_path):
    info = judges["qwen2vl"].info

    assert info.backend == "transformers"
    assert info.model_id == str(tiny_qwen2vl_path)
    assert info.model_revision.startswith("local-config-")
    assert info.dtype == "float32"  # CPU
    assert info.prompt_version == "spavl-pairwise-v1+guard-safe-unsafe-v1"
    assert info.prompt_version.startswith(base_prompt_version("transformers") + "+")
    assert {"torch", "transformers", "python"} <= info.library_versions.keys()


def test_it_scores_safety_with_a_separate_guard_model(tiny_qwen2vl_path, tiny_llava_path, pairs):
    judge = load_judge(
        backend="transformers", model=str(tiny_qwen2vl_path), guard_model=str(tiny_llava_path)
    )

    verdicts = judge.judge(pairs)
    swapped = judge.judge(_swapped(pairs))

    assert judge.info.guard_model_id == str(tiny_llava_path)
    for v, s in zip(verdicts, swapped, strict=True):
        assert 0 < v.p_unsafe_a < 1
        assert (s.p_unsafe_a, s.p_unsafe_b) == (v.p_unsafe_b, v.p_unsafe_a)
        assert s.p_a_better == 1 - v.p_a_better


def test_it_skips_safety_scoring_when_asked(tiny_llava_path, pairs):
    judge = load_judge(backend="transformers", model=str(tiny_llava_path), score_safety=False)

    [verdict] = judge.judge(pairs[:1])

    assert verdict.p_unsafe_a is None and verdict.p_unsafe_b is None
    assert judge.info.prompt_version.endswith("+no-guard")


def test_it_fails_clearly_when_a_label_is_not_one_token(tiny_qwen2vl_path, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoProcessor, PreTrainedTokenizerFast

    from judging.engine.testing import QWEN_SPECIAL_TOKENS

    # A word-level vocabulary without "A": the letter only encodes as the unknown token.
    words = ["<unk>", *QWEN_SPECIAL_TOKENS, "Response", "B", "which", "is", "better"]
    word_level = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    folder = tmp_path / "no-single-token-a"
    shutil.copytree(tiny_qwen2vl_path, folder)
    processor = AutoProcessor.from_pretrained(folder)
    processor.tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=word_level,
        unk_token="<unk>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(QWEN_SPECIAL_TOKENS[1:]),
    )
    processor.save_pretrained(folder)

    with pytest.raises(LabelTokenError, match="label 'A' is not a single token"):
        load_judge(backend="transformers", model=str(folder), score_safety=False)


def test_it_needs_a_model_for_the_transformers_backend():
    with pytest.raises(ValueError, match="needs model="):
        load_judge(backend="transformers")
