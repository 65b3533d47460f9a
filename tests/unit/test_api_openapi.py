"""The exported OpenAPI document, and the server verbs of the CLI (no model is loaded)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from identity_service.api.app import openapi_schema, openapi_text
from identity_service.cli import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_committed_openapi_is_current():
    assert DOC.read_text(encoding="utf-8") == openapi_text(), (
        "docs/openapi.json is stale: run `faceid openapi -o docs/openapi.json`"
    )


def test_openapi_documents_both_image_encodings_and_errors():
    doc = openapi_schema()
    find = doc["paths"]["/v1/collections/{collection}/find"]["post"]
    content = find["requestBody"]["content"]
    assert set(content) == {"multipart/form-data", "application/json"}
    assert content["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
    assert find["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"
    }
    schemes = doc["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}


def test_keys_create_list_revoke(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEID_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FACEID_DATABASE_URL", raising=False)
    runner = CliRunner()
    made = runner.invoke(
        app, ["keys", "create", "--tenant", "acme", "--scopes", "query,enroll", "--json"]
    )
    assert made.exit_code == 0, made.output
    key = json.loads(made.output)
    assert key["token"].startswith("fid_") and key["scopes"] == ["enroll", "query"]
    listed = json.loads(runner.invoke(app, ["keys", "list", "--json"]).output)
    assert [(k["id"], k["tenant"], k["revoked"]) for k in listed] == [(key["id"], "acme", None)]
    assert key["token"] not in json.dumps(listed)
    assert runner.invoke(app, ["keys", "revoke", str(key["id"])]).exit_code == 0
    listed = json.loads(runner.invoke(app, ["keys", "list", "--json"]).output)
    assert listed[0]["revoked"] is not None
    bad = runner.invoke(app, ["keys", "create", "--scopes", "root"])
    assert bad.exit_code != 0
