"""deploy/aws/template.yaml: cfn-lint clean, the code's tables, and least privilege.

The tables are compared with `Tables.definitions()` and the IAM actions with the
DynamoDB calls in server/*.py, so the code and the template cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint  # type: ignore[import-untyped]
from cfnlint.config import ManualArgs  # type: ignore[import-untyped]
from cfnlint.decode.decode import decode_str  # type: ignore[import-untyped]
from livecount.core.tables import Tables

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "aws" / "template.yaml"
PREFIX = "p_"
# The tables the code had when the template was written: these must always be compared.
CURRENT = {
    "PostCountWriter",
    "PostCountReader",
    "HomeAndProfile",
    "Referrer",
    "StreamCheckpoint",
    "Timeline",
    "PageIndex",
    "LiveFeed",
}
COMING: set[str] = set()
# Calls made only when creating tables: the admin policy's, not the node's.
CREATION = {"dynamodb:CreateTable", "dynamodb:UpdateTimeToLive"}
READ_ONLY = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"}
# What a node may do: the calls in server/*.py, plus ConditionCheckItem and ListStreams
# (harmless: it names streams and reads none). Scan only on the lease table, and on the
# tables of counts for the catalog a node reads at start.
NODE_ACTIONS = READ_ONLY | {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLInsert",
    "dynamodb:DescribeTable",
    "dynamodb:DescribeStream",
    "dynamodb:GetShardIterator",
    "dynamodb:GetRecords",
    "dynamodb:ListStreams",
    "dynamodb:Scan",
}


def template() -> dict[str, Any]:
    decoded, errors = decode_str(TEMPLATE.read_text())
    assert not errors, errors
    assert isinstance(decoded, dict)
    return decoded


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template()["Resources"].items() if r["Type"] == kind}


def lint_text(text: str) -> list[str]:
    config = ManualArgs(regions=["us-east-1", "eu-west-1"], include_checks=["I"])
    return [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in lint(text, config=config)]


# -- cfn-lint ----------------------------------------------------------------------------
def test_the_template_passes_cfn_lint_with_informational_checks() -> None:
    assert lint_text(TEMPLATE.read_text()) == []


def test_cfn_lint_would_catch_a_broken_template() -> None:
    """The check above is not vacuous: a misspelt property value is reported."""
    broken = TEMPLATE.read_text().replace(
        "BillingMode: PAY_PER_REQUEST", "BillingMode: PAY_PER_VIEW", 1
    )
    assert any("PAY_PER_VIEW" in m for m in lint_text(broken))


# -- tables ----------------------------------------------------------------------------
def table_name(props: dict[str, Any]) -> str:
    name = props["TableName"]
    assert isinstance(name, dict) and set(name) == {"Fn::Sub"}, f"not a !Sub: {name}"
    sub: str = name["Fn::Sub"]
    assert sub.startswith("${TablePrefix}"), sub
    return sub.replace("${TablePrefix}", PREFIX)


def from_template(props: dict[str, Any]) -> dict[str, Any]:
    """The CreateTable fields the code sets, as the template sets them."""
    spec: dict[str, Any] = {
        "TableName": table_name(props),
        "BillingMode": props["BillingMode"],
        "AttributeDefinitions": sorted(
            (a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]
        ),
        "KeySchema": [(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]],
        "Stream": props.get("StreamSpecification", {}).get("StreamViewType"),
    }
    for index in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if index in props:
            spec[index] = props[index]
    return spec


def from_code(definition: dict[str, Any]) -> dict[str, Any]:
    known = {
        "TableName",
        "BillingMode",
        "AttributeDefinitions",
        "KeySchema",
        "StreamSpecification",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
    }
    assert set(definition) <= known, (
        f"Tables.definitions() sets {set(definition) - known}: teach this test and "
        "deploy/aws/template.yaml about it"
    )
    stream = definition.get("StreamSpecification", {})
    spec: dict[str, Any] = {
        "TableName": definition["TableName"],
        "BillingMode": definition["BillingMode"],
        "AttributeDefinitions": sorted(
            (a["AttributeName"], a["AttributeType"]) for a in definition["AttributeDefinitions"]
        ),
        "KeySchema": [(k["AttributeName"], k["KeyType"]) for k in definition["KeySchema"]],
        "Stream": stream.get("StreamViewType") if stream.get("StreamEnabled") else None,
    }
    for index in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if index in definition:
            spec[index] = definition[index]
    return spec


def test_every_table_of_the_code_is_in_the_template_with_the_same_keys() -> None:
    in_template = {
        table_name(r["Properties"]): from_template(r["Properties"])
        for r in resources("AWS::DynamoDB::Table").values()
    }
    compared = set()
    for definition in Tables.named(PREFIX).definitions():
        name = definition["TableName"]
        assert name in in_template, f"{name} is in Tables.definitions() but not in the template"
        assert in_template[name] == from_code(definition), name
        compared.add(name.removeprefix(PREFIX))
    assert compared >= CURRENT
    # The template may be ahead of the code only by the tables being added.
    ahead = {n.removeprefix(PREFIX) for n in in_template} - compared
    assert ahead <= COMING, f"tables in the template that the code does not have: {ahead}"


def test_the_writer_alone_has_a_stream_and_every_table_is_protected() -> None:
    tables = resources("AWS::DynamoDB::Table")
    assert {n for n, r in tables.items() if "StreamSpecification" in r["Properties"]} == {
        "PostCountWriter"
    }
    for name, table in tables.items():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", name
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"]["SSEEnabled"] is True, name
        assert props["DeletionProtectionEnabled"] == {"Ref": "DeletionProtection"}, name
        # Counts outlive the stack; the live feed holds nothing older than an hour.
        assert table["DeletionPolicy"] == ("Delete" if name == "LiveFeed" else "Retain"), name


# -- IAM --------------------------------------------------------------------------------
def statements(policy: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = resources("AWS::IAM::ManagedPolicy")[policy]["Properties"][
        "PolicyDocument"
    ]["Statement"]
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants(policy: str) -> dict[str, set[str]]:
    """Action → the resources it is allowed on (logical table names, `stream`, `*`)."""
    allowed: dict[str, set[str]] = {}
    for statement in statements(policy):
        assert statement["Effect"] == "Allow"
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                where = "*"
            elif "Fn::GetAtt" in resource:
                table, attribute = resource["Fn::GetAtt"]
                where = {"Arn": table, "StreamArn": f"{table}.stream"}[attribute]
            else:
                where = str(resource)
            for action in as_list(statement["Action"]):
                assert "*" not in action, f"{policy}: wildcard action {action}"
                allowed.setdefault(action, set()).add(where)
    return allowed


def called_operations(paths: list[Path]) -> set[str]:
    """The DynamoDB and Streams operations the code calls, as IAM action names."""
    found: set[str] = set()
    for path in paths:
        text = path.read_text()
        ops = re.findall(r"\b(?:ddb|ddb_once|streams)\.([a-z_]+)\(", text)
        ops += re.findall(r"get_paginator\(\s*[\"']([a-z_]+)", text)  # the paginator's calls
        for op in ops:
            if op in ("get_waiter", "get_paginator", "close"):
                continue
            found.add("dynamodb:" + "".join(part.capitalize() for part in op.split("_")))
        if re.search(r"get_waiter\(\s*[\"']table_exists", text):
            found.add("dynamodb:DescribeTable")
    if "dynamodb:BatchExecuteStatement" in found:  # authorised per statement type
        found.remove("dynamodb:BatchExecuteStatement")
        found |= {"dynamodb:PartiQLUpdate", "dynamodb:PartiQLInsert"}
    if "dynamodb:TransactWriteItems" in found:  # authorised per item, not as a whole
        found.remove("dynamodb:TransactWriteItems")
        found |= {"dynamodb:ConditionCheckItem"}
    return found


def test_the_node_policy_allows_what_the_node_calls_and_creates_nothing() -> None:
    node, admin = grants("NodePolicy"), grants("TableAdminPolicy")
    code = sorted(p for p in (ROOT / "server").rglob("*.py") if p.name != "lambda_copy.py")
    calls = called_operations(code)
    assert {"dynamodb:UpdateItem", "dynamodb:GetRecords", "dynamodb:BatchGetItem"} <= calls
    assert calls - CREATION <= set(node), (
        f"the node calls {sorted(calls - set(node) - CREATION)} which NodePolicy does not allow"
    )
    assert set(node) == NODE_ACTIONS
    assert "dynamodb:CreateTable" not in node and "dynamodb:CreateTable" in admin
    assert set(admin) == CREATION | {"dynamodb:DescribeTable"}
    tables = set(resources("AWS::DynamoDB::Table"))
    for action, where in node.items():
        if action in (
            "dynamodb:DescribeStream",
            "dynamodb:GetShardIterator",
            "dynamodb:GetRecords",
        ):
            assert where == {"PostCountWriter.stream"}, action
        elif action == "dynamodb:ListStreams":
            assert where == {"*"}  # it takes no resource
        elif action == "dynamodb:Scan":  # the leases, and the catalog at start
            assert where == {"StreamCheckpoint", "PostCountReader", "HomeAndProfile"}, action
        else:
            assert where == tables, action
    assert admin["dynamodb:CreateTable"] == tables


def test_the_reporting_policy_only_reads_the_report_tables() -> None:
    report = grants("ReportingPolicy")
    assert set(report) == READ_ONLY
    for where in report.values():
        assert where == {"PostCountReader", "HomeAndProfile", "Referrer", "Timeline", "PageIndex"}


def test_the_copy_function_reads_the_stream_and_writes_only_the_reader() -> None:
    copy = grants("CopyPolicy")
    assert copy.pop("dynamodb:DeleteItem") == {"PostCountReader"}
    assert copy.pop("dynamodb:PutItem") == {"PostCountReader", "LiveFeed"}  # and live pushes
    assert copy.pop("dynamodb:ListStreams") == {"*"}
    for action in ("dynamodb:DescribeStream", "dynamodb:GetShardIterator", "dynamodb:GetRecords"):
        assert copy.pop(action) == {"PostCountWriter.stream"}
    assert set(copy) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    for where in copy.values():
        assert all("/aws/lambda/${AWS::StackName}-stream-copy:*" in w for w in where), where


def test_the_serverless_copy_is_optional_and_runs_the_named_handler() -> None:
    parsed = template()
    assert parsed["Conditions"]["ServerlessCopyOn"] == {
        "Fn::Equals": [{"Ref": "ServerlessCopy"}, "true"]
    }
    assert parsed["Parameters"]["ServerlessCopy"]["Default"] == "false"
    optional = {
        name for name, r in parsed["Resources"].items() if r.get("Condition") == "ServerlessCopyOn"
    }
    assert optional == {"CopyRole", "CopyLogGroup", "CopyFunction", "CopyEventSource"}
    function = parsed["Resources"]["CopyFunction"]["Properties"]
    assert function["Handler"] == "livecount.aws.lambda_copy.handler"
    assert function["Runtime"] == "python3.11"
    assert function["Environment"]["Variables"]["LIVECOUNT_TABLE_PREFIX"] == {"Ref": "TablePrefix"}
    mapping = parsed["Resources"]["CopyEventSource"]["Properties"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["PostCountWriter", "StreamArn"]}
    assert mapping["FunctionName"] == {"Ref": "CopyFunction"}
    assert parsed["Resources"]["CopyRole"]["Properties"]["ManagedPolicyArns"] == [
        {"Ref": "CopyPolicy"}
    ]


@pytest.mark.parametrize(
    "output",
    [
        "PostCountWriterTable",
        "PostCountReaderTable",
        "HomeAndProfileTable",
        "ReferrerTable",
        "TimelineTable",
        "PageIndexTable",
        "StreamCheckpointTable",
        "LiveFeedTable",
        "WriterStreamArn",
        "NodePolicyArn",
        "TableAdminPolicyArn",
        "ReportingPolicyArn",
        "CopyPolicyArn",
    ],
)
def test_outputs(output: str) -> None:
    assert output in template()["Outputs"]
