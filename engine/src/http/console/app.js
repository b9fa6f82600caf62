// The Riffle console: reads the server's AWS APIs under /console/api (the
// gateway takes each as the AWS call it wraps, with the browser's Basic
// credentials when the server checks signatures) and shows what they answer.
"use strict";

const KINESIS = "Kinesis_20131202.";
const FIREHOSE = "Firehose_20150804.";
const ANALYTICS = "KinesisAnalytics_20150814.";
const CLOUDWATCH = "GraniteServiceVersion20100801.";

class ApiError extends Error {}

async function call(target, input, version = "1.1") {
  const resp = await fetch("/console/api", {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-Amz-Target": target, "Content-Type": `application/x-amz-json-${version}`, "X-Riffle-Console": "1" },
    body: JSON.stringify(input || {}),
  });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    throw new ApiError(`${target}: ${body.__type || resp.status}: ${body.message || body.Message || ""}`);
  }
  return body;
}

async function rest(path, input) {
  const resp = await fetch("/console/api" + path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Riffle-Console": "1" },
    body: JSON.stringify(input || {}),
  });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    throw new ApiError(`${path}: ${resp.status}: ${body.message || ""}`);
  }
  return body;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  }
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

// A line chart of (time, value) points over the last hour.
function chart(title, points, unit) {
  const W = 360, H = 120, L = 44, B = 18, T = 16;
  const now = Date.now() / 1000, from = now - 3600;
  const max = Math.max(1, ...points.map((p) => p[1]));
  const x = (t) => L + ((t - from) / 3600) * (W - L - 4);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  const line = points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
  const s = svg("svg", { class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-points": points.length, "data-title": title });
  s.append(
    svg("text", { x: 4, y: 12 }, document.createTextNode(`${title} (${unit}, max ${Math.round(max)})`)),
    svg("line", { class: "axis", x1: L, y1: H - B, x2: W - 4, y2: H - B }),
    svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
    svg("text", { x: L, y: H - 4 }, document.createTextNode("-60 min")),
    svg("text", { x: W - 30, y: H - 4 }, document.createTextNode("now")),
  );
  if (points.length) s.append(svg("polyline", { class: "line", points: line }));
  for (const p of points) {
    s.append(svg("circle", { class: "dot", cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 2 }));
  }
  return s;
}

async function metric(stream, name, statistic) {
  const end = Math.floor(Date.now() / 1000);
  const got = await call(CLOUDWATCH + "GetMetricStatistics", {
    Namespace: "AWS/Kinesis",
    MetricName: name,
    Dimensions: [{ Name: "StreamName", Value: stream }],
    StartTime: end - 3600,
    EndTime: end + 60,
    Period: 60,
    Statistics: [statistic],
  }, "1.0");
  return (got.Datapoints || [])
    .map((d) => [typeof d.Timestamp === "number" ? d.Timestamp : Date.parse(d.Timestamp) / 1000, d[statistic]])
    .sort((a, b) => a[0] - b[0]);
}

async function all(target, input, listKey, nextKey, pageKey) {
  const out = [];
  let page = await call(target, input);
  out.push(...(page[listKey] || []));
  while (nextKey && page[nextKey]) {
    page = await call(target, { ...input, [pageKey]: page[nextKey] });
    out.push(...(page[listKey] || []));
  }
  return out;
}

async function streams() {
  const box = document.getElementById("stream-list");
  const names = [];
  let page = await call(KINESIS + "ListStreams", { Limit: 100 });
  names.push(...page.StreamNames);
  while (page.HasMoreStreams && names.length) {
    page = await call(KINESIS + "ListStreams", { Limit: 100, ExclusiveStartStreamName: names[names.length - 1] });
    names.push(...page.StreamNames);
  }
  const cards = [];
  for (const name of names) {
    const s = (await call(KINESIS + "DescribeStreamSummary", { StreamName: name })).StreamDescriptionSummary;
    const shards = await all(KINESIS + "ListShards", { StreamName: name }, "Shards", "NextToken", "NextToken");
    const consumers = await all(KINESIS + "ListStreamConsumers", { StreamARN: s.StreamARN }, "Consumers", "NextToken", "NextToken");
    const [incoming, age] = await Promise.all([
      metric(name, "IncomingRecords", "Sum"),
      metric(name, "GetRecords.IteratorAgeMilliseconds", "Maximum"),
    ]);
    const shardRows = shards.map((sh) => {
      const closed = sh.SequenceNumberRange && sh.SequenceNumberRange.EndingSequenceNumber;
      return el("tr", { class: closed ? "closed shard" : "shard", "data-shard": sh.ShardId },
        el("td", {}, sh.ShardId),
        el("td", {}, closed ? "closed" : "open"),
        el("td", {}, sh.HashKeyRange.StartingHashKey),
        el("td", {}, sh.HashKeyRange.EndingHashKey),
        el("td", {}, [sh.ParentShardId, sh.AdjacentParentShardId].filter(Boolean).join(", ") || "–"));
    });
    cards.push(el("div", { class: "card stream", "data-stream": name },
      el("h3", {}, name),
      el("div", { class: "facts" },
        `${s.StreamStatus} · ${s.StreamModeDetails ? s.StreamModeDetails.StreamMode : ""} · ` +
        `${s.OpenShardCount} open shards · retention ${s.RetentionPeriodHours} h · ` +
        `encryption ${s.EncryptionType}${s.KeyId ? " (" + s.KeyId + ")" : ""} · ${consumers.length} consumers`),
      el("div", { class: "charts" },
        chart("IncomingRecords", incoming, "records/min"),
        chart("GetRecords.IteratorAgeMilliseconds", age, "ms")),
      el("table", { class: "shards" },
        el("thead", {}, el("tr", {}, ["Shard", "State", "Hash key from", "Hash key to", "Parents"].map((h) => el("th", {}, h)))),
        el("tbody", {}, shardRows)),
      consumers.length ? el("table", { class: "consumers" },
        el("thead", {}, el("tr", {}, ["Consumer", "Status", "Created"].map((h) => el("th", {}, h)))),
        el("tbody", {}, consumers.map((c) => el("tr", {},
          el("td", {}, c.ConsumerName), el("td", {}, c.ConsumerStatus),
          el("td", {}, new Date((c.ConsumerCreationTimestamp || 0) * 1000).toISOString()))))) : ""));
  }
  box.replaceChildren(...(cards.length ? cards : [el("p", {}, "No data streams.")]));
}

async function deliveryStreams() {
  const body = document.querySelector("#delivery-table tbody");
  const names = [];
  let page = await call(FIREHOSE + "ListDeliveryStreams", { Limit: 100 });
  names.push(...(page.DeliveryStreamNames || []));
  while (page.HasMoreDeliveryStreams && names.length) {
    page = await call(FIREHOSE + "ListDeliveryStreams", { Limit: 100, ExclusiveStartDeliveryStreamName: names[names.length - 1] });
    names.push(...(page.DeliveryStreamNames || []));
  }
  const rows = [];
  for (const name of names) {
    const d = (await call(FIREHOSE + "DescribeDeliveryStream", { DeliveryStreamName: name })).DeliveryStreamDescription;
    const dest = (d.Destinations || [])[0] || {};
    const kind = Object.keys(dest).filter((k) => k.endsWith("Description")).map((k) => k.replace("DestinationDescription", "")).join(", ");
    const enc = d.DeliveryStreamEncryptionConfiguration || {};
    const failure = d.FailureDescription ? `${d.FailureDescription.Type}: ${d.FailureDescription.Details}` : "";
    rows.push(el("tr", { "data-delivery": name },
      el("td", {}, name), el("td", {}, d.DeliveryStreamStatus), el("td", {}, d.DeliveryStreamType),
      el("td", {}, kind), el("td", {}, enc.Status || "DISABLED"), el("td", { class: failure ? "error" : "" }, failure)));
  }
  body.replaceChildren(...rows);
}

async function applications() {
  const box = document.getElementById("application-list");
  const summaries = [];
  let page = await call(ANALYTICS + "ListApplications", { Limit: 50 });
  summaries.push(...(page.ApplicationSummaries || []));
  while (page.HasMoreApplications && summaries.length) {
    const last = summaries[summaries.length - 1].ApplicationName;
    page = await call(ANALYTICS + "ListApplications", { Limit: 50, ExclusiveStartApplicationName: last });
    summaries.push(...(page.ApplicationSummaries || []));
  }
  const cards = [];
  for (const a of summaries) {
    const d = (await call(ANALYTICS + "DescribeApplication", { ApplicationName: a.ApplicationName })).ApplicationDetail;
    cards.push(el("div", { class: "card application", "data-application": a.ApplicationName },
      el("h3", {}, a.ApplicationName),
      el("div", { class: "facts" }, `${d.ApplicationStatus} · version ${d.ApplicationVersionId} · ` +
        `${(d.InputDescriptions || []).length} inputs · ${(d.OutputDescriptions || []).length} outputs`),
      el("pre", { class: "sql" }, d.ApplicationCode || "")));
  }
  box.replaceChildren(...(cards.length ? cards : [el("p", {}, "No applications.")]));
}

async function videoStreams() {
  const body = document.querySelector("#video-table tbody");
  const got = await rest("/listStreams", { MaxResults: 100 });
  body.replaceChildren(...(got.StreamInfoList || []).map((v) => el("tr", { "data-video": v.StreamName },
    el("td", {}, v.StreamName), el("td", {}, v.Status), el("td", {}, v.MediaType || ""),
    el("td", {}, v.DataRetentionInHours), el("td", {}, v.KmsKeyId || ""))));
}

async function load() {
  const status = document.getElementById("status");
  status.textContent = "loading…";
  const parts = [["data streams", streams], ["delivery streams", deliveryStreams],
    ["applications", applications], ["video streams", videoStreams]];
  const failed = [];
  for (const [what, f] of parts) {
    try {
      await f();
    } catch (e) {
      failed.push(`${what}: ${e.message}`);
    }
  }
  status.textContent = failed.length ? `not shown: ${failed.join("; ")}` : `as of ${new Date().toLocaleTimeString()}`;
  status.className = failed.length ? "error" : "";
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("refresh").addEventListener("click", load);
  load();
  setInterval(load, 15000);
});
