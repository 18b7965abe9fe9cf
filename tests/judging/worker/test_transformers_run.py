"""The transformers backend through the worker services, on a tiny random Qwen2-VL (no hub)."""

from __future__ import annotations

from pathlib import Path

import pytest

from judging.models import Judgement, JudgementStatus, RunStatus
from judging.services import start_run
from tests.factories import make_corrupt_image, make_pair, make_question, make_sampled_pairs

pytestmark = [pytest.mark.judge, pytest.mark.django_db]


def test_it_runs_a_tiny_vision_language_model_end_to_end(
    tiny_qwen2vl_path: Path, django_capture_on_commit_callbacks
):
    pytest.importorskip("torch")
    pairs = make_sampled_pairs(count=3)
    broken = make_pair(question=make_question(image=make_corrupt_image(), subcategory_key=None))

    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(
            backend="transformers", model=str(tiny_qwen2vl_path), pairs="all", batch_size=2
        )

    run.refresh_from_db()
    ok = Judgement.objects.filter(run=run, status=JudgementStatus.OK)
    assert (run.status, run.done, run.failed) == (RunStatus.FINISHED, 3, 1)
    assert run.configuration is not None  # resolved by the worker side, in-process here
    assert run.configuration.backend == "transformers"
    assert run.configuration.model_id == str(tiny_qwen2vl_path)
    assert run.configuration.model_revision.startswith("local-config-")
    assert sorted(ok.values_list("pair_id", flat=True)) == [p.pk for p in pairs]
    assert Judgement.objects.get(pair=broken).status == JudgementStatus.FAILED
    for judgement in ok:
        assert judgement.p_a_better is not None and 0 <= judgement.p_a_better <= 1
        assert "torch" in judgement.library_versions
