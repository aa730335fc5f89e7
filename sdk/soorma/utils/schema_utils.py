"""soorma-core's ``soorma.utils.schema_utils``: JSON Schema ⇄ pydantic models for event payloads.

The registry keeps each event's payload and response schema as JSON Schema (``EventDefinition.payload_schema`` /
``response_schema``); these helpers turn one into a pydantic model class (``pydantic.create_model``,
https://docs.pydantic.dev/latest/concepts/models/#dynamic-model-creation) and back
(``BaseModel.model_json_schema``). The generated models read snake_case or camelCase and write camelCase
(``by_alias``), as soorma-core's ``BaseDTO`` models do (:class:`soorma.models.WireModel`, their base here).

Supported: ``type: object`` schemas whose properties are ``string``, ``integer``, ``number``, ``boolean``,
``array`` (of any of these) or nested ``object`` schemas; any other property type becomes ``Any``. Keywords beyond
types and ``required`` (formats, bounds, patterns) are not enforced here: :meth:`soorma.ai.event_toolkit.EventToolkit.create_payload`
checks the whole schema with ``jsonschema``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from pydantic import BaseModel, Field, create_model

from soorma.events import EventDefinition
from soorma.models import WireModel

_SCALARS: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool}


def json_schema_to_pydantic(
    schema: Mapping[str, Any], model_name: str = "DynamicModel", base_class: type[BaseModel] = WireModel
) -> type[BaseModel]:
    """A pydantic model class for the JSON Schema ``schema``.

    Parameters
    ----------
    schema:
        A JSON Schema of ``type: object`` (``properties``, ``required``).
    model_name:
        The class name (nested objects get ``<model_name>_<property>``).
    base_class:
        The class it derives from (default :class:`~soorma.models.WireModel`: camelCase aliases, unknown fields kept).

    Returns
    -------
    type[BaseModel]
        Required properties are required fields; the others default to ``None``.

    Raises
    ------
    ValueError
        ``schema`` is not a mapping of ``type: object``.
    """
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        raise ValueError(f"only JSON Schemas of type 'object' become models, got {schema!r:.80}")
    required = set(schema.get("required") or [])
    fields: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, Mapping) else {}
        kind = _python_type(prop, f"{model_name}_{name}", base_class)
        description = prop.get("description")
        if name in required:
            fields[name] = (kind, Field(..., description=description))
        else:
            fields[name] = (Optional[kind], Field(None, description=description))
    model: type[BaseModel] = create_model(model_name, __base__=base_class, **fields)
    return model


def _python_type(prop: Mapping[str, Any], nested_name: str, base_class: type[BaseModel]) -> Any:
    kind = prop.get("type")
    if isinstance(kind, str) and kind in _SCALARS:
        return _SCALARS[kind]
    if kind == "array":
        items = prop.get("items")
        return list[_python_type(items if isinstance(items, Mapping) else {}, f"{nested_name}_item", base_class)]  # type: ignore[misc]  # a type built at run time
    if kind == "object" and prop.get("properties"):
        return json_schema_to_pydantic(prop, nested_name, base_class)
    if kind == "object":
        return dict[str, Any]
    return Any


def pydantic_to_json_schema(model_class: type[BaseModel]) -> dict[str, Any]:
    """``model_class``'s JSON Schema (pydantic's ``model_json_schema()``, Draft 2020-12)."""
    return model_class.model_json_schema()


def create_event_models(
    event_def: EventDefinition | Mapping[str, Any],
) -> tuple[type[BaseModel], type[BaseModel] | None]:
    """The payload and response models of an event definition.

    Parameters
    ----------
    event_def:
        An :class:`~soorma.events.EventDefinition` (or its dict) with ``payload_schema`` and optionally
        ``response_schema``.

    Returns
    -------
    tuple
        ``(PayloadModel, ResponseModel or None)``, named ``<EventName>Payload`` / ``<EventName>Response``
        (``order.created`` → ``OrderCreatedPayload``). An event without a payload schema gets an empty model.
    """
    definition = event_def if isinstance(event_def, EventDefinition) else EventDefinition.model_validate(event_def)
    stem = "".join(part.capitalize() for part in definition.event_name.replace(".", "_").replace("-", "_").split("_"))
    payload = json_schema_to_pydantic(definition.payload_schema or {"type": "object"}, f"{stem}Payload")
    response = (json_schema_to_pydantic(definition.response_schema, f"{stem}Response")
                if definition.response_schema else None)
    return payload, response


def validate_against_schema(data: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` validated by the model of ``schema`` and dumped with camelCase keys (soorma-core's result).

    Raises
    ------
    pydantic.ValidationError
        A required field is missing or a value has the wrong type.
    ValueError
        ``schema`` is not of ``type: object``.
    """
    dumped: dict[str, Any] = json_schema_to_pydantic(schema).model_validate(dict(data)).model_dump(by_alias=True)
    return dumped


def get_schema_field_names(schema: Mapping[str, Any]) -> list[str]:
    """The property names of ``schema``, in order."""
    return list((schema.get("properties") or {}).keys())


def get_required_fields(schema: Mapping[str, Any]) -> list[str]:
    """The ``required`` property names of ``schema``."""
    return list(schema.get("required") or [])


def is_valid_json_schema(schema: Any) -> bool:
    """Whether ``schema`` is an object schema with ``properties`` (what :func:`json_schema_to_pydantic` models)."""
    return isinstance(schema, Mapping) and schema.get("type") == "object" and "properties" in schema


__all__ = [
    "create_event_models",
    "get_required_fields",
    "get_schema_field_names",
    "is_valid_json_schema",
    "json_schema_to_pydantic",
    "pydantic_to_json_schema",
    "validate_against_schema",
]
