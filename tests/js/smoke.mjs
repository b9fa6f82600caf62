// The AWS SDK for JavaScript v3 against Riffle: create, put, get, delete.
// Usage: RIFFLE_ENDPOINT=http://127.0.0.1:4567 node smoke.mjs
import assert from "node:assert/strict";
import {
  KinesisClient, CreateStreamCommand, DescribeStreamSummaryCommand, PutRecordCommand,
  PutRecordsCommand, GetShardIteratorCommand, GetRecordsCommand, DeleteStreamCommand,
  ListStreamsCommand, ResourceNotFoundException,
} from "@aws-sdk/client-kinesis";

const client = new KinesisClient({
  endpoint: process.env.RIFFLE_ENDPOINT,
  region: "us-east-1",
  credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" },
  maxAttempts: 1,
});
const name = `js-${Date.now()}`;
const enc = (s) => new TextEncoder().encode(s);
const dec = (b) => new TextDecoder().decode(b);

await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: 2 }));
const summary = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
assert.equal(summary.StreamDescriptionSummary.StreamStatus, "ACTIVE");
assert.equal(summary.StreamDescriptionSummary.OpenShardCount, 2);
const listed = await client.send(new ListStreamsCommand({}));
assert.ok(listed.StreamNames.includes(name));

const one = await client.send(new PutRecordCommand({
  StreamName: name, PartitionKey: "k", ExplicitHashKey: "0", Data: enc("from javascript"),
}));
assert.equal(one.ShardId, "shardId-000000000000");
const many = await client.send(new PutRecordsCommand({
  StreamName: name,
  Records: [0, 1, 2].map((i) => ({ PartitionKey: `k${i}`, ExplicitHashKey: "1", Data: enc(`r${i}`) })),
}));
assert.equal(many.FailedRecordCount, 0);

const it = await client.send(new GetShardIteratorCommand({
  StreamName: name, ShardId: "shardId-000000000000", ShardIteratorType: "TRIM_HORIZON",
}));
const got = await client.send(new GetRecordsCommand({ ShardIterator: it.ShardIterator }));
assert.deepEqual(got.Records.map((r) => dec(r.Data)), ["from javascript", "r0", "r1", "r2"]);
assert.equal(got.Records[0].SequenceNumber, one.SequenceNumber);
assert.ok(got.Records[0].ApproximateArrivalTimestamp instanceof Date);
assert.ok(got.Records[0].ApproximateArrivalTimestamp.getFullYear() >= 2026);

await client.send(new DeleteStreamCommand({ StreamName: name }));
await assert.rejects(
  client.send(new DescribeStreamSummaryCommand({ StreamName: name })),
  (e) => e instanceof ResourceNotFoundException,
);
console.log("ok");
