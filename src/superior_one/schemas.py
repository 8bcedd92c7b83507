"""Base classes for API schemas: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

import types
import typing
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

_NUMBER_TYPES = (int, float, Decimal)


class Schema(BaseModel):
    """Base of every request and response body.

    Field names go out in camelCase, as current clients expect; requests may use
    either camelCase or the Python name.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class RequestSchema(Schema):
    """Base of request bodies: unknown fields are rejected, not ignored.

    Every field of every request rejects two inputs that pydantic's lax mode
    would take. Text with a NUL character is rejected because PostgreSQL cannot
    store it. True or false given for a number is rejected because lax mode reads
    them as 1 and 0.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        from_attributes=True,
        extra="forbid",
        str_strip_whitespace=True,
    )

    _number_fields: ClassVar[dict[type[RequestSchema], frozenset[str]]] = {}

    @field_validator("*", mode="before")
    @classmethod
    def _reject_nul_and_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool):
            if info.field_name in cls._numeric_field_names():
                raise ValueError("must be a number, not true or false")
        elif _contains_nul(value):
            raise ValueError(
                "must not contain a NUL character (\\u0000), which text fields cannot store; "
                "remove it"
            )
        return value

    @classmethod
    def _numeric_field_names(cls) -> frozenset[str]:
        names = RequestSchema._number_fields.get(cls)
        if names is None:
            names = frozenset(
                name for name, field in cls.model_fields.items() if _is_number(field.annotation)
            )
            RequestSchema._number_fields[cls] = names
        return names


def _is_number(annotation: Any) -> bool:
    """Return whether a field takes a number (``int``, ``float``, ``Decimal``), maybe optional."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_number(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        # A number that may also come as text (``Decimal | str``) is still a number.
        args = typing.get_args(annotation)
        return bool not in args and any(_is_number(a) for a in args)
    return (
        isinstance(annotation, type)
        and annotation is not bool
        and issubclass(annotation, _NUMBER_TYPES)
    )


def _contains_nul(value: Any) -> bool:
    # Text and lists of text only. A nested RequestSchema checks its own fields, and
    # the raw items of a GPS batch are validated one by one as GpsFixIn.
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(isinstance(item, str) and "\x00" in item for item in value)
    return False
