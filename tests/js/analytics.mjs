// The AWS SDK for JavaScript v3's Kinesis Analytics (SQL) client against
// Riffle: create an application with an input and code, describe, list,
// update, delete. Usage: RIFFLE_ENDPOINT=http://127.0.0.1:4567 node analytics.mjs
import assert from "node:assert/strict";
import { KinesisClient, CreateStreamCommand, DeleteStreamCommand } from "@aws-sdk/client-kinesis";
import {
  KinesisAnalyticsClient, CreateApplicationCommand, DescribeApplicationCommand,
  ListApplicationsCommand, UpdateApplicationCommand, DeleteApplicationCommand,
  ResourceNotFoundException, CodeValidationException,
} from "@aws-sdk/client-kinesis-analytics";

const config = {
  endpoint: process.env.RIFFLE_ENDPOINT,
  region: "us-east-1",
  credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" },
  maxAttempts: 1,
};
const kinesis = new KinesisClient(config);
const client = new KinesisAnalyticsClient(config);
const stream = `js-ka-${Date.now()}`;
const name = `js-app-${Date.now()}`;
await kinesis.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 1 }));

const code = `CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (ticker_symbol VARCHAR(4), price DOUBLE);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM ticker_symbol, price FROM "SOURCE_SQL_STREAM_001" WHERE price > 1;`;
const created = await client.send(new CreateApplicationCommand({
  ApplicationName: name,
  ApplicationCode: code,
  Inputs: [{
    NamePrefix: "SOURCE_SQL_STREAM",
    KinesisStreamsInput: {
      ResourceARN: `arn:aws:kinesis:us-east-1:000000000000:stream/${stream}`,
      RoleARN: "arn:aws:iam::000000000000:role/any",
    },
    InputSchema: {
      RecordFormat: { RecordFormatType: "JSON", MappingParameters: { JSONMappingParameters: { RecordRowPath: "$" } } },
      RecordColumns: [
        { Name: "TICKER_SYMBOL", Mapping: "$.TICKER_SYMBOL", SqlType: "VARCHAR(4)" },
        { Name: "PRICE", Mapping: "$.PRICE", SqlType: "REAL" },
      ],
    },
  }],
}));
assert.equal(created.ApplicationSummary.ApplicationStatus, "READY");

const described = (await client.send(new DescribeApplicationCommand({ ApplicationName: name }))).ApplicationDetail;
assert.equal(described.ApplicationVersionId, 1);
assert.equal(described.ApplicationCode, code);
assert.ok(described.CreateTimestamp instanceof Date);
assert.deepEqual(described.InputDescriptions[0].InAppStreamNames, ["SOURCE_SQL_STREAM_001"]);
const listed = await client.send(new ListApplicationsCommand({}));
assert.ok(listed.ApplicationSummaries.some((a) => a.ApplicationName === name));

await assert.rejects(
  client.send(new UpdateApplicationCommand({
    ApplicationName: name, CurrentApplicationVersionId: 1,
    ApplicationUpdate: { ApplicationCodeUpdate: "CREATE OR REPLACE PUMP p AS INSERT INTO nowhere SELECT STREAM * FROM x;" },
  })),
  (e) => e instanceof CodeValidationException,
);
await client.send(new UpdateApplicationCommand({
  ApplicationName: name, CurrentApplicationVersionId: 1,
  ApplicationUpdate: { ApplicationCodeUpdate: code.replace("price > 1", "price > 2") },
}));
const after = (await client.send(new DescribeApplicationCommand({ ApplicationName: name }))).ApplicationDetail;
assert.equal(after.ApplicationVersionId, 2);

await client.send(new DeleteApplicationCommand({ ApplicationName: name, CreateTimestamp: described.CreateTimestamp }));
await assert.rejects(
  client.send(new DescribeApplicationCommand({ ApplicationName: name })),
  (e) => e instanceof ResourceNotFoundException,
);
await kinesis.send(new DeleteStreamCommand({ StreamName: stream }));
console.log("ok");
