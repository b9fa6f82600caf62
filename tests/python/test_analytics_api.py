"""Kinesis Data Analytics (SQL, v1) control plane through boto3's
`kinesisanalytics` client and the AWS CLI against the real binary: the
twenty operations' answers key by key, versions, part ids, limits, tags,
refusals in AWS's exception names, the code check (AWS's examples E1 and
E7), and applications surviving SIGTERM and SIGKILL restarts."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import start_server, stop_server
from lambda_env import start_on

from analytics_env import (  # noqa: F401 (fixtures: shared, env)
    ACCOUNT, COMPANY_COLUMNS, DEMO_COLUMNS, E1, E7, FUNCTION, FUNCTION_URL, HEART_COLUMNS, REGION,
    ROLE, Env, app_arn, client, csv_schema, delivery_stream_arn, env, firehose_input, firehose_output,
    input_described, json_schema, lambda_output, logging_described, logging_option, near_now,
    output_described, position, reference, reference_described, refused, shared, shown,
    stream_arn, stream_input, stream_output, unique, write_functions_config)

INVALID = "InvalidArgumentException"
NOT_FOUND = "ResourceNotFoundException"
CONCURRENT = "ConcurrentModificationException"
CODE = "CodeValidationException"


# ---------------------------------------------------------------- create, describe, list

def test_create_and_describe_every_member(env):
    _, src = env.stream()
    _, out = env.stream()
    _, fh = env.delivery_stream()
    given_input = stream_input(src, count=3)
    outputs = [stream_output(out), firehose_output(fh, name="ALERTS", fmt="CSV"),
               lambda_output(FUNCTION_URL, name="error_stream")]
    logs = [logging_option()]
    name = unique()
    before = time.time()
    env.create(name, ApplicationDescription="alerts on large moves", Inputs=[given_input],
               Outputs=outputs, CloudWatchLoggingOptions=logs,
               Tags=[{"Key": "team", "Value": "data"}])
    after = time.time()

    got = env.ka.describe_application(ApplicationName=name)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    detail = got["ApplicationDetail"]
    near_now(detail["CreateTimestamp"], before, after)
    assert detail["LastUpdateTimestamp"] == detail["CreateTimestamp"]
    assert shown(detail) == {
        "ApplicationName": name,
        "ApplicationDescription": "alerts on large moves",
        "ApplicationARN": app_arn(name),
        "ApplicationStatus": "READY",
        "InputDescriptions": [{
            "InputId": "1.1",
            "NamePrefix": "SOURCE_SQL_STREAM",
            "InAppStreamNames": ["SOURCE_SQL_STREAM_001", "SOURCE_SQL_STREAM_002",
                                 "SOURCE_SQL_STREAM_003"],
            "KinesisStreamsInputDescription": {"ResourceARN": src, "RoleARN": ROLE},
            "InputSchema": json_schema(),
            "InputParallelism": {"Count": 3},
            "InputStartingPositionConfiguration": {},
        }],
        "OutputDescriptions": [
            {"OutputId": "2.1", "Name": "DESTINATION_SQL_STREAM",
             "KinesisStreamsOutputDescription": {"ResourceARN": out, "RoleARN": ROLE},
             "DestinationSchema": {"RecordFormatType": "JSON"}},
            {"OutputId": "3.1", "Name": "ALERTS",
             "KinesisFirehoseOutputDescription": {"ResourceARN": fh, "RoleARN": ROLE},
             "DestinationSchema": {"RecordFormatType": "CSV"}},
            {"OutputId": "4.1", "Name": "error_stream",
             "LambdaOutputDescription": {"ResourceARN": FUNCTION_URL, "RoleARN": ROLE},
             "DestinationSchema": {"RecordFormatType": "JSON"}},
        ],
        "ReferenceDataSourceDescriptions": [],
        "CloudWatchLoggingOptionDescriptions": [dict(logs[0], CloudWatchLoggingOptionId="5.1")],
        "ApplicationCode": "",
        "ApplicationVersionId": 1,
    }
    assert env.ka.list_tags_for_resource(ResourceARN=app_arn(name))["Tags"] == [
        {"Key": "team", "Value": "data"}]

    # On the wire: JSON 1.1, timestamps as epoch seconds (numbers).
    req = urllib.request.Request(
        env.endpoint, data=json.dumps({"ApplicationName": name}).encode(), method="POST",
        headers={"X-Amz-Target": "KinesisAnalytics_20150814.DescribeApplication",
                 "Content-Type": "application/x-amz-json-1.1"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/x-amz-json-1.1"
        raw = json.loads(r.read())["ApplicationDetail"]
    for k in ("CreateTimestamp", "LastUpdateTimestamp"):
        assert isinstance(raw[k], (int, float)) and not isinstance(raw[k], bool), raw[k]
        assert before - 0.01 <= raw[k] <= after + 0.01
    assert isinstance(raw["ApplicationVersionId"], int) and raw["ApplicationVersionId"] == 1

    # A Firehose source without InputParallelism nor RecordEncoding: one
    # in-application stream, the encoding not answered.
    fh_input = firehose_input(fh, prefix="clicks", schema=json_schema(encoding=None))
    bare = env.create(Inputs=[fh_input], ApplicationCode=E1.replace("SOURCE_SQL_STREAM", "clicks"))
    d = env.describe(bare)
    assert d["InputDescriptions"] == [{
        "InputId": "1.1", "NamePrefix": "clicks", "InAppStreamNames": ["clicks_001"],
        "KinesisFirehoseInputDescription": {"ResourceARN": fh, "RoleARN": ROLE},
        "InputSchema": json_schema(encoding=None), "InputParallelism": {"Count": 1},
        "InputStartingPositionConfiguration": {}}]
    assert "RecordEncoding" not in d["InputDescriptions"][0]["InputSchema"]
    assert "ApplicationDescription" not in d
    assert d["ApplicationCode"] == E1.replace("SOURCE_SQL_STREAM", "clicks")

    # Nothing but a name.
    empty = env.create()
    d = env.describe(empty)
    assert shown(d) == {
        "ApplicationName": empty, "ApplicationARN": app_arn(empty), "ApplicationStatus": "READY",
        "InputDescriptions": [], "OutputDescriptions": [], "ReferenceDataSourceDescriptions": [],
        "CloudWatchLoggingOptionDescriptions": [], "ApplicationCode": "", "ApplicationVersionId": 1}
    assert env.ka.list_tags_for_resource(ResourceARN=app_arn(empty))["Tags"] == []

    # A second Create of a name: ResourceInUseException, nothing changed.
    assert refused(env.ka.create_application, ApplicationName=name) == (
        "ResourceInUseException", f"Application {name} already exists.", 400)
    assert env.describe(name) == detail
    # Unknown applications.
    assert refused(env.ka.describe_application, ApplicationName="no-such-app") == (
        NOT_FOUND, "Application no-such-app is not found.", 400)


def test_part_ids_are_unique_and_never_reused(env):
    _, src = env.stream()
    _, out = env.stream()
    name = env.create(Inputs=[stream_input(src)], Outputs=[stream_output(out)])
    d = env.describe(name)
    assert d["InputDescriptions"][0]["InputId"] == "1.1"
    assert d["OutputDescriptions"][0]["OutputId"] == "2.1"
    seen = {"1.1", "2.1"}

    # Delete the output and add one back: a new id, never the deleted one.
    env.ka.delete_application_output(ApplicationName=name, CurrentApplicationVersionId=1,
                                      OutputId="2.1")
    env.ka.add_application_output(ApplicationName=name, CurrentApplicationVersionId=2,
                                  Output=stream_output(out))
    [o] = env.describe(name)["OutputDescriptions"]
    assert o["OutputId"] == "3.1"
    seen.add(o["OutputId"])
    # The same for the input, references and logging options.
    env.ka.add_application_reference_data_source(ApplicationName=name, CurrentApplicationVersionId=3,
                                                 ReferenceDataSource=reference())
    env.ka.add_application_cloud_watch_logging_option(
        ApplicationName=name, CurrentApplicationVersionId=4, CloudWatchLoggingOption=logging_option())
    d = env.describe(name)
    ids = [d["ReferenceDataSourceDescriptions"][0]["ReferenceId"],
           d["CloudWatchLoggingOptionDescriptions"][0]["CloudWatchLoggingOptionId"]]
    assert ids == ["4.1", "5.1"]
    seen.update(ids)
    env.ka.delete_application_reference_data_source(ApplicationName=name, CurrentApplicationVersionId=5,
                                                    ReferenceId="4.1")
    env.ka.add_application_reference_data_source(ApplicationName=name, CurrentApplicationVersionId=6,
                                                 ReferenceDataSource=reference())
    new_ref = env.describe(name)["ReferenceDataSourceDescriptions"][0]["ReferenceId"]
    assert new_ref == "6.1" and new_ref not in seen
    seen.add(new_ref)
    # An Update keeps ids.
    env.ka.update_application(ApplicationName=name, CurrentApplicationVersionId=7, ApplicationUpdate={
        "InputUpdates": [{"InputId": "1.1", "InputParallelismUpdate": {"CountUpdate": 2}}]})
    d = env.describe(name)
    assert d["InputDescriptions"][0]["InputId"] == "1.1"
    assert [o["OutputId"] for o in d["OutputDescriptions"]] == ["3.1"]
    assert len(seen) == 6

    # A deleted application's name made again starts over at 1.1 (a new application).
    env.delete(name)
    env.apps.remove(name)
    env.create(name, Inputs=[stream_input(src)], Outputs=[stream_output(out)])
    d = env.describe(name)
    assert d["ApplicationVersionId"] == 1
    assert (d["InputDescriptions"][0]["InputId"], d["OutputDescriptions"][0]["OutputId"]) == ("1.1", "2.1")


def test_list_applications_sorted_and_paged(env):
    tag = unique("list")
    names = [f"{tag}-{c}" for c in "dbeacgf"]
    for n in names:
        env.create(n)
    everything = env.ka.list_applications(Limit=50)
    assert everything["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert everything["HasMoreApplications"] is False
    listed = everything["ApplicationSummaries"]
    assert [s["ApplicationName"] for s in listed] == sorted(s["ApplicationName"] for s in listed)
    mine = [s for s in listed if s["ApplicationName"].startswith(tag)]
    assert mine == [{"ApplicationName": n, "ApplicationARN": app_arn(n), "ApplicationStatus": "READY"}
                    for n in sorted(names)]
    # Without Limit: the same (the default is 50).
    assert env.ka.list_applications()["ApplicationSummaries"] == listed

    # Pages of 3 through everything.
    pages, after = [], None
    while True:
        kw = {"ExclusiveStartApplicationName": after} if after else {}
        page = env.ka.list_applications(Limit=3, **kw)
        pages.append(page["ApplicationSummaries"])
        assert len(page["ApplicationSummaries"]) <= 3
        if not page["HasMoreApplications"]:
            break
        assert len(page["ApplicationSummaries"]) == 3
        after = page["ApplicationSummaries"][-1]["ApplicationName"]
    assert [s for p in pages for s in p] == listed
    assert len(pages) == -(-len(listed) // 3)

    # ExclusiveStartApplicationName starts after it, whether it exists or not.
    got = env.ka.list_applications(Limit=2, ExclusiveStartApplicationName=f"{tag}-b")
    assert [s["ApplicationName"] for s in got["ApplicationSummaries"]] == [f"{tag}-c", f"{tag}-d"]
    assert got["HasMoreApplications"] is True
    got = env.ka.list_applications(Limit=50, ExclusiveStartApplicationName=f"{tag}-bb")
    assert [s["ApplicationName"] for s in got["ApplicationSummaries"]
            if s["ApplicationName"].startswith(tag)] == [f"{tag}-{c}" for c in "cdefg"]
    got = env.ka.list_applications(Limit=50, ExclusiveStartApplicationName=f"{tag}-g")
    assert not [s for s in got["ApplicationSummaries"] if s["ApplicationName"].startswith(tag)]
    # An exact last page: HasMoreApplications false.
    last_two = [s["ApplicationName"] for s in listed][-3]
    got = env.ka.list_applications(Limit=2, ExclusiveStartApplicationName=last_two)
    assert got["ApplicationSummaries"] == listed[-2:] and got["HasMoreApplications"] is False

    # Limit outside the model's 1–50.
    for bad in (0, 51):
        code, message, status = refused(env.raw.list_applications, Limit=bad)
        assert (code, status) == ("ValidationException", 400), (code, message)
        assert "limit" in message.lower(), message

    # A deleted application leaves the list.
    env.delete(f"{tag}-c")
    env.apps.remove(f"{tag}-c")
    got = env.ka.list_applications(Limit=50, ExclusiveStartApplicationName=f"{tag}-b")
    assert [s["ApplicationName"] for s in got["ApplicationSummaries"]
            if s["ApplicationName"].startswith(tag)] == [f"{tag}-{c}" for c in "defg"]


# ---------------------------------------------------------------- update

def test_update_application_each_part(env):
    _, src = env.stream()
    _, src2 = env.stream()
    _, out = env.stream()
    _, out2 = env.stream()
    _, fh = env.delivery_stream()
    given_input = stream_input(src, count=1)
    name = env.create(Inputs=[given_input], Outputs=[stream_output(out)],
                      CloudWatchLoggingOptions=[logging_option()])
    env.ka.add_application_reference_data_source(ApplicationName=name, CurrentApplicationVersionId=1,
                                                 ReferenceDataSource=reference())
    first = env.describe(name)
    assert first["ApplicationVersionId"] == 2
    assert [r["ReferenceId"] for r in first["ReferenceDataSourceDescriptions"]] == ["4.1"]
    expected = shown(first)
    last_update = first["LastUpdateTimestamp"]

    def update(version, u):
        before = time.time()
        got = env.ka.update_application(ApplicationName=name, CurrentApplicationVersionId=version,
                                        ApplicationUpdate=u)
        after = time.time()
        assert {k: v for k, v in got.items() if k != "ResponseMetadata"} == {}
        d = env.describe(name)
        near_now(d["LastUpdateTimestamp"], before, after)
        assert d["CreateTimestamp"] == first["CreateTimestamp"]
        nonlocal last_update
        assert d["LastUpdateTimestamp"] >= last_update
        last_update = d["LastUpdateTimestamp"]
        return d

    # Code.
    d = update(2, {"ApplicationCodeUpdate": E1})
    expected.update(ApplicationCode=E1, ApplicationVersionId=3)
    assert shown(d) == expected

    # Input: schema (one more column, CSV), parallelism, source, role.
    columns = [{"Name": c["Name"], "SqlType": c["SqlType"]} for c in DEMO_COLUMNS] + [
        {"Name": "VOLUME", "SqlType": "BIGINT"}]
    new_role = f"arn:aws:iam::{ACCOUNT}:role/kda-2"
    d = update(3, {"InputUpdates": [{
        "InputId": "1.1",
        "KinesisStreamsInputUpdate": {"ResourceARNUpdate": src2},
        "InputSchemaUpdate": {
            "RecordFormatUpdate": csv_schema(columns)["RecordFormat"],
            "RecordEncodingUpdate": "UTF-8",
            "RecordColumnUpdates": columns},
        "InputParallelismUpdate": {"CountUpdate": 4}}]})
    expected["ApplicationVersionId"] = 4
    expected["InputDescriptions"] = [{
        "InputId": "1.1", "NamePrefix": "SOURCE_SQL_STREAM",
        "InAppStreamNames": [f"SOURCE_SQL_STREAM_00{i}" for i in range(1, 5)],
        "KinesisStreamsInputDescription": {"ResourceARN": src2, "RoleARN": ROLE},
        "InputSchema": dict(csv_schema(columns), RecordEncoding="UTF-8"),
        "InputParallelism": {"Count": 4},
        "InputStartingPositionConfiguration": {}}]
    assert shown(d) == expected
    d = update(4, {"InputUpdates": [{"InputId": "1.1",
                                     "KinesisStreamsInputUpdate": {"RoleARNUpdate": new_role}}]})
    expected["ApplicationVersionId"] = 5
    expected["InputDescriptions"][0]["KinesisStreamsInputDescription"]["RoleARN"] = new_role
    assert shown(d) == expected

    # Output: another stream, CSV; then to a delivery stream (both members needed).
    d = update(5, {"OutputUpdates": [{"OutputId": "2.1",
                                      "KinesisStreamsOutputUpdate": {"ResourceARNUpdate": out2},
                                      "DestinationSchemaUpdate": {"RecordFormatType": "CSV"}}]})
    expected["ApplicationVersionId"] = 6
    expected["OutputDescriptions"] = [{
        "OutputId": "2.1", "Name": "DESTINATION_SQL_STREAM",
        "KinesisStreamsOutputDescription": {"ResourceARN": out2, "RoleARN": ROLE},
        "DestinationSchema": {"RecordFormatType": "CSV"}}]
    assert shown(d) == expected
    code, message, _ = refused(env.ka.update_application, ApplicationName=name,
                               CurrentApplicationVersionId=6, ApplicationUpdate={"OutputUpdates": [{
                                   "OutputId": "2.1",
                                   "KinesisFirehoseOutputUpdate": {"ResourceARNUpdate": fh}}]})
    assert code == INVALID and "RoleARNUpdate" in message, message
    d = update(6, {"OutputUpdates": [{"OutputId": "2.1", "KinesisFirehoseOutputUpdate": {
        "ResourceARNUpdate": fh, "RoleARNUpdate": ROLE}}]})
    expected["ApplicationVersionId"] = 7
    expected["OutputDescriptions"] = [{
        "OutputId": "2.1", "Name": "DESTINATION_SQL_STREAM",
        "KinesisFirehoseOutputDescription": {"ResourceARN": fh, "RoleARN": ROLE},
        "DestinationSchema": {"RecordFormatType": "CSV"}}]
    assert shown(d) == expected

    # Reference data source: the object and the table's schema.
    ref_columns = COMPANY_COLUMNS + [{"Name": "Sector", "SqlType": "VARCHAR(12)"}]
    d = update(7, {"ReferenceDataSourceUpdates": [{
        "ReferenceId": "4.1",
        "S3ReferenceDataSourceUpdate": {"FileKeyUpdate": "tickers-v2.csv"},
        "ReferenceSchemaUpdate": csv_schema(ref_columns)}]})
    expected["ApplicationVersionId"] = 8
    ref = reference()
    ref["S3ReferenceDataSource"]["FileKey"] = "tickers-v2.csv"
    ref["ReferenceSchema"] = csv_schema(ref_columns)
    expected["ReferenceDataSourceDescriptions"] = [reference_described(ref, "4.1")]
    assert shown(d) == expected

    # Logging option.
    new_log = logging_option(stream="app-2")["LogStreamARN"]
    d = update(8, {"CloudWatchLoggingOptionUpdates": [{"CloudWatchLoggingOptionId": "3.1",
                                                       "LogStreamARNUpdate": new_log}]})
    expected["ApplicationVersionId"] = 9
    expected["CloudWatchLoggingOptionDescriptions"] = [
        {"CloudWatchLoggingOptionId": "3.1", "LogStreamARN": new_log, "RoleARN": ROLE}]
    assert shown(d) == expected

    # The input's name prefix with the code that reads it, in one update.
    code = E1.replace("SOURCE_SQL_STREAM_001", "TICKS_001")
    d = update(9, {"ApplicationCodeUpdate": code,
                   "InputUpdates": [{"InputId": "1.1", "NamePrefixUpdate": "TICKS"}]})
    expected["ApplicationVersionId"] = 10
    expected["ApplicationCode"] = code
    expected["InputDescriptions"][0]["NamePrefix"] = "TICKS"
    expected["InputDescriptions"][0]["InAppStreamNames"] = [f"TICKS_00{i}" for i in range(1, 5)]
    assert shown(d) == expected

    # Refused updates change nothing.
    settled = env.describe(name)
    assert refused(env.ka.update_application, ApplicationName=name, CurrentApplicationVersionId=9,
                   ApplicationUpdate={"ApplicationCodeUpdate": ""}) == (
        CONCURRENT, f"Provided CurrentApplicationVersionId 9 does not match the current version 10 "
                    f"of application {name}.", 400)
    assert refused(env.ka.update_application, ApplicationName=name, CurrentApplicationVersionId=10,
                   ApplicationUpdate={"OutputUpdates": [{"OutputId": "9.1", "NameUpdate": "X"}]}) == (
        NOT_FOUND, "The application has no output with id 9.1.", 400)
    for update_member, id_member, what in (
            ("InputUpdates", "InputId", "input"),
            ("ReferenceDataSourceUpdates", "ReferenceId", "reference data source"),
            ("CloudWatchLoggingOptionUpdates", "CloudWatchLoggingOptionId", "CloudWatch logging option")):
        part = {id_member: "2.1"}
        if update_member == "InputUpdates":
            part["NamePrefixUpdate"] = "X"
        elif update_member == "ReferenceDataSourceUpdates":
            part["TableNameUpdate"] = "X"
        else:
            part["LogStreamARNUpdate"] = new_log
        assert refused(env.ka.update_application, ApplicationName=name, CurrentApplicationVersionId=10,
                       ApplicationUpdate={update_member: [part]}) == (
            NOT_FOUND, f"The application has no {what} with id 2.1.", 400)
    assert refused(env.ka.update_application, ApplicationName=name, CurrentApplicationVersionId=10,
                   ApplicationUpdate={}) == (
        INVALID, "ApplicationUpdate must contain at least one update.", 400)
    # A refused part of a multi-part update leaves the others undone.
    assert refused(env.ka.update_application, ApplicationName=name, CurrentApplicationVersionId=10,
                   ApplicationUpdate={"ApplicationCodeUpdate": "",
                                      "OutputUpdates": [{"OutputId": "7.1", "NameUpdate": "X"}]})[0] == NOT_FOUND
    # A schema update refused as a Create's schema would be.
    code, message, _ = refused(env.ka.update_application, ApplicationName=name,
                               CurrentApplicationVersionId=10, ApplicationUpdate={"InputUpdates": [{
                                   "InputId": "1.1", "InputSchemaUpdate": {"RecordColumnUpdates": [
                                       {"Name": "A", "SqlType": "INTEGER"},
                                       {"Name": "A", "SqlType": "INTEGER"}]}}]})
    assert (code, message) == (INVALID, "InputSchemaUpdate: column A appears twice.")
    # An input moved to a stream that does not exist.
    assert refused(env.ka.update_application, ApplicationName=name, CurrentApplicationVersionId=10,
                   ApplicationUpdate={"InputUpdates": [{"InputId": "1.1", "KinesisStreamsInputUpdate": {
                       "ResourceARNUpdate": stream_arn("no-such-stream")}}]}) == (
        INVALID, f"Stream no-such-stream under account {ACCOUNT} not found.", 400)
    assert refused(env.ka.update_application, ApplicationName="no-such-app", CurrentApplicationVersionId=1,
                   ApplicationUpdate={"ApplicationCodeUpdate": ""}) == (
        NOT_FOUND, "Application no-such-app is not found.", 400)
    assert env.describe(name) == settled


def test_concurrent_updates_of_one_version_one_wins(env):
    """Eight UpdateApplication calls at once, all from version 1: exactly one
    passes (version 2, its code), the others answer
    ConcurrentModificationException."""
    name = env.create()
    clients = [client("kinesisanalytics", env.endpoint) for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    results = [None] * len(clients)

    def call(i):
        barrier.wait()
        try:
            clients[i].update_application(ApplicationName=name, CurrentApplicationVersionId=1,
                                          ApplicationUpdate={"ApplicationCodeUpdate": f"-- {i}\n"})
            results[i] = "ok"
        except ClientError as e:
            results[i] = e.response["Error"]["Code"]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == [CONCURRENT] * 7 + ["ok"], results
    d = env.describe(name)
    assert d["ApplicationVersionId"] == 2
    assert d["ApplicationCode"] == f"-- {results.index('ok')}\n"


# ---------------------------------------------------------------- add and delete parts

def test_add_and_delete_every_part(env):
    _, src = env.stream()
    _, out = env.stream()
    _, fh = env.delivery_stream()
    name = env.create()
    created = env.describe(name)
    expected = shown(created)
    ka = env.ka

    def step(call, version, **kw):
        got = call(ApplicationName=name, CurrentApplicationVersionId=version, **kw)
        assert {k: v for k, v in got.items() if k != "ResponseMetadata"} == {}
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
        d = env.describe(name)
        assert d["ApplicationVersionId"] == version + 1
        assert d["CreateTimestamp"] == created["CreateTimestamp"]
        assert d["LastUpdateTimestamp"] >= created["LastUpdateTimestamp"]
        expected["ApplicationVersionId"] = version + 1
        return d

    # Input.
    given_input = stream_input(src, count=2)
    d = step(ka.add_application_input, 1, Input=given_input)
    expected["InputDescriptions"] = [input_described(given_input, "1.1", count=2)]
    assert shown(d) == expected
    assert refused(ka.add_application_input, ApplicationName=name, CurrentApplicationVersionId=2,
                   Input=stream_input(src, prefix="OTHER")) == (
        INVALID, f"Application {name} already has an input: an application reads at most 1 source.", 400)

    # Its preprocessor.
    processor = {"InputLambdaProcessor": {"ResourceARN": FUNCTION_URL, "RoleARN": ROLE}}
    d = step(ka.add_application_input_processing_configuration, 2, InputId="1.1",
             InputProcessingConfiguration=processor)
    expected["InputDescriptions"][0]["InputProcessingConfigurationDescription"] = {
        "InputLambdaProcessorDescription": {"ResourceARN": FUNCTION_URL, "RoleARN": ROLE}}
    assert shown(d) == expected
    assert refused(ka.add_application_input_processing_configuration, ApplicationName=name,
                   CurrentApplicationVersionId=3, InputId="1.1",
                   InputProcessingConfiguration=processor) == (
        INVALID, "Input 1.1 already has an input processing configuration.", 400)
    assert refused(ka.add_application_input_processing_configuration, ApplicationName=name,
                   CurrentApplicationVersionId=3, InputId="7.1",
                   InputProcessingConfiguration=processor) == (
        NOT_FOUND, "The application has no input with id 7.1.", 400)
    d = step(ka.delete_application_input_processing_configuration, 3, InputId="1.1")
    del expected["InputDescriptions"][0]["InputProcessingConfigurationDescription"]
    assert shown(d) == expected
    assert refused(ka.delete_application_input_processing_configuration, ApplicationName=name,
                   CurrentApplicationVersionId=4, InputId="1.1") == (
        NOT_FOUND, "Input 1.1 has no input processing configuration.", 400)
    # A preprocessor named through the server's [functions] table.
    named = {"InputLambdaProcessor": {
        "ResourceARN": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}", "RoleARN": ROLE}}
    d = step(ka.add_application_input_processing_configuration, 4, InputId="1.1",
             InputProcessingConfiguration=named)
    expected["InputDescriptions"][0]["InputProcessingConfigurationDescription"] = {
        "InputLambdaProcessorDescription": named["InputLambdaProcessor"]}
    assert shown(d) == expected

    # Outputs: three, then a fourth refused.
    outputs = [stream_output(out), firehose_output(fh, name="ALERTS"),
               lambda_output(FUNCTION, name="error_stream", fmt="CSV")]
    for n, o in enumerate(outputs):
        d = step(ka.add_application_output, 5 + n, Output=o)
    expected["OutputDescriptions"] = [output_described(o, f"{2 + n}.1") for n, o in enumerate(outputs)]
    assert shown(d) == expected
    assert refused(ka.add_application_output, ApplicationName=name, CurrentApplicationVersionId=8,
                   Output=stream_output(out, name="MORE")) == (
        INVALID, f"Application {name} already has 3 outputs, the most an application may have.", 400)
    d = step(ka.delete_application_output, 8, OutputId="3.1")
    del expected["OutputDescriptions"][1]
    assert shown(d) == expected
    assert refused(ka.delete_application_output, ApplicationName=name, CurrentApplicationVersionId=9,
                   OutputId="3.1") == (NOT_FOUND, "The application has no output with id 3.1.", 400)

    # A reference data source, then a second refused.
    d = step(ka.add_application_reference_data_source, 9, ReferenceDataSource=reference())
    expected["ReferenceDataSourceDescriptions"] = [reference_described(reference(), "5.1")]
    assert shown(d) == expected
    assert refused(ka.add_application_reference_data_source, ApplicationName=name,
                   CurrentApplicationVersionId=10, ReferenceDataSource=reference(table="Other")) == (
        INVALID, f"Application {name} already has a reference data source: an application has at "
                 "most 1.", 400)
    d = step(ka.delete_application_reference_data_source, 10, ReferenceId="5.1")
    expected["ReferenceDataSourceDescriptions"] = []
    assert shown(d) == expected
    assert refused(ka.delete_application_reference_data_source, ApplicationName=name,
                   CurrentApplicationVersionId=11, ReferenceId="5.1") == (
        NOT_FOUND, "The application has no reference data source with id 5.1.", 400)
    # A reference table may not take an input stream's name.
    assert refused(ka.add_application_reference_data_source, ApplicationName=name,
                   CurrentApplicationVersionId=11,
                   ReferenceDataSource=reference(table="SOURCE_SQL_STREAM_002")) == (
        INVALID, "The in-application name SOURCE_SQL_STREAM_002 is already used by the application.", 400)

    # CloudWatch logging options.
    logs = [logging_option(stream="a"), logging_option(stream="b")]
    d = step(ka.add_application_cloud_watch_logging_option, 11, CloudWatchLoggingOption=logs[0])
    d = step(ka.add_application_cloud_watch_logging_option, 12, CloudWatchLoggingOption=logs[1])
    # (6.1: the ids of refused additions are not taken.)
    expected["CloudWatchLoggingOptionDescriptions"] = [logging_described(logs[0], "6.1"),
                                                       logging_described(logs[1], "7.1")]
    assert shown(d) == expected
    d = step(ka.delete_application_cloud_watch_logging_option, 13, CloudWatchLoggingOptionId="6.1")
    del expected["CloudWatchLoggingOptionDescriptions"][0]
    assert shown(d) == expected
    assert refused(ka.delete_application_cloud_watch_logging_option, ApplicationName=name,
                   CurrentApplicationVersionId=14, CloudWatchLoggingOptionId="6.1") == (
        NOT_FOUND, "The application has no CloudWatch logging option with id 6.1.", 400)

    # Every Add*/Delete* checks the version first.
    settled = env.describe(name)
    stale = "Provided CurrentApplicationVersionId 3 does not match the current version 14 of " \
            f"application {name}."
    for call, kw in (
            (ka.add_application_input, {"Input": stream_input(src)}),
            (ka.add_application_input_processing_configuration,
             {"InputId": "1.1", "InputProcessingConfiguration": processor}),
            (ka.delete_application_input_processing_configuration, {"InputId": "1.1"}),
            (ka.add_application_output, {"Output": stream_output(out)}),
            (ka.delete_application_output, {"OutputId": "2.1"}),
            (ka.add_application_reference_data_source, {"ReferenceDataSource": reference()}),
            (ka.delete_application_reference_data_source, {"ReferenceId": "5.1"}),
            (ka.add_application_cloud_watch_logging_option, {"CloudWatchLoggingOption": logs[0]}),
            (ka.delete_application_cloud_watch_logging_option, {"CloudWatchLoggingOptionId": "7.1"})):
        assert refused(call, ApplicationName=name, CurrentApplicationVersionId=3, **kw) == (
            CONCURRENT, stale, 400), call
        assert refused(call, ApplicationName="no-such-app", CurrentApplicationVersionId=1, **kw) == (
            NOT_FOUND, "Application no-such-app is not found.", 400), call
    assert env.describe(name) == settled


def test_create_limits(env):
    _, src = env.stream()
    _, out = env.stream()
    name = unique()
    four = [stream_output(out, name=f"OUT_{i}") for i in range(4)]
    assert refused(env.ka.create_application, ApplicationName=name, Outputs=four) == (
        "LimitExceededException", "An application may have at most 3 outputs; 4 were given.", 400)
    assert refused(env.ka.create_application, ApplicationName=name,
                   Inputs=[stream_input(src), stream_input(src, prefix="SECOND")]) == (
        "LimitExceededException", "An application may have at most 1 inputs; 2 were given.", 400)
    assert refused(env.ka.describe_application, ApplicationName=name)[0] == NOT_FOUND
    # Three outputs are fine.
    env.create(name, Outputs=four[:3])
    assert [o["OutputId"] for o in env.describe(name)["OutputDescriptions"]] == ["1.1", "2.1", "3.1"]


# ---------------------------------------------------------------- delete

def test_delete_application(env):
    _, src = env.stream()
    name = env.create(Inputs=[stream_input(src)], Tags=[{"Key": "k", "Value": "v"}])
    created = env.describe(name)["CreateTimestamp"]
    wrong = created.replace(second=(created.second + 1) % 60)
    code, message, status = refused(env.ka.delete_application, ApplicationName=name, CreateTimestamp=wrong)
    assert (code, status) == (CONCURRENT, 400)
    assert message.startswith(f"CreateTimestamp does not match application {name}'s"), message
    assert env.describe(name)["ApplicationStatus"] == "READY"

    got = env.ka.delete_application(ApplicationName=name, CreateTimestamp=created)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert {k: v for k, v in got.items() if k != "ResponseMetadata"} == {}
    env.apps.remove(name)
    for call, kw in ((env.ka.describe_application, {}),
                     (env.ka.delete_application, {"CreateTimestamp": created}),
                     (env.ka.stop_application, {})):
        assert refused(call, ApplicationName=name, **kw) == (
            NOT_FOUND, f"Application {name} is not found.", 400)
    assert refused(env.ka.list_tags_for_resource, ResourceARN=app_arn(name)) == (
        NOT_FOUND, f"Application {name} is not found.", 400)
    assert name not in [s["ApplicationName"] for s in env.ka.list_applications()["ApplicationSummaries"]]

    # The name is free again: a new application, no tags, version 1.
    time.sleep(0.01)
    env.create(name)
    d = env.describe(name)
    assert d["ApplicationVersionId"] == 1 and d["InputDescriptions"] == []
    assert d["CreateTimestamp"] > created
    assert env.ka.list_tags_for_resource(ResourceARN=app_arn(name))["Tags"] == []
    # The old CreateTimestamp does not delete the new one.
    assert refused(env.ka.delete_application, ApplicationName=name, CreateTimestamp=created)[0] == CONCURRENT


# ---------------------------------------------------------------- tags

def test_tags(env):
    name = env.create(Tags=[{"Key": "team", "Value": "data"}, {"Key": "env", "Value": "test"}])
    arn = app_arn(name)
    ka = env.ka

    def tags():
        got = ka.list_tags_for_resource(ResourceARN=arn)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
        return sorted((t["Key"], t["Value"]) for t in got["Tags"])

    assert tags() == [("env", "test"), ("team", "data")]
    got = ka.tag_resource(ResourceARN=arn, Tags=[{"Key": "team", "Value": "ops"},
                                                 {"Key": "cost", "Value": ""}])
    assert {k: v for k, v in got.items() if k != "ResponseMetadata"} == {}
    assert tags() == [("cost", ""), ("env", "test"), ("team", "ops")]
    got = ka.untag_resource(ResourceARN=arn, TagKeys=["env", "not-there"])
    assert {k: v for k, v in got.items() if k != "ResponseMetadata"} == {}
    assert tags() == [("cost", ""), ("team", "ops")]
    # Tags are not a configuration change.
    assert env.version(name) == 1

    # 50 user tags at most: 48 more fit, one more does not.
    ka.tag_resource(ResourceARN=arn, Tags=[{"Key": f"k{i:02d}", "Value": str(i)} for i in range(48)])
    assert len(tags()) == 50
    assert refused(ka.tag_resource, ResourceARN=arn, Tags=[{"Key": "one-more", "Value": "x"}]) == (
        "TooManyTagsException", "An application may have at most 50 tags.", 400)
    # Re-tagging an existing key is not one more.
    ka.tag_resource(ResourceARN=arn, Tags=[{"Key": "k00", "Value": "again"}])
    assert len(tags()) == 50 and ("k00", "again") in tags()
    assert refused(env.ka.create_application, ApplicationName=unique(),
                   Tags=[{"Key": f"k{i}", "Value": ""} for i in range(51)]) == (
        "TooManyTagsException", "An application may have at most 50 tags.", 400)

    # aws: keys are AWS's.
    for call, kw in ((ka.tag_resource, {"ResourceARN": arn}),
                     (ka.create_application, {"ApplicationName": unique()})):
        code, message, status = refused(call, Tags=[{"Key": "aws:owner", "Value": "x"}], **kw)
        assert (code, status) == (INVALID, 400) and "aws:owner" in message, (code, message)
    assert len(tags()) == 50

    # Unknown applications; ARNs that name no application of this server.
    missing = app_arn("no-such-app")
    for call, kw in ((ka.tag_resource, {"Tags": [{"Key": "a", "Value": "b"}]}),
                     (ka.untag_resource, {"TagKeys": ["a"]}),
                     (ka.list_tags_for_resource, {})):
        assert refused(call, ResourceARN=missing, **kw) == (
            NOT_FOUND, "Application no-such-app is not found.", 400), call
        other = f"arn:aws:kinesisanalytics:eu-west-1:{ACCOUNT}:application/{name}"
        assert refused(call, ResourceARN=other, **kw) == (
            INVALID, f"{other} is not an application ARN of this server.", 400), call
        # Malformed: the model's pattern (AWS answers its ValidationException).
        code, message, status = refused(getattr(env.raw, call.__name__), ResourceARN="not-an-arn", **kw)
        assert (code, status) == ("ValidationException", 400), (code, message)
        assert message.startswith("1 validation error detected: Value 'not-an-arn' at 'resourceARN' "
                                  "failed to satisfy constraint: Member must satisfy regular expression "
                                  "pattern"), message


# ---------------------------------------------------------------- start, stop, discover

def test_start_stop_and_discover(env):
    _, src = env.stream()
    name = env.create(Inputs=[stream_input(src)])
    now = {"Id": "1.1", "InputStartingPositionConfiguration": {"InputStartingPosition": "NOW"}}
    assert refused(env.ka.start_application, ApplicationName=name,
                   InputConfigurations=[dict(now, Id="9.1")]) == (
        INVALID, f"Application {name} has no input with id 9.1.", 400)
    no_input = env.create()
    assert refused(env.ka.start_application, ApplicationName=no_input, InputConfigurations=[now]) == (
        "InvalidApplicationConfigurationException", f"Application {no_input} has no input to read.", 400)
    assert refused(env.ka.start_application, ApplicationName="no-such-app", InputConfigurations=[now]) == (
        NOT_FOUND, "Application no-such-app is not found.", 400)
    # Stop needs RUNNING.
    assert refused(env.ka.stop_application, ApplicationName=name) == (
        "ResourceInUseException", f"Application {name} is in READY state.", 400)
    d = env.describe(name)
    assert d["ApplicationStatus"] == "READY" and d["ApplicationVersionId"] == 1
    assert d["InputDescriptions"][0]["InputStartingPositionConfiguration"] == {}
    # Code may be empty: the application runs and writes nothing
    # (test_analytics_run.py has applications that do).
    env.ka.start_application(ApplicationName=name, InputConfigurations=[now])
    d = env.describe(name)
    assert (d["ApplicationStatus"], d["ApplicationVersionId"]) == ("RUNNING", 1)
    assert d["InputDescriptions"][0]["InputStartingPositionConfiguration"] == {
        "InputStartingPosition": "NOW"}
    assert refused(env.ka.start_application, ApplicationName=name, InputConfigurations=[now]) == (
        "ResourceInUseException", f"Application {name} is in RUNNING state.", 400)
    env.ka.stop_application(ApplicationName=name)
    assert env.describe(name)["ApplicationStatus"] == "READY"

    # Nothing in the stream: nothing to discover (test_analytics_discover.py
    # has the schemas found).
    code, message, status = refused(
        env.ka.discover_input_schema, ResourceARN=src, RoleARN=ROLE,
        InputStartingPositionConfiguration={"InputStartingPosition": "TRIM_HORIZON"})
    assert (code, status) == ("UnableToDetectSchemaException", 400)
    assert message == "No data was found in the source to discover a schema.", message


# ---------------------------------------------------------------- refusals

def test_refusals_of_create(env):
    _, src = env.stream()
    _, out = env.stream()
    _, fh = env.delivery_stream()
    ka, raw = env.ka, env.raw
    name = unique()

    def create(**kw):
        return refused(ka.create_application, ApplicationName=name, **kw)

    def create_raw(**kw):
        return refused(raw.create_application, ApplicationName=name, **kw)

    # Sources and destinations that do not exist.
    assert create(Inputs=[stream_input(stream_arn("no-such-stream"))]) == (
        INVALID, f"Stream no-such-stream under account {ACCOUNT} not found.", 400)
    assert create(Inputs=[firehose_input(delivery_stream_arn("no-such-fh"))]) == (
        INVALID, f"Firehose no-such-fh under account {ACCOUNT} not found.", 400)
    assert create(Outputs=[stream_output(stream_arn("no-such-out"))]) == (
        INVALID, f"Stream no-such-out under account {ACCOUNT} not found.", 400)
    assert create(Outputs=[firehose_output(delivery_stream_arn("no-such-fh"))]) == (
        INVALID, f"Firehose no-such-fh under account {ACCOUNT} not found.", 400)
    elsewhere = f"arn:aws:kinesis:eu-west-1:{ACCOUNT}:stream/x"
    assert create(Inputs=[stream_input(elsewhere)]) == (
        INVALID, f"{elsewhere} is not a Kinesis data stream ARN of region {REGION} and account {ACCOUNT}.",
        400)
    # A stream ARN given as a delivery stream.
    assert create(Inputs=[firehose_input(src)]) == (
        INVALID, f"{src} is not a Firehose delivery stream ARN of region {REGION} and account "
                 f"{ACCOUNT}.", 400)

    # Both sources, or none.
    both = dict(stream_input(src), KinesisFirehoseInput={"ResourceARN": fh, "RoleARN": ROLE})
    assert create(Inputs=[both]) == (
        INVALID, "Either KinesisStreamsInput or KinesisFirehoseInput is required, not both.", 400)
    neither = {k: v for k, v in stream_input(src).items() if k != "KinesisStreamsInput"}
    assert create(Inputs=[neither]) == (
        INVALID, "Either KinesisStreamsInput or KinesisFirehoseInput is required, not both.", 400)
    two_destinations = dict(stream_output(out), LambdaOutput={"ResourceARN": FUNCTION_URL, "RoleARN": ROLE})
    assert create(Outputs=[two_destinations]) == (
        INVALID, "Exactly one of KinesisStreamsOutput, KinesisFirehoseOutput or LambdaOutput is required.",
        400)

    # Schemas.
    no_mapping = [dict(DEMO_COLUMNS[0]), {"Name": "SECTOR", "SqlType": "VARCHAR(16)"}]
    assert create(Inputs=[stream_input(src, schema=json_schema(no_mapping))]) == (
        INVALID, "InputSchema: column SECTOR needs a Mapping: it is required for RecordFormatType JSON.",
        400)
    text = [dict(DEMO_COLUMNS[0], SqlType="TEXT")]
    code, message, status = create(Inputs=[stream_input(src, schema=json_schema(text))])
    assert (code, status) == (INVALID, 400)
    assert message.startswith("InputSchema: column TICKER_SYMBOL: ") and "TEXT" in message, message
    twice = [DEMO_COLUMNS[0], dict(DEMO_COLUMNS[1], Name="TICKER_SYMBOL")]
    assert create(Inputs=[stream_input(src, schema=json_schema(twice))]) == (
        INVALID, "InputSchema: column TICKER_SYMBOL appears twice.", 400)
    no_json_params = json_schema()
    del no_json_params["RecordFormat"]["MappingParameters"]
    assert create(Inputs=[stream_input(src, schema=no_json_params)]) == (
        INVALID, "InputSchema: JSONMappingParameters is required for RecordFormatType JSON.", 400)
    csv_no_params = {"RecordFormat": {"RecordFormatType": "CSV"}, "RecordColumns": COMPANY_COLUMNS}
    assert create(Inputs=[stream_input(src, schema=csv_no_params)]) == (
        INVALID, "InputSchema: CSVMappingParameters is required for RecordFormatType CSV.", 400)
    # The model's enums and patterns: ValidationException in its words.
    code, message, status = create_raw(Inputs=[stream_input(src, schema=dict(
        json_schema(), RecordFormat={"RecordFormatType": "XML"}))])
    assert (code, status) == ("ValidationException", 400) and "XML" in message, message
    assert create_raw(Inputs=[stream_input(src, count=65)])[0] == "ValidationException"

    # Roles: the model's pattern.
    bad_role = dict(stream_input(src), KinesisStreamsInput={"ResourceARN": src, "RoleARN": "arn:aws:iam::12:role/x"})
    assert create_raw(Inputs=[bad_role]) == (
        "ValidationException",
        "1 validation error detected: Value 'arn:aws:iam::12:role/x' at "
        "'inputs.1.member.kinesisStreamsInput.roleARN' failed to satisfy constraint: Member must "
        "satisfy regular expression pattern: arn:aws:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+", 400)
    code, message, _ = create_raw(CloudWatchLoggingOptions=[dict(logging_option(), RoleARN="role")])
    assert code == "ValidationException" and "roleARN" in message, message
    # Names.
    for bad in ("bad name!", "x" * 129):
        code, message, status = refused(raw.create_application, ApplicationName=bad)
        assert (code, status) == ("ValidationException", 400), (code, message)
        assert "applicationName" in message, message

    # A Lambda output that is neither a URL nor a function of the [functions] table.
    code, message, status = create(Outputs=[lambda_output("no-such-function")])
    assert (code, status) == (INVALID, 400)
    assert message.startswith("Function does not exist: no-such-function"), message
    code, message, _ = create(Outputs=[lambda_output(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:nope")])
    assert code == INVALID and message.startswith("Function does not exist"), message
    # error_stream is named exactly.
    assert create(Outputs=[stream_output(out, name="ERROR_STREAM")]) == (
        INVALID, "Output ERROR_STREAM: the error stream is named error_stream exactly (names are "
                 "case-sensitive).", 400)

    # None of these made anything.
    assert refused(ka.describe_application, ApplicationName=name)[0] == NOT_FOUND
    # The same parts, right: made.
    env.create(name, Inputs=[stream_input(src)], Outputs=[lambda_output(FUNCTION), stream_output(out)])
    assert [o.get("LambdaOutputDescription") for o in env.describe(name)["OutputDescriptions"]] == [
        {"ResourceARN": FUNCTION, "RoleARN": ROLE}, None]


# ---------------------------------------------------------------- the code check
# These depend on the SQL parser (engine/analytics/src/sql), being written:
# until it lands, check_code accepts any code and the refusals below fail.

def demo_app(env, code, columns=None):
    """The arguments of a Create with AWS's demo input and one output."""
    _, src = env.stream()
    _, out = env.stream()
    schema = json_schema(columns) if columns else json_schema()
    return dict(Inputs=[stream_input(src, schema=schema)], Outputs=[stream_output(out)],
                ApplicationCode=code)


def test_code_e1_is_accepted(env):
    name = env.create(**demo_app(env, E1))
    assert env.describe(name)["ApplicationCode"] == E1
    # And through UpdateApplication.
    changed = E1.replace("* 100) > 1", "* 100) > 2")
    env.ka.update_application(ApplicationName=name, CurrentApplicationVersionId=1,
                              ApplicationUpdate={"ApplicationCodeUpdate": changed})
    assert env.describe(name)["ApplicationCode"] == changed


def test_code_e7_random_cut_forest_is_refused_at_create(env):
    line, column = position(E7, "RANDOM_CUT_FOREST")
    assert (line, column) == (18, 18)  # the published text, counted by hand
    name = unique()
    code, message, status = refused(env.ka.create_application, ApplicationName=name,
                                    **demo_app(env, E7, HEART_COLUMNS))
    assert (code, status) == (CODE, 400), (code, message)
    assert "RANDOM_CUT_FOREST" in message, message
    assert f"at line {line}, column {column}" in message, message
    assert refused(env.ka.describe_application, ApplicationName=name)[0] == NOT_FOUND


def test_code_e7_random_cut_forest_is_refused_at_update(env):
    name = env.create(**demo_app(env, "", HEART_COLUMNS))
    shifted = "\n\n" + E7  # two lines lower: the position follows the text
    line, column = position(shifted, "RANDOM_CUT_FOREST")
    assert line == 20
    code, message, status = refused(env.ka.update_application, ApplicationName=name,
                                    CurrentApplicationVersionId=1,
                                    ApplicationUpdate={"ApplicationCodeUpdate": shifted})
    assert (code, status) == (CODE, 400), (code, message)
    assert "RANDOM_CUT_FOREST" in message and f"at line {line}, column {column}" in message, message
    d = env.describe(name)
    assert (d["ApplicationCode"], d["ApplicationVersionId"]) == ("", 1)


def test_code_syntax_error_is_refused_with_its_position(env):
    # E1 with its WHERE clause's condition cut: the parser meets `;` where an
    # expression must be.
    broken = E1.replace("(ABS(Change / (Price - Change)) * 100) > 1;", ";")
    line, column = position(broken, ";", nth=1)
    assert broken.splitlines()[line - 1].strip() == "WHERE  ;"
    name = unique()
    code, message, status = refused(env.ka.create_application, ApplicationName=name,
                                    **demo_app(env, broken))
    assert (code, status) == (CODE, 400), (code, message)
    assert f"at line {line}, column {column}" in message, message
    assert refused(env.ka.describe_application, ApplicationName=name)[0] == NOT_FOUND

    # A statement KDA's SQL does not have, at its first token.
    other = E1 + "\nDROP STREAM \"DESTINATION_SQL_STREAM\";\n"
    line, column = position(other, "DROP")
    code, message, _ = refused(env.ka.create_application, ApplicationName=name, **demo_app(env, other))
    assert code == CODE and f"at line {line}, column {column}" in message, message


def test_code_unknown_column_and_stream_are_refused(env):
    # A pump reading a column the input does not have (VOLUME), once.
    volume = ('CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (ticker_symbol VARCHAR(4), volume BIGINT);\n'
              'CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"\n'
              '    SELECT STREAM ticker_symbol, volume FROM "SOURCE_SQL_STREAM_001";\n')
    line, column = position(volume, "volume", nth=1)
    assert line == 3
    code, message, status = refused(env.ka.create_application, ApplicationName=unique(),
                                    **demo_app(env, volume))
    assert (code, status) == (CODE, 400), (code, message)
    assert "volume" in message.lower(), message
    assert f"at line {line}, column {column}" in message, message
    # A source stream that is not there (the input makes SOURCE_SQL_STREAM_001 only).
    other = E1.replace("SOURCE_SQL_STREAM_001", "SOURCE_SQL_STREAM_002")
    line, column = position(other, '"SOURCE_SQL_STREAM_002"')
    code, message, _ = refused(env.ka.create_application, ApplicationName=unique(), **demo_app(env, other))
    assert code == CODE and "SOURCE_SQL_STREAM_002" in message, message
    assert f"at line {line}, column {column}" in message, message
    # Code stored before the application has an input is planned when the
    # input is added: the unknown column is refused then.
    name = env.create(ApplicationCode=volume)
    _, src = env.stream()
    code, message, status = refused(env.ka.add_application_input, ApplicationName=name,
                                    CurrentApplicationVersionId=1, Input=stream_input(src))
    assert (code, status) == (CODE, 400) and "VOLUME" in message, (code, message)
    assert env.describe(name)["InputDescriptions"] == []


def test_code_is_checked_at_add_input_and_add_reference(env):
    """The code names "SOURCE_SQL_STREAM_001" and "CompanyName" as streams it
    makes: an input whose in-application stream, or a reference table, of
    the same name is refused (docs/analytics-design.md §1.4 item 6)."""
    _, src = env.stream()
    code_text = ('CREATE OR REPLACE STREAM "SOURCE_SQL_STREAM_001" (a INTEGER);\n'
                 'CREATE OR REPLACE STREAM "CompanyName" (a INTEGER);\n')
    name = env.create(ApplicationCode=code_text)
    code, message, status = refused(env.ka.add_application_input, ApplicationName=name,
                                    CurrentApplicationVersionId=1, Input=stream_input(src))
    assert code in (CODE, INVALID) and status == 400, (code, message)
    assert "SOURCE_SQL_STREAM_001" in message, message
    code, message, _ = refused(env.ka.add_application_reference_data_source, ApplicationName=name,
                               CurrentApplicationVersionId=1, ReferenceDataSource=reference())
    assert code in (CODE, INVALID) and "CompanyName" in message, (code, message)
    d = env.describe(name)
    assert (d["ApplicationVersionId"], d["InputDescriptions"], d["ReferenceDataSourceDescriptions"]) == (
        1, [], [])


# ---------------------------------------------------------------- durability

def _make_durable_apps(e):
    """Two applications with every kind of part, updated and tagged, and a
    third deleted: gives the two names."""
    _, src = e.stream()
    _, out = e.stream()
    _, fh = e.delivery_stream()
    a = e.create("durable-a", ApplicationDescription="first", Inputs=[stream_input(src, count=2)],
                 Outputs=[stream_output(out), lambda_output(FUNCTION_URL, name="error_stream")],
                 CloudWatchLoggingOptions=[logging_option()], ApplicationCode=E1,
                 Tags=[{"Key": "team", "Value": "data"}, {"Key": "tier", "Value": "1"}])
    e.ka.add_application_reference_data_source(ApplicationName=a, CurrentApplicationVersionId=1,
                                               ReferenceDataSource=reference())
    e.ka.update_application(ApplicationName=a, CurrentApplicationVersionId=2, ApplicationUpdate={
        "InputUpdates": [{"InputId": "1.1", "InputParallelismUpdate": {"CountUpdate": 3}}]})
    e.ka.delete_application_output(ApplicationName=a, CurrentApplicationVersionId=3, OutputId="3.1")
    b = e.create("durable-b", Inputs=[firehose_input(fh, prefix="clicks")],
                 Outputs=[firehose_output(fh)], Tags=[{"Key": "owner", "Value": "me"}])
    e.ka.add_application_input_processing_configuration(
        ApplicationName=b, CurrentApplicationVersionId=1, InputId="1.1",
        InputProcessingConfiguration={"InputLambdaProcessor": {"ResourceARN": FUNCTION_URL,
                                                               "RoleARN": ROLE}})
    e.ka.untag_resource(ResourceARN=app_arn(b), TagKeys=["owner"])
    e.ka.tag_resource(ResourceARN=app_arn(b), Tags=[{"Key": "owner", "Value": "you"}])
    gone = e.create("durable-gone")
    e.delete(gone)
    e.apps.remove(gone)
    return [a, b]


def _snapshot(e, names):
    return {
        "detail": {n: e.describe(n) for n in names},
        "tags": {n: e.ka.list_tags_for_resource(ResourceARN=app_arn(n))["Tags"] for n in names},
        "list": e.ka.list_applications()["ApplicationSummaries"],
    }


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_applications_survive_a_restart(how):
    conf_dir, conf = write_functions_config()
    proc, http_addr, data = start_server("--config", conf)
    try:
        e = Env(http_addr)
        names = _make_durable_apps(e)
        before = _snapshot(e, names)
        assert [s["ApplicationName"] for s in before["list"]] == names
        assert before["detail"]["durable-a"]["ApplicationVersionId"] == 4
        assert before["detail"]["durable-b"]["ApplicationVersionId"] == 2

        if how == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        else:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        proc, http_addr = start_on(data, "--config", conf)
        e = Env(http_addr)
        after = _snapshot(e, names)
        assert after == before
        assert refused(e.ka.describe_application, ApplicationName="durable-gone")[0] == NOT_FOUND
        # Versions and ids go on from where they were.
        e.ka.add_application_output(ApplicationName="durable-a", CurrentApplicationVersionId=4,
                                    Output=lambda_output(FUNCTION_URL, name="error_stream"))
        d = e.describe("durable-a")
        assert d["ApplicationVersionId"] == 5
        assert [o["OutputId"] for o in d["OutputDescriptions"]] == ["2.1", "6.1"]
        # A deletion survives too.
        e.delete("durable-b")
        proc.send_signal(signal.SIGKILL if how == "SIGKILL" else signal.SIGTERM)
        proc.wait(timeout=30)
        proc, http_addr = start_on(data, "--config", conf)
        e = Env(http_addr)
        assert [s["ApplicationName"] for s in e.ka.list_applications()["ApplicationSummaries"]] == [
            "durable-a"]
        assert e.describe("durable-a") == d
    finally:
        stop_server(proc, data)
        shutil.rmtree(conf_dir, ignore_errors=True)


# ---------------------------------------------------------------- the AWS CLI

AWS = os.path.join(os.path.dirname(sys.executable), "aws")


def aws(endpoint, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret",
               AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    out = subprocess.run([AWS, "--endpoint-url", endpoint, "--output", "json", "kinesisanalytics", *args],
                         capture_output=True, text=True, env=env)
    return out.returncode, json.loads(out.stdout) if out.stdout.strip() else None, out.stderr


def test_aws_cli(env):
    _, src = env.stream()
    _, out = env.stream()
    name = unique("cli")
    given_input = stream_input(src, count=2)
    code, created, err = aws(env.endpoint, "create-application", "--application-name", name,
                             "--application-description", "from the cli",
                             "--inputs", json.dumps([given_input]),
                             "--outputs", json.dumps([stream_output(out)]),
                             "--application-code", E1,
                             "--tags", "Key=team,Value=cli")
    assert code == 0, err
    env.apps.append(name)
    assert created == {"ApplicationSummary": {"ApplicationName": name, "ApplicationARN": app_arn(name),
                                              "ApplicationStatus": "READY"}}

    code, described, err = aws(env.endpoint, "describe-application", "--application-name", name)
    assert code == 0, err
    d = described["ApplicationDetail"]
    # AWS CLI v1 shows timestamps as the wire gives them (epoch seconds,
    # cli_timestamp_format "none"); the rest as boto3 does.
    created_at = env.describe(name)["CreateTimestamp"].timestamp()
    for k in ("CreateTimestamp", "LastUpdateTimestamp"):
        assert abs(d.pop(k) - created_at) < 0.002
    assert d == {
        "ApplicationName": name, "ApplicationDescription": "from the cli",
        "ApplicationARN": app_arn(name), "ApplicationStatus": "READY",
        "InputDescriptions": [input_described(given_input, "1.1", count=2)],
        "OutputDescriptions": [output_described(stream_output(out), "2.1")],
        "ReferenceDataSourceDescriptions": [], "CloudWatchLoggingOptionDescriptions": [],
        "ApplicationCode": E1, "ApplicationVersionId": 1}

    code, listed, err = aws(env.endpoint, "list-applications")
    assert code == 0, err
    assert {"ApplicationName": name, "ApplicationARN": app_arn(name),
            "ApplicationStatus": "READY"} in listed["ApplicationSummaries"]
    assert listed["HasMoreApplications"] is False

    code, tags, err = aws(env.endpoint, "list-tags-for-resource", "--resource-arn", app_arn(name))
    assert code == 0, err
    assert tags == {"Tags": [{"Key": "team", "Value": "cli"}]}

    code, _, err = aws(env.endpoint, "describe-application", "--application-name", "no-such-app")
    assert code != 0 and "ResourceNotFoundException" in err and "no-such-app" in err, err

    # Delete with the CreateTimestamp describe printed (the CLI v1 sends
    # whole seconds).
    code, described, err = aws(env.endpoint, "describe-application", "--application-name", name)
    created = described["ApplicationDetail"]["CreateTimestamp"]
    code, _, err = aws(env.endpoint, "delete-application", "--application-name", name,
                       "--create-timestamp", str(created))
    assert code == 0, err
    code, _, err = aws(env.endpoint, "describe-application", "--application-name", name)
    assert code != 0 and "ResourceNotFoundException" in err, err


def test_concurrent_creates_stop_at_the_limit(env):
    """The server keeps at most 50 applications, even when creates race."""
    import concurrent.futures
    for _ in range(48):
        env.create()
    names = [unique() for _ in range(6)]

    def create(name):
        try:
            env.ka.create_application(ApplicationName=name)
            return "made"
        except ClientError as e:
            return e.response["Error"]["Code"]

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(create, names))
    env.apps.extend(n for n, o in zip(names, outcomes) if o == "made")
    assert sorted(outcomes) == ["LimitExceededException"] * 4 + ["made"] * 2, outcomes
    assert len(env.ka.list_applications()["ApplicationSummaries"]) == 50
