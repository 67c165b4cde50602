"""Attribute types for what PynamoDB's own annotations get wrong here."""

from __future__ import annotations

from typing import cast

from pynamodb.attributes import Attribute, ListAttribute, UnicodeAttribute
from pynamodb.constants import NUMBER
from pynamodb.expressions.condition import Condition, Or


class IntegerAttribute(Attribute[int]):
    """A whole number (milliseconds, bytes, counts). NumberAttribute reads
    these back as int too, but is annotated float, which every caller would
    have to convert."""

    attr_type = NUMBER

    def serialize(self, value: int) -> str:
        return str(value)

    def deserialize(self, value: str) -> int:
        return int(value)


def string_list() -> ListAttribute[str]:
    """A list of strings, empty by default. PynamoDB annotates a list's
    elements as the attribute class given in `of`; they are read back as str."""
    return cast("ListAttribute[str]", ListAttribute(of=UnicodeAttribute, default=list))


def at_version(version_attribute: Attribute[int], version: int) -> Condition:
    """The record is still at `version` (a record stored before versions existed counts as 0)."""
    same: Condition = version_attribute == version
    return Or(version_attribute.does_not_exist(), same) if version == 0 else same
