"""Capacity modes as every listing reports them (ListStreams' summaries used to
say PROVISIONED for every stream)."""

import uuid


def test_list_streams_reports_each_streams_mode(kinesis):
    on_demand = "py-od-" + uuid.uuid4().hex[:8]
    provisioned = "py-pr-" + uuid.uuid4().hex[:8]
    kinesis.create_stream(StreamName=on_demand, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    kinesis.create_stream(StreamName=provisioned, ShardCount=1)
    modes = {}
    for page in kinesis.get_paginator("list_streams").paginate():
        for s in page["StreamSummaries"]:
            modes[s["StreamName"]] = s["StreamModeDetails"]["StreamMode"]
    assert modes[on_demand] == "ON_DEMAND"
    assert modes[provisioned] == "PROVISIONED"
    kinesis.delete_stream(StreamName=on_demand)
    kinesis.delete_stream(StreamName=provisioned)
