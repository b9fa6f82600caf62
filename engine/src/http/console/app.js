// The Riffle console: reads the server's AWS APIs under /console/api (the
// gateway takes each as the AWS call it wraps, with the browser's Basic
// credentials when the server checks signatures) and shows what they answer.
"use strict";

const KINESIS = "Kinesis_20131202.";
const FIREHOSE = "Firehose_20150804.";
const ANALYTICS = "KinesisAnalytics_20150814.";
const CLOUDWATCH = "GraniteServiceVersion20100801.";
// The server's region and account (for ARNs), from the page.
const CONTEXT = { region: document.documentElement.dataset.region || "us-east-1",
  account: document.documentElement.dataset.account || "000000000000" };

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

// The server's answers to "may I?" (IAM's decision for the console's user,
// without the call): [bool], in the order asked. All false on a server that
// checks no signatures (its console is read-only).
async function allowed(checks) {
  if (!checks.length) return [];
  const resp = await fetch("/console/allowed", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ Checks: checks }),
  });
  if (!resp.ok) return checks.map(() => false);
  return (await resp.json()).Allowed || [];
}

// An action button: runs `act`, then reloads; a refusal is shown in the status line.
function action(label, cls, confirmText, act) {
  const b = el("button", { type: "button", class: `action ${cls}` }, label);
  b.addEventListener("click", async () => {
    if (confirmText && !window.confirm(confirmText)) return;
    b.disabled = true;
    try {
      await act();
      await load();
    } catch (e) {
      const status = document.getElementById("status");
      status.textContent = e.message;
      status.className = "error";
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

async function metric(stream, name, statistic, namespace = "AWS/Kinesis", dimensions = null) {
  const end = Math.floor(Date.now() / 1000);
  const got = await call(CLOUDWATCH + "GetMetricStatistics", {
    Namespace: namespace,
    MetricName: name,
    Dimensions: dimensions || [{ Name: "StreamName", Value: stream }],
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
  const summaries = [];
  for (const name of names) {
    summaries.push((await call(KINESIS + "DescribeStreamSummary", { StreamName: name })).StreamDescriptionSummary);
  }
  const arn = (rest) => `arn:aws:kinesis:${CONTEXT.region}:${CONTEXT.account}:${rest}`;
  const [mayCreate, ...mayDelete] = await allowed([
    { Action: "kinesis:CreateStream", Resource: arn("stream/*") },
    ...summaries.map((s) => ({ Action: "kinesis:DeleteStream", Resource: s.StreamARN })),
  ]);
  renderCreate(mayCreate);
  const cards = [];
  for (const [i, s] of summaries.entries()) {
    const name = s.StreamName;
    const shards = await all(KINESIS + "ListShards", { StreamName: name }, "Shards", "NextToken", "NextToken");
    const consumers = await all(KINESIS + "ListStreamConsumers", { StreamARN: s.StreamARN }, "Consumers", "NextToken", "NextToken");
    // Each consumer's lag: its last minute's most, from CloudWatch's API.
    const lags = await Promise.all(consumers.map(async (c) => {
      const points = await metric(name, "SubscribeToShardEvent.MillisBehindLatest", "Maximum", "AWS/Kinesis",
        [{ Name: "StreamName", Value: name }, { Name: "ConsumerName", Value: c.ConsumerName }]);
      return points.length ? points[points.length - 1][1] : null;
    }));
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
      el("h3", {}, name, mayDelete[i] ? action("Delete", "delete-stream", `Delete the stream ${name} and its records?`,
        () => call(KINESIS + "DeleteStream", { StreamName: name, EnforceConsumerDeletion: true })) : ""),
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
        el("thead", {}, el("tr", {}, ["Consumer", "Status", "Created", "Lag (ms)"].map((h) => el("th", {}, h)))),
        el("tbody", {}, consumers.map((c, j) => el("tr", { "data-consumer": c.ConsumerName },
          el("td", {}, c.ConsumerName), el("td", {}, c.ConsumerStatus),
          el("td", {}, new Date((c.ConsumerCreationTimestamp || 0) * 1000).toISOString()),
          el("td", { class: "lag" }, lags[j] == null ? "–" : String(lags[j])))))) : ""));
  }
  box.replaceChildren(...(cards.length ? cards : [el("p", {}, "No data streams.")]));
}

// The create-stream form, when the user may create streams.
function renderCreate(may) {
  const box = document.getElementById("stream-create");
  if (!may) {
    box.replaceChildren();
    return;
  }
  if (box.childElementCount) return;
  const name = el("input", { id: "new-stream-name", placeholder: "stream name", required: "" });
  const shards = el("input", { id: "new-stream-shards", type: "number", min: "1", value: "1" });
  box.replaceChildren(el("label", {}, "New stream "), name, shards,
    action("Create", "create-stream", null,
      () => call(KINESIS + "CreateStream", { StreamName: name.value, ShardCount: Number(shards.value) })));
}

// A destination's CloudWatch prefix (DeliveryToS3, DeliveryToHttpEndpoint, ...).
function deliveryPrefix(kind) {
  return { ExtendedS3: "DeliveryToS3", S3: "DeliveryToS3", HttpEndpoint: "DeliveryToHttpEndpoint",
    Redshift: "DeliveryToRedshift", Elasticsearch: "DeliveryToElasticsearch",
    Amazonopensearchservice: "DeliveryToAmazonOpenSearchService", Splunk: "DeliveryToSplunk" }[kind] || `DeliveryTo${kind}`;
}

async function deliveryStreams() {
  const body = document.querySelector("#delivery-table tbody");
  const charts = document.getElementById("delivery-charts");
  const names = [];
  let page = await call(FIREHOSE + "ListDeliveryStreams", { Limit: 100 });
  names.push(...(page.DeliveryStreamNames || []));
  while (page.HasMoreDeliveryStreams && names.length) {
    page = await call(FIREHOSE + "ListDeliveryStreams", { Limit: 100, ExclusiveStartDeliveryStreamName: names[names.length - 1] });
    names.push(...(page.DeliveryStreamNames || []));
  }
  const described = [];
  for (const name of names) {
    described.push((await call(FIREHOSE + "DescribeDeliveryStream", { DeliveryStreamName: name })).DeliveryStreamDescription);
  }
  const mayDelete = await allowed(described.map((d) => ({ Action: "firehose:DeleteDeliveryStream", Resource: d.DeliveryStreamARN })));
  const rows = [], cards = [];
  for (const [i, d] of described.entries()) {
    const name = d.DeliveryStreamName;
    const dest = (d.Destinations || [])[0] || {};
    const kinds = Object.keys(dest).filter((k) => k.endsWith("DestinationDescription")).map((k) => k.replace("DestinationDescription", ""));
    // Firehose describes an S3 destination as both S3 and ExtendedS3.
    const kind = kinds.includes("ExtendedS3") ? "ExtendedS3" : (kinds[0] || "");
    const enc = d.DeliveryStreamEncryptionConfiguration || {};
    const failure = d.FailureDescription ? `${d.FailureDescription.Type}: ${d.FailureDescription.Details}` : "";
    // The last hour's deliveries: records per minute, the attempts' success, freshness.
    const prefix = deliveryPrefix(kind);
    const dims = [{ Name: "DeliveryStreamName", Value: name }];
    const [delivered, success, freshness] = await Promise.all([
      metric(name, `${prefix}.Records`, "Sum", "AWS/Firehose", dims),
      metric(name, `${prefix}.Success`, "Average", "AWS/Firehose", dims),
      metric(name, `${prefix}.DataFreshness`, "Maximum", "AWS/Firehose", dims),
    ]);
    const total = delivered.reduce((a, p) => a + p[1], 0);
    const lastSuccess = success.length ? success[success.length - 1][1] : null;
    rows.push(el("tr", { "data-delivery": name },
      el("td", {}, name), el("td", {}, d.DeliveryStreamStatus), el("td", {}, d.DeliveryStreamType),
      el("td", {}, kinds.join(", ")), el("td", {}, enc.Status || "DISABLED"),
      el("td", { class: "delivered" }, String(total)),
      el("td", { class: lastSuccess != null && lastSuccess < 1 ? "error success" : "success" },
        lastSuccess == null ? "–" : `${Math.round(lastSuccess * 100)} %`),
      el("td", { class: failure ? "error" : "" }, failure),
      el("td", {}, mayDelete[i] ? action("Delete", "delete-delivery", `Delete the delivery stream ${name}?`,
        () => call(FIREHOSE + "DeleteDeliveryStream", { DeliveryStreamName: name })) : "")));
    cards.push(el("div", { class: "card delivery", "data-delivery-charts": name },
      el("h3", {}, name),
      el("div", { class: "charts" },
        chart(`${prefix}.Records`, delivered, "records/min"),
        chart(`${prefix}.DataFreshness`, freshness, "s"))));
  }
  body.replaceChildren(...rows);
  charts.replaceChildren(...cards);
}

async function auditTrail() {
  const body = document.querySelector("#audit-table tbody");
  const note = document.getElementById("audit-note");
  const resp = await fetch("/console/audit", { credentials: "same-origin" });
  if (resp.status === 403) {
    // Not this user's to read: said here, not as a failure of the page.
    note.textContent = `Not shown: ${await resp.text()}`;
    body.replaceChildren();
    return;
  }
  if (!resp.ok) throw new ApiError(`audit: ${resp.status}: ${await resp.text()}`);
  const got = await resp.json();
  note.textContent = got.Enabled ? "" : `Not shown: ${got.Note || "no audit trail"}.`;
  body.replaceChildren(...(got.Events || []).map((e) => {
    const who = (e.userIdentity && (e.userIdentity.arn || e.userIdentity.type)) || "";
    return el("tr", { "data-event": e.eventID || "" },
      el("td", {}, e.eventTime || ""), el("td", {}, who), el("td", {}, e.eventSource || ""),
      el("td", {}, e.eventName || ""), el("td", {}, e.sourceIPAddress || ""),
      el("td", { class: e.errorCode ? "error" : "" }, e.errorCode ? `${e.errorCode}: ${e.errorMessage || ""}` : ""));
  }));
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
    el("td", {}, v.DataRetentionInHours), el("td", {}, v.KmsKeyId || ""),
    el("td", {}, v.DataRetentionInHours > 0 ? playButton(v.StreamName) : ""))));
}

// Live playback of a video stream: the HLS session AWS's players use
// (GetHLSStreamingSessionURL, LIVE, fragmented MP4), its segments fed to the
// browser's MediaSource as the media playlist lists them (no player library).
let playing = null;

function playButton(name) {
  const b = el("button", { type: "button", class: "play" }, "Play live");
  b.addEventListener("click", () => {
    const session = play(name);
    session.done.catch((e) => {
      // A player replaced meanwhile says nothing.
      if (playing !== session) return;
      const box = document.getElementById("player");
      const video = box.querySelector("video");
      if (video) video.dataset.state = "failed";
      box.append(el("p", { class: "error" }, `playback of ${name} stopped: ${e.message}`));
    });
  });
  return b;
}

// Starts playing `name` in the player box; the session it runs (`done`
// settles when it ends).
function play(name) {
  if (playing) playing.stop = true;
  const session = { stop: false, started: false };
  playing = session;
  session.done = run(name, session);
  return session;
}

async function run(name, session) {
  const box = document.getElementById("player");
  const video = el("video", { controls: "", muted: "", playsinline: "", "data-stream": name, "data-state": "starting" });
  video.muted = true;
  box.replaceChildren(el("h3", {}, `${name} (live)`), video);
  const gone = () => session.stop || !video.isConnected;
  // A session of an hour, asked again when the server ends it (expired, or
  // the stream's oldest session when viewers opened too many). Fragments
  // are known by their producer timestamps, the same in every session.
  const sessionUrl = async () => (await rest("/getHLSStreamingSessionURL", {
    StreamName: name, PlaybackMode: "LIVE", ContainerFormat: "FRAGMENTED_MP4", Expires: 3600,
    HLSFragmentSelector: { FragmentSelectorType: "PRODUCER_TIMESTAMP" }, DisplayFragmentTimestamp: "ALWAYS",
  })).HLSStreamingSessionURL;
  const get = async (u) => {
    const r = await fetch(u);
    if (!r.ok) {
      const e = new ApiError(`${r.status} for ${u.split("?")[0]}`);
      e.status = r.status;
      throw e;
    }
    return r;
  };
  const mediaOf = async () => {
    const url = await sessionUrl();
    const master = await (await get(url)).text();
    const codecs = (master.match(/CODECS="([^"]+)"/) || [])[1] || "avc1.42E01E";
    const uri = master.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#")).pop();
    return { media: new URL(uri, url).href, codecs };
  };
  let { media, codecs } = await mediaOf();
  const type = `video/mp4; codecs="${codecs}"`;
  if (!window.MediaSource || !MediaSource.isTypeSupported(type)) throw new ApiError(`this browser cannot play ${type}`);
  const source = new MediaSource();
  video.src = URL.createObjectURL(source);
  await new Promise((r) => source.addEventListener("sourceopen", r, { once: true }));
  // Attached: the object URL is no longer needed.
  URL.revokeObjectURL(video.src);
  if (gone()) return;
  const buffer = source.addSourceBuffer(type);
  // One change of the buffer (an append or a removal), awaited.
  const change = (act) => new Promise((resolve, reject) => {
    const failed = () => {
      buffer.removeEventListener("updateend", done);
      reject(new ApiError("the browser refused a segment"));
    };
    const done = () => {
      buffer.removeEventListener("error", failed);
      resolve();
    };
    buffer.addEventListener("updateend", done, { once: true });
    buffer.addEventListener("error", failed, { once: true });
    try {
      act();
    } catch (e) {
      buffer.removeEventListener("updateend", done);
      buffer.removeEventListener("error", failed);
      reject(e);
    }
  });
  video.addEventListener("timeupdate", () => {
    if (video.currentTime > 0) video.dataset.state = "playing";
  });
  let init = null;
  const same = (a, b) => {
    if (!a || a.byteLength !== b.byteLength) return false;
    const x = new Uint8Array(a), y = new Uint8Array(b);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  };
  const seen = new Set();
  while (!gone()) {
    let playlist;
    try {
      playlist = await (await get(media)).text();
    } catch (e) {
      if (gone()) return;
      if (e.status === 403) {
        // The session ended: a new one.
        ({ media } = await mediaOf());
      }
      await new Promise((r) => setTimeout(r, 2000));
      continue;
    }
    if (gone()) return;
    let stamp = null;
    try {
      for (const line of playlist.split("\n").map((l) => l.trim())) {
        const map = line.match(/^#EXT-X-MAP:URI="([^"]+)"/);
        const time = line.match(/^#EXT-X-PROGRAM-DATE-TIME:(\S+)/);
        if (time) {
          stamp = time[1];
        } else if (map) {
          const data = await (await get(new URL(map[1], media).href)).arrayBuffer();
          if (gone()) return;
          // The same initialization (its URI changes as the window slides).
          if (!same(init, data)) {
            init = data;
            await change(() => buffer.appendBuffer(data));
          }
        } else if (line && !line.startsWith("#")) {
          const key = stamp || line;
          stamp = null;
          if (seen.has(key)) continue;
          seen.add(key);
          // Paused: the live edge moves on without it (nothing piles up).
          if (session.started && video.paused) continue;
          const data = await (await get(new URL(line, media).href)).arrayBuffer();
          if (gone()) return;
          await change(() => buffer.appendBuffer(data));
        }
      }
    } catch (e) {
      if (gone()) return;
      // A segment that could not be fetched: the next round goes on.
      if (!e.status) throw e;
    }
    video.dataset.segments = String(seen.size);
    const ranges = buffer.buffered;
    if (ranges.length) {
      const t = video.currentTime;
      const last = ranges.length - 1;
      let at = -1;
      for (let i = 0; i < ranges.length; i++) if (t >= ranges.start(i) && t <= ranges.end(i)) at = i;
      if (!session.started) {
        // Started once, where the media begins; then the viewer's to pause.
        session.started = true;
        video.currentTime = ranges.start(0);
        video.play().catch(() => {});
      } else if (!video.paused && at !== last && (at === -1 || t >= ranges.end(at) - 0.5)) {
        // Stalled at a range's end, or in a gap (after a pause): to the newest media.
        video.currentTime = ranges.start(last);
      }
      // What was played more than a minute ago is let go.
      if (t - ranges.start(0) > 60) await change(() => buffer.remove(0, t - 30));
    }
    if (playlist.includes("#EXT-X-ENDLIST")) break;
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function load() {
  const status = document.getElementById("status");
  status.textContent = "loading…";
  const parts = [["data streams", streams], ["delivery streams", deliveryStreams],
    ["applications", applications], ["video streams", videoStreams], ["audit trail", auditTrail]];
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
