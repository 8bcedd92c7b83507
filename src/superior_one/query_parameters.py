"""Unknown and repeated query parameters, rejected with a 422 that names them.

FastAPI ignores a query parameter a route does not declare and keeps the last of
repeated values, so a misspelled filter would silently return other results than
the client requested. Routes with query parameters take :data:`KnownQuery`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from fastapi import Depends, Request, params
from fastapi.exceptions import RequestValidationError


def query_error(field: str, message: str, kind: str = "value_error") -> dict[str, Any]:
    """Build one 422 entry about the query parameter ``field``, in FastAPI's own format."""
    return {"loc": ("query", field), "msg": message, "type": kind, "input": None}


@dataclass(frozen=True, slots=True)
class QueryParameter:
    """The facts the name checks use about one query parameter a route declares."""

    deprecated: bool = False
    several: bool = False  # declared as a list: may be repeated


def query_name_errors(
    sent: Iterable[tuple[str, str]],
    parameters: Mapping[str, QueryParameter],
    owner: str,
    renamed: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Name each unknown parameter and each single-valued one sent with several values.

    ``parameters`` maps every accepted name to its declaration, ``owner`` names the
    route in messages ("the board"), ``renamed`` maps deprecated names to their
    replacements. FastAPI itself ignores unknown names and uses the last of
    repeated values, so either would return results other than what the client
    requested.
    """
    values: dict[str, set[str]] = {}
    for name, value in sent:
        values.setdefault(name, set()).add(value)

    several = sorted(name for name, parameter in parameters.items() if parameter.several)
    errors = []
    for name, distinct in values.items():
        if name not in parameters:
            message = _unknown_name(name, parameters, owner, renamed or {})
            errors.append(query_error(name, message, "extra_forbidden"))
        elif len(distinct) > 1 and not parameters[name].several:
            only = f" (only {', '.join(several)} takes several)" if several else ""
            errors.append(
                query_error(
                    name,
                    f"{name} was sent with {len(distinct)} different values; send it once{only}",
                )
            )
    return errors


def _unknown_name(
    name: str, parameters: Mapping[str, QueryParameter], owner: str, renamed: Mapping[str, str]
) -> str:
    by_lower = {known.lower(): known for known in parameters}
    close = difflib.get_close_matches(name.lower(), by_lower, n=1, cutoff=0.7)
    if close:
        known = by_lower[close[0]]
        return f"unknown parameter {name!r}; did you mean {renamed.get(known, known)!r}?"
    current = ", ".join(
        sorted(known for known, parameter in parameters.items() if not parameter.deprecated)
    )
    return f"unknown parameter {name!r}; {owner} takes {current}"


@cache
def declared_query_parameters(dependency: Callable[..., Any]) -> dict[str, QueryParameter]:
    """Map each query parameter ``dependency`` declares, by wire name, to its declaration."""
    declared = {}
    for name, hint in get_type_hints(dependency, include_extras=True).items():
        for meta in getattr(hint, "__metadata__", ()):
            if isinstance(meta, params.Query):
                declared[meta.alias or name] = QueryParameter(
                    deprecated=bool(meta.deprecated), several=_is_list(get_args(hint)[0])
                )
    return declared


def _is_list(annotation: Any) -> bool:
    members = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    return any(get_origin(member) is list for member in (annotation, *members))


async def known_query_parameters(request: Request) -> None:
    """Raise a 422 for each query parameter the route does not declare or must not repeat.

    Add :data:`KnownQuery` to each route that takes query parameters. The names
    are read from the route's own declarations, so a parameter added there is
    accepted. The load board applies the same checks inside its own parsing
    (``loads.schemas.BoardQuery``).
    """
    route = request.scope["route"]
    errors = query_name_errors(
        request.query_params.multi_items(),
        declared_query_parameters(route.endpoint),
        f"{request.method} {route.path}",
    )
    if errors:
        raise RequestValidationError(errors)


# After the principal in a route's parameters: a caller without a token gets 401.
KnownQuery = Annotated[None, Depends(known_query_parameters)]
