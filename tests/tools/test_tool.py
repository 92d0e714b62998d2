"""``@tool`` and ``Tool.from_json_schema``: schemas from typed functions and JSON docs."""

from __future__ import annotations

import json
import warnings
from typing import Annotated, Any, Literal

import jsonschema
import llguidance
import pytest
from pydantic import BaseModel, Field

from slmkit.models import Constraint, ConstraintError, embedded_gguf
from slmkit.models.guidance import compile_constraint
from slmkit.simulators.envs.bfcl_data import BFCL_CATEGORIES, load_bfcl
from slmkit.tools import Tool, ToolDefinitionError, ToolRegistry, normalize_parameters, tool


class Address(BaseModel):
    street: str
    zip_code: int = Field(ge=10000, le=99999)


@tool
def ship(
    item: str,
    quantity: Annotated[int, Field(ge=1, le=99)],
    address: Address,
    speed: Literal["standard", "express"] = "standard",
    tags: list[str] | None = None,
    gift: bool = False,
) -> str:
    """Ship an item to an address.

    A longer explanation that is not part of the summary.

    Args:
        item: what to ship
        quantity: how many, at
            least one
        address: where to ship it
        speed: how fast
        tags (list): labels for the parcel

    Returns:
        A tracking number.
    """
    return f"{quantity}x{item}->{address.zip_code}/{speed}/{tags}/{gift}"


def test_tool_from_typed_documented_function() -> None:
    assert isinstance(ship, Tool)
    assert ship.name == "ship"
    assert ship.description == "Ship an item to an address."
    params = ship.parameters
    assert params["type"] == "object"
    assert params["required"] == ["item", "quantity", "address"]
    assert params["additionalProperties"] is False
    props = params["properties"]
    assert list(props) == ["item", "quantity", "address", "speed", "tags", "gift"]
    assert props["item"] == {"type": "string", "description": "what to ship"}
    assert props["quantity"]["type"] == "integer"
    assert (props["quantity"]["minimum"], props["quantity"]["maximum"]) == (1, 99)  # Annotated
    assert props["quantity"]["description"] == "how many, at least one"  # continuation line
    assert props["speed"]["enum"] == ["standard", "express"]
    assert props["speed"]["default"] == "standard"
    assert props["tags"]["description"] == "labels for the parcel"  # "name (type):" form
    assert props["gift"] == {"type": "boolean", "default": False}  # undocumented: no description
    assert "title" not in props["item"] and "title" not in params


def test_nested_pydantic_model_is_in_the_schema_and_validated() -> None:
    schema = ship.parameters
    good = {"item": "book", "quantity": 2, "address": {"street": "Main St", "zip_code": 12345}}
    jsonschema.validate(good, schema)  # $defs/$ref resolve inside the tool's schema
    bad_zip = {**good, "address": {"street": "Main St", "zip_code": 12}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad_zip, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "speed": "overnight"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "quantity": 0}, schema)
    # Calling the tool validates too, and hands the function a real Address.
    assert ship(**good) == "2xbook->12345/standard/None/False"


def test_decorator_with_name_and_description_overrides() -> None:
    @tool(name="add_numbers", description="Add two integers.")
    def add(a: int, b: int = 1) -> int:
        return a + b

    assert add.name == "add_numbers"
    assert add.description == "Add two integers."
    assert add.parameters["required"] == ["a"]
    assert add(a=2) == 3


def test_missing_annotation_is_refused() -> None:
    def f(a, b: int) -> int:  # type: ignore[no-untyped-def]
        """Doc."""
        return 0

    with pytest.raises(ToolDefinitionError, match=r"'a'.*no type annotation") as info:
        tool(f)
    assert info.value.hint


def test_something_not_callable_is_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="made from a function, not from int") as info:
        tool(3)  # type: ignore[call-overload]
    assert info.value.hint


def test_missing_docstring_is_refused() -> None:
    def f(a: int) -> int:
        return a

    with pytest.raises(ToolDefinitionError, match="no description") as info:
        tool(f)
    assert info.value.hint and "docstring" in info.value.hint


@pytest.mark.parametrize("kind", ["args", "kwargs"])
def test_star_args_are_refused(kind: str) -> None:
    def with_args(a: int, *rest: int) -> int:
        """Doc."""
        return a

    def with_kwargs(a: int, **rest: int) -> int:
        """Doc."""
        return a

    fn = with_args if kind == "args" else with_kwargs
    with pytest.raises(ToolDefinitionError, match=r"\*args/\*\*kwargs"):
        tool(fn)


def test_invalid_tool_name_is_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="invalid tool name"):
        Tool.from_json_schema("has space", "d", {"type": "object", "properties": {}})


def test_from_json_schema_maps_bfcl_type_names() -> None:
    doc = {
        "type": "dict",
        "properties": {
            "ratio": {"type": "float", "description": "a ratio"},
            "point": {"type": "tuple", "items": {"type": "integer"}},
            "options": {
                "type": "dict",
                "properties": {"depth": {"type": "integer"}, "label": {"type": "any"}},
            },
            "anything": {"type": "any"},
            "names": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["ratio", "point", "ghost"],  # "ghost" names no property: dropped
        "optional": True,
    }
    t = Tool.from_json_schema("geo.calc", "Compute things.", doc)
    p = t.parameters
    assert p["type"] == "object" and p["required"] == ["ratio", "point"]
    assert p["properties"]["ratio"] == {"type": "number", "description": "a ratio"}
    assert p["properties"]["point"] == {"type": "array", "items": {"type": "integer"}}
    assert p["properties"]["options"]["type"] == "object"
    assert p["properties"]["options"]["additionalProperties"] is False
    assert "type" not in p["properties"]["anything"]  # any: no type restriction
    assert "type" not in p["properties"]["options"]["properties"]["label"]
    assert "optional" not in p
    jsonschema.Draft202012Validator.check_schema(p)
    jsonschema.validate({"ratio": 0.5, "point": [1, 2], "anything": [None]}, p)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"ratio": "half", "point": [1, 2]}, p)


def test_unknown_type_name_is_refused_with_the_path() -> None:
    with pytest.raises(ToolDefinitionError, match=r"parameters\.x: unknown type 'complex'"):
        normalize_parameters({"type": "dict", "properties": {"x": {"type": "complex"}}})
    with pytest.raises(ToolDefinitionError, match="must be a JSON object"):
        normalize_parameters(["not", "a", "schema"])


def test_openai_entry_round_trip() -> None:
    entry = ship.openai_schema()
    assert entry["type"] == "function"
    assert entry["function"]["name"] == "ship"
    again = Tool.from_openai(entry)
    assert again.name == "ship" and again.description == ship.description
    assert again.parameters["required"] == ship.parameters["required"]


def test_schema_only_tool_cannot_be_called() -> None:
    t = Tool.from_json_schema("lookup", "Look up.", {"type": "object", "properties": {}})
    with pytest.raises(ToolDefinitionError, match="no implementation"):
        t()


# --------------------------------------------------------------------- every BFCL function doc


@pytest.fixture(scope="module")
def lltok() -> Any:
    """The embedded model's tokenizer for llguidance (vocabulary only, no weights)."""
    import llama_cpp
    import llguidance.llamacpp

    llm = llama_cpp.Llama(model_path=str(embedded_gguf()), vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    with warnings.catch_warnings():  # llama_token_get_attr's deprecation, once per token
        warnings.simplefilter("ignore", DeprecationWarning)
        return llguidance.llamacpp.lltokenizer_from_vocab(vocab, n_vocab=llm.n_vocab())


def _bfcl_docs() -> dict[str, list[dict[str, Any]]]:
    return {cat: [f for it in load_bfcl(cat) for f in it.functions] for cat in BFCL_CATEGORIES}


def test_every_bfcl_function_doc_converts_and_compiles(lltok: llguidance.LLTokenizer) -> None:
    """All function docs of every supported category become tools whose schemas compile.

    Each distinct doc is compiled once as its registry's call schema (with the decline
    option); one question per category also compiles its full single and parallel schema.
    """
    seen: dict[str, Tool] = {}
    total = 0
    for cat in BFCL_CATEGORIES:
        items = load_bfcl(cat)
        for it in items:
            for doc in it.functions:
                total += 1
                t = Tool.from_json_schema(doc["name"], doc["description"], doc["parameters"])
                seen.setdefault(json.dumps([t.name, t.parameters], sort_keys=True), t)
        sample = ToolRegistry(
            Tool.from_json_schema(f["name"], f["description"], f["parameters"])
            for f in items[-1].functions
        )
        for parallel in (False, True):
            schema = sample.call_schema(parallel=parallel, allow_no_call=True)
            compile_constraint(Constraint.from_schema(schema), lltok)
    assert total > 1000 and len(seen) > 600
    for t in seen.values():
        schema = ToolRegistry([t]).call_schema(allow_no_call=True)
        # from_schema checks it against the JSON Schema meta-schema; then llguidance compiles
        compile_constraint(Constraint.from_schema(schema), lltok)


def test_a_bfcl_call_schema_validates_its_reference_answer(lltok: llguidance.LLTokenizer) -> None:
    from slmkit.simulators.envs.bfcl_data import reference_calls

    for cat in ("simple_python", "multiple", "parallel"):
        for it in load_bfcl(cat, limit=10):
            reg = ToolRegistry(
                Tool.from_json_schema(f["name"], f["description"], f["parameters"])
                for f in it.functions
            )
            calls = reference_calls(it)
            schema = reg.call_schema(parallel=cat == "parallel")
            jsonschema.validate(calls if cat == "parallel" else calls[0], schema)


def test_an_unsatisfiable_tool_schema_is_refused_by_the_compiler(
    lltok: llguidance.LLTokenizer,
) -> None:
    t = Tool.from_json_schema(
        "broken", "d", {"type": "object", "properties": {"x": {"not": {"type": "string"}}}}
    )
    with pytest.raises(ConstraintError):
        compile_constraint(Constraint.from_schema(ToolRegistry([t]).call_schema()), lltok)
