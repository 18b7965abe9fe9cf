"""Judge against people on pairs where one response comes from a model of the judge's own
family, and on the others: a judge may prefer its kin's answers (self-preference bias, reported
for multimodal judges in arXiv 2604.11589).

A configuration records its family (judging.families); a response's is read from its model
name. The few distinct model names are mapped here and joined in SQL (``agr_family``), so the
pairs are counted by the database, never walked in Python.

Self-preference compares like with like: over the own-family pairs with exactly one response of
the judge's family where people chose a side, the share where the judge preferred that response
(its preferred side, even where it scores both unsafe) and the share where people did. Pairs
whose two responses are both of the family have no "own" side and are only counted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from annotation.services.agreement import queries
from annotation.services.agreement.figures import measures, proportion
from annotation.services.agreement.queries import AgreementSlice
from annotation.services.agreement.results import FamilyGroup, OwnFamilyRow, SelfPreference
from annotation.services.agreement.stats import CountedCell
from judging.families import model_family
from judging.models import GenerationConfiguration, JudgeConfiguration

BOTH_OWN = 3  # own_family_cells' code: A is of the family (1), B is (2), both (3)
_OWN_SIDE = {1: "a", 2: "b"}


@dataclass
class _Tally:
    """One configuration's counted cells, split at the family line."""

    own: list[CountedCell] = field(default_factory=list)
    other: list[CountedCell] = field(default_factory=list)
    own_pairs: int = 0
    other_pairs: int = 0
    other_unknown: int = 0
    both_own: int = 0
    sided: int = 0
    judge_own: int = 0
    people_own: int = 0


def own_family_rows(*, slice_: AgreementSlice) -> list[OwnFamilyRow]:
    """One row per judge configuration with a model family that judged pairs of the loaded
    slice (call after queries.load_slice, in its transaction). Costs one query when no
    configuration has a family, as with the baseline judge alone."""
    configurations = _family_configurations(slice_)
    if not configurations:
        return []
    families = {name: model_family(name) for name in queries.response_model_names()}
    # A generated response's model name is the id its worker loaded (a local path, say): the
    # family its configuration recorded from the model's config is the better evidence.
    generated = GenerationConfiguration.objects.exclude(model_family="").filter(
        model_id__in=families
    )
    families.update(generated.values_list("model_id", "model_family"))
    queries.load_model_families(families={name: f for name, f in families.items() if f})
    tallies: defaultdict[int, _Tally] = defaultdict(_Tally)
    for row in queries.own_family_cells(slice_=slice_):
        _add(tallies[row[0]], row)
    return [_row(configurations[pk], tally) for pk, tally in sorted(tallies.items())]


def _family_configurations(slice_: AgreementSlice) -> dict[int, JudgeConfiguration]:
    found = JudgeConfiguration.objects.exclude(model_family="")
    if slice_.configuration_id is not None:
        found = found.filter(pk=slice_.configuration_id)
    return {configuration.pk: configuration for configuration in found}


def _add(tally: _Tally, row: tuple[Any, ...]) -> None:
    _, own, unknown, judge_verdict, judge_side, human, pairs = row
    cell = CountedCell(a=judge_verdict, b=human, count=pairs)
    if not own:
        tally.other_pairs += pairs
        tally.other_unknown += pairs if unknown else 0
        tally.other += [cell] if human else []
        return
    tally.own_pairs += pairs
    tally.own += [cell] if human else []
    if own == BOTH_OWN:
        tally.both_own += pairs
    elif human in ("a", "b"):
        tally.sided += pairs
        tally.judge_own += pairs if judge_side == _OWN_SIDE[own] else 0
        tally.people_own += pairs if human == _OWN_SIDE[own] else 0


def _group(cells: list[CountedCell], *, pairs: int) -> FamilyGroup:
    return FamilyGroup(
        pairs=pairs, compared=sum(cell.count for cell in cells), agreement=measures(cells)
    )


def _row(configuration: JudgeConfiguration, tally: _Tally) -> OwnFamilyRow:
    return OwnFamilyRow(
        configuration_id=configuration.pk,
        configuration=str(configuration),
        family=configuration.model_family,
        own=_group(tally.own, pairs=tally.own_pairs),
        other=_group(tally.other, pairs=tally.other_pairs),
        other_unknown=tally.other_unknown,
        self_preference=SelfPreference(
            judge=proportion(k=tally.judge_own, n=tally.sided),
            people=proportion(k=tally.people_own, n=tally.sided),
            both_own=tally.both_own,
        ),
    )
