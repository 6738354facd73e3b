"""The models cannot drift from the server: each one's fields are its OpenAPI schema's properties."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arbiter_client import models

OPENAPI = json.loads((Path(__file__).resolve().parents[3] / "docs" / "openapi.json").read_text())
SCHEMAS = OPENAPI["components"]["schemas"]

PAIRS = [
    (models.Action, "Action"),
    (models.FiredTrigger, "FiredTrigger"),
    (models.Tier, "Tier"),
    (models.Escalation, "Escalation"),
    (models.Receipt, "Receipt"),
    (models.ReceiptKey, "ReceiptKey"),
    (models.FinalVerdict, "FinalVerdict"),
    (models.Outcome, "Outcome"),
    (models.ToolResult, "ToolResult"),
    (models.AuditDraw, "AuditDraw"),
    (models.Decision, "Decision"),
    (models.DecisionRequest, "DecisionRequest"),
    (models.OutcomeRequest, "OutcomeRequest"),
    (models.Problem, "Problem"),
]


@pytest.mark.parametrize("model,schema", PAIRS, ids=[s for _, s in PAIRS])
def test_fields_match_the_schema(model, schema):
    s = SCHEMAS[schema]
    fields = {f.alias or name for name, f in model.model_fields.items()}
    assert fields == set(s.get("properties", {})), f"{model.__name__} and {schema} disagree"
    required = {f.alias or name for name, f in model.model_fields.items() if f.is_required()}
    assert required == set(s.get("required", [])), f"required fields of {model.__name__} and {schema} disagree"


def _enum(prop: dict) -> set:
    if "$ref" in prop:
        return set(SCHEMAS[prop["$ref"].rsplit("/", 1)[-1]]["enum"])
    return set(prop["enum"])


def test_enums_match_the_schema():
    final = SCHEMAS["FinalVerdict"]["properties"]
    assert _enum(final["source"]) == set(models.FinalSource.__args__)
    assert _enum(final["verdict"]) == set(models.FinalVerdictValue.__args__)
    assert _enum(SCHEMAS["Decision"]["properties"]["verdict"]) == set(models.Verdict.__args__)
