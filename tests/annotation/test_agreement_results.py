"""The API's agreement serializers against the typed results they serialise: the same fields,
the same nesting, the same optional and nullable fields, all the way down. A field added to a
result and not to the API (or the other way round) fails here."""

from __future__ import annotations

import types
import typing
from typing import Any, NotRequired, get_args, get_origin, get_type_hints, is_typeddict

import pytest
from rest_framework import serializers

from annotation.api import agreement as api
from annotation.services.agreement import results

SCALARS: dict[type, Any] = {
    int: serializers.IntegerField,
    float: serializers.FloatField,
    str: (serializers.CharField, serializers.DateField),
    bool: serializers.BooleanField,
}


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """The hint without ``| None``, and whether None was allowed."""
    if get_origin(hint) in (typing.Union, types.UnionType):
        args = [arg for arg in get_args(hint) if arg is not type(None)]
        assert len(args) == 1, hint
        return args[0], True
    return hint, False


def _compare(typed: Any, serializer: serializers.Serializer[Any], path: str) -> None:
    hints = get_type_hints(typed, include_extras=True)
    fields = serializer.fields
    assert set(fields) == set(hints), f"{path}: {set(fields) ^ set(hints)}"
    for name, raw_hint in hints.items():
        where = f"{path}.{name}"
        field = fields[name]
        optional = get_origin(raw_hint) is NotRequired
        hint = get_args(raw_hint)[0] if optional else raw_hint
        assert field.required is not optional, f"{where}: required={field.required}"
        hint, nullable = _unwrap(hint)
        assert field.allow_null is nullable, f"{where}: allow_null={field.allow_null}"
        _compare_field(hint, field, where)


def _compare_field(hint: Any, field: serializers.Field[Any, Any, Any, Any], where: str) -> None:
    if is_typeddict(hint):
        assert isinstance(field, serializers.Serializer), where
        _compare(hint, field, where)
    elif get_origin(hint) is list:
        (item,) = get_args(hint)
        if isinstance(field, serializers.ListSerializer):
            assert field.child is not None, where
            _compare_field(item, field.child, f"{where}[]")
        else:
            assert isinstance(field, serializers.ListField) and field.child is not None, where
            _compare_field(item, field.child, f"{where}[]")
    elif get_origin(hint) is dict:
        assert isinstance(field, serializers.DictField) and field.child is not None, where
        _compare_field(get_args(hint)[1], field.child, f"{where}{{}}")
    else:
        assert isinstance(field, SCALARS[hint]), f"{where}: {type(field).__name__} for {hint}"


def test_the_dashboard_serializer_matches_the_typed_result_field_for_field():
    _compare(results.CachedDashboard, api.DashboardSerializer(), "dashboard")


def test_the_comparison_notices_a_missing_field():
    class Short(api.CountsSerializer):
        no_majority = None  # type: ignore[assignment]  # DRF: removes an inherited field

    with pytest.raises(AssertionError, match="no_majority"):
        _compare(results.Counts, Short(), "counts")


def test_the_comparison_notices_a_field_that_may_not_be_null():
    class Strict(api.FigureSerializer):
        estimate = serializers.FloatField()

    with pytest.raises(AssertionError, match="estimate: allow_null"):
        _compare(results.Figure, Strict(), "figure")
