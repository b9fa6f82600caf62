//! Writing what a delivery task gathered: processing (`transform`), the S3
//! object or the HTTP endpoint's requests (with their AllData backup), and
//! the error object of the records that failed; every write retried until
//! it is stored or the delivery stream is gone.

use riffle_engine::rt;

use crate::service::Side;

use super::Buffer;
use super::{HTTP_RETRY_FIRST, HTTP_RETRY_MAX, HTTP_TIMEOUT, RETRY_FIRST, RETRY_MAX, Target, Task};
use crate::conversion::NotConverted;
use crate::destination::{Compression, Configured};
use crate::http_client::{self, HttpUrl, Peer};
use crate::http_endpoint::{self, HttpDestination};
use crate::metrics::Channel;
use crate::object;
use crate::partition::{self, Keys, PARTITIONS_MAX};
use crate::processing;
use crate::state::{DeliveryStream, Plan, SourceKind};

impl Task {
    /// Processes the records (the destination's `ProcessingConfiguration`),
    /// delivers them (an S3 object, or HTTP endpoint requests with their
    /// AllData backup), and writes the records that failed under the plan's
    /// error key, each write retried until stored or the delivery stream is
    /// gone. No object is written for records that were all dropped.
    pub(super) async fn store(
        &self,
        d: &DeliveryStream,
        target: &Target,
        plan: &Plan,
        buffer: Buffer,
    ) {
        // The configuration as it is now (checked when it was set: a failure
        // here is reported and waited out, never a reason to skip records).
        let (processing, configured) = loop {
            // Read again each time: an UpdateDestination may have fixed it.
            let Some(now) = self.stream() else {
                return;
            };
            let config = now
                .destination
                .config
                .as_object()
                .cloned()
                .unwrap_or_default();
            let read = crate::processing::of_config(&config, &self.shared.config.functions)
                .and_then(|p| Configured::of(&now.destination).map(|c| (p, c)));
            match read {
                Ok(read) => break read,
                Err(e) => {
                    self.fail("Destination.Configuration", e.message);
                    rt::sleep(RETRY_MAX).await;
                }
            }
        };
        let object_id = format!("{}-{}-{}-{}", self.name, self.id, self.shard, plan.start);
        // S3BackupMode Enabled: the source records, as they came.
        if let Some(backup) = &plan.backup {
            match Compression::of_aws_name(&backup.compression) {
                Some(compression) => {
                    let target = Target {
                        bucket: backup.bucket.clone(),
                        compression,
                    };
                    let m = &self.metrics.backup;
                    if self
                        .put_object(&target, &backup.key, buffer.bytes().to_vec(), 0, Some(m))
                        .await
                    {
                        m.delivered(buffer.ends.len(), buffer.bytes().len());
                    }
                }
                None => self.fail(
                    "S3.Backup",
                    format!("unknown backup compression {}", backup.compression),
                ),
            }
        }
        // Direct PUT records are KPL-split when de-aggregation is configured.
        let kpl = processing.deaggregation.is_some() && matches!(d.source, SourceKind::DirectPut);
        let transformed = if processing == crate::processing::Processing::default() {
            None
        } else {
            let records: Vec<crate::transform::Record<'_>> = buffer
                .records()
                .zip(&buffer.arrivals)
                .enumerate()
                .map(|(i, (data, &arrival_ms))| crate::transform::Record {
                    data,
                    arrival_ms,
                    kinesis: buffer.kinesis.get(i),
                })
                .collect();
            let shard_id = riffle_protocol::routing::shard_id(self.shard);
            let delivery_stream_arn = self.shared.arn(&self.name);
            let source_stream_arn = match &d.source {
                SourceKind::KinesisStreamAsSource { stream_arn, .. } => Some(stream_arn.as_str()),
                SourceKind::DirectPut => None,
            };
            let cx = crate::transform::Context {
                delivery_stream_arn: &delivery_stream_arn,
                source_stream_arn,
                region: &self.shared.config.region,
                object_id: &object_id,
                shard_id: source_stream_arn.map(|_| shard_id.as_str()),
                partitioned: plan.partitioned,
                workers: &self.shared.workers,
                tls: &self.shared.tls,
            };
            let started = rt::now_ms();
            let t = crate::transform::run(&processing, kpl, &cx, &records).await;
            let m = &self.metrics;
            m.processing_duration
                .observe_ms(rt::now_ms().saturating_sub(started));
            m.processing.attempt(t.errors.is_empty());
            m.processing
                .delivered(t.records.len(), t.records.iter().map(Vec::len).sum());
            Some(t)
        };
        let (processing_errors, mut partition_errors) = transformed
            .as_ref()
            .map(|t| (t.errors.clone(), t.partition_errors.clone()))
            .unwrap_or_default();
        let mut destination_errors = Vec::new();
        let mut conversion_errors = Vec::new();
        if configured.backs_up_all() {
            // AllData, AllDocuments, AllEvents: the source records to the
            // backup bucket too.
            let m = &self.metrics.backup;
            if self
                .put_object(target, &plan.key, buffer.bytes().to_vec(), 0, Some(m))
                .await
            {
                m.delivered(buffer.ends.len(), buffer.bytes().len());
            }
        }
        let no_keys = Keys::default();
        let (records, arrivals, keys): (Vec<&[u8]>, &[i64], Vec<&Keys>) = match &transformed {
            Some(t) => (
                t.records.iter().map(Vec::as_slice).collect(),
                &t.arrivals,
                t.keys.iter().collect(),
            ),
            None => (
                buffer.records().collect(),
                &buffer.arrivals,
                buffer.records().map(|_| &no_keys).collect(),
            ),
        };
        match configured {
            Configured::Http(http) => {
                destination_errors = self.send_http(&http, &object_id, &records, arrivals).await;
            }
            Configured::OpenSearch(search) => {
                destination_errors = self
                    .send_opensearch(&search, &object_id, &records, arrivals)
                    .await;
            }
            Configured::Splunk(hec) => {
                destination_errors = self.send_splunk(&hec, &object_id, &records, arrivals).await;
            }
            Configured::S3(s3) if s3.conversion.is_some() || plan.partitioned => {
                // One object per partition (or one), converted or not.
                let m = &self.metrics;
                let objects: Vec<(String, Vec<usize>)> = match plan.partitioned {
                    true => {
                        let storable = |key: &str| self.shared.store.check_key(&target.bucket, key);
                        partition(
                            &plan.key,
                            &records,
                            &keys,
                            arrivals,
                            &storable,
                            &mut partition_errors,
                        )
                        .into_iter()
                        .collect()
                    }
                    false => vec![(plan.key.clone(), (0..records.len()).collect())],
                };
                if plan.partitioned {
                    m.partitions.set(objects.len() as u64);
                }
                for (key, indexes) in objects {
                    match &s3.conversion {
                        None => {
                            let data: Vec<u8> =
                                indexes.iter().flat_map(|&i| records[i]).copied().collect();
                            let len = data.len();
                            if self
                                .put_object(target, &key, data, 0, Some(&m.delivery))
                                .await
                            {
                                m.delivery.delivered(indexes.len(), len);
                                m.objects.add(1);
                            }
                        }
                        Some(conversion) => {
                            let picked: Vec<(Vec<u8>, i64)> = indexes
                                .iter()
                                .map(|&i| (records[i].to_vec(), arrivals[i]))
                                .collect();
                            let Some((parquet, rows)) = self
                                .convert(conversion, picked, &mut conversion_errors)
                                .await
                            else {
                                continue;
                            };
                            // Parquet compresses within: no object compression.
                            let len = parquet.len();
                            if self
                                .put(
                                    &target.bucket,
                                    &key,
                                    bytes::Bytes::from(parquet),
                                    Some(&m.delivery),
                                )
                                .await
                            {
                                m.delivery.delivered(rows as usize, len);
                                m.objects.add(1);
                            }
                        }
                    }
                }
            }
            Configured::Redshift(rs) => {
                // To the intermediate bucket, then into the table.
                let count = records.len();
                let (data, from) = match transformed {
                    Some(t) => (t.records.concat(), 0),
                    None => buffer.into_data(),
                };
                if data.len() > from {
                    let m = &self.metrics;
                    if self
                        .put_object(target, &plan.key, data.clone(), from, Some(&m.staging))
                        .await
                    {
                        m.staging.delivered(count, data.len() - from);
                        m.objects.add(1);
                    }
                    self.load_redshift(&rs, &target.bucket, &plan.key, &data[from..])
                        .await;
                }
            }
            Configured::S3(_) => {
                let count = records.len();
                let (data, from) = match transformed {
                    Some(t) => (t.records.concat(), 0),
                    None => buffer.into_data(),
                };
                // Nothing to deliver (all dropped or failed, or an empty
                // aggregate): no object.
                if data.len() > from {
                    let (m, len) = (&self.metrics, data.len() - from);
                    if self
                        .put_object(target, &plan.key, data, from, Some(&m.delivery))
                        .await
                    {
                        m.delivery.delivered(count, len);
                        m.objects.add(1);
                    }
                }
            }
        }
        // Processing failures and destination failures each under their own
        // error output type (plans made before the second key: the first).
        let destination_key = match plan.destination_error_key.as_str() {
            "" => &plan.error_key,
            key => key,
        };
        // Plans made before a type's key existed: the processing one.
        let error_key = |kind: &str| {
            plan.error_keys
                .get(kind)
                .map_or(plan.error_key.as_str(), String::as_str)
        };
        // Lists that share a key (old plans) are written together, once.
        let mut by_key: Vec<(&str, Vec<u8>)> = Vec::new();
        for (errors, key) in [
            (processing_errors, plan.error_key.as_str()),
            (destination_errors, destination_key),
            (partition_errors, error_key(super::PARTITIONING_FAILED)),
            (
                conversion_errors,
                error_key(crate::conversion::FORMAT_CONVERSION_FAILED),
            ),
        ] {
            match by_key.iter_mut().find(|(k, _)| *k == key) {
                Some((_, lines)) => lines.extend(errors),
                None => by_key.push((key, errors)),
            }
        }
        for (key, errors) in by_key {
            if errors.is_empty() {
                continue;
            }
            if key.is_empty() {
                // Keys are checked when the destination is configured; a
                // plan without one predates that.
                self.fail(
                    "Delivery.Failed",
                    "records failed and the object has no error key".into(),
                );
                continue;
            }
            self.put(&target.bucket, key, bytes::Bytes::from(errors), None)
                .await;
        }
        self.shared
            .recovered(&self.name, self.id, self.shard, Side::Write);
    }

    /// Converts an object's records to Parquet on a worker thread, with the
    /// Glue table's columns as they are now; the records that do not fit
    /// become error lines in `errors`. The Parquet and its rows, counted in
    /// the metrics; None when no record fit (no object)
    /// or the delivery stream is gone. A table that cannot be read (missing,
    /// unusable) is reported and retried: the records wait, nothing is lost.
    /// A conversion that fails otherwise (the writer, a panic) sends all the
    /// records to the error output: retrying would fail the same way.
    async fn convert(
        &self,
        conversion: &crate::conversion::Conversion,
        records: Vec<(Vec<u8>, i64)>,
        errors: &mut Vec<u8>,
    ) -> Option<(Vec<u8>, u64)> {
        let records = std::sync::Arc::new(records);
        let m = &self.metrics;
        let mut wait = RETRY_FIRST;
        loop {
            let columns = match &self.shared.config.glue {
                Some(glue) => glue
                    .table(
                        &conversion.schema.database,
                        &conversion.schema.table,
                        conversion.schema.version_id.as_deref(),
                    )
                    .map(|t| t.columns)
                    .map_err(|e| e.message),
                None => Err("the server has no Glue Data Catalog".to_string()),
            };
            let converted = match columns {
                Ok(columns) => {
                    let (conversion, records) = (conversion.clone(), records.clone());
                    self.shared
                        .workers
                        .run("record format conversion", move || {
                            let refs: Vec<(&[u8], i64)> =
                                records.iter().map(|(d, a)| (d.as_slice(), *a)).collect();
                            crate::conversion::convert(&conversion, &columns, &refs, rt::now_ms())
                        })
                        .await
                        .map_err(|e| NotConverted::Failed(e.message))
                        .and_then(|r| r)
                }
                Err(e) => Err(NotConverted::Schema(e)),
            };
            match converted {
                Ok(c) => {
                    m.converted
                        .delivered(c.rows as usize, c.converted_bytes as usize);
                    m.not_converted.delivered(
                        records.len().saturating_sub(c.rows as usize),
                        c.failed_bytes as usize,
                    );
                    errors.extend(c.errors);
                    return c.parquet.map(|p| (p, c.rows));
                }
                Err(NotConverted::Failed(why)) => {
                    self.fail("DataFormatConversion.Failed", why.clone());
                    let now = rt::now_ms();
                    m.not_converted
                        .delivered(records.len(), records.iter().map(|(d, _)| d.len()).sum());
                    for (data, arrival_ms) in records.iter() {
                        errors.extend(crate::conversion::error_record(
                            *arrival_ms,
                            &why,
                            now,
                            data,
                        ));
                    }
                    return None;
                }
                Err(NotConverted::Schema(e)) => {
                    self.fail("DataFormatConversion.InvalidSchema", e);
                    self.stream()?;
                    rt::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Compresses (off the cores) and stores an object, `data[from..]` (what
    /// comes before only aligns it); a compression that fails is reported
    /// and retried like a write (never skipped: the checkpoint moves on after
    /// this). True once stored; each attempt counts in `channel`.
    async fn put_object(
        &self,
        target: &Target,
        key: &str,
        data: Vec<u8>,
        from: usize,
        channel: Option<&Channel>,
    ) -> bool {
        let data = bytes::Bytes::from(data);
        let stored = match self
            .compressed(
                target.compression,
                data.slice(from..),
                object::entry_name(key),
            )
            .await
        {
            Some(body) => self.put(&target.bucket, key, body, channel).await,
            None => false,
        };
        self.reuse(data);
        stored
    }

    /// `data` compressed off the cores, retried until it is or the delivery
    /// stream is gone (None).
    async fn compressed(
        &self,
        compression: Compression,
        data: bytes::Bytes,
        entry: &str,
    ) -> Option<bytes::Bytes> {
        let mut wait = RETRY_FIRST;
        loop {
            match self
                .shared
                .workers
                .body(compression, data.clone(), entry)
                .await
            {
                Ok(body) => return Some(body),
                Err(e) => {
                    self.fail("Compression", e.message);
                    self.stream()?;
                    rt::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Delivers `records` to an HTTP endpoint (requests of at most 10,000
    /// records, each with a request id that stays the same across retries),
    /// retrying a request until `RetryOptions` runs out; the error lines of
    /// the records that could not be delivered (not of a 413's: AWS does not
    /// back those up).
    async fn send_http(
        &self,
        http: &HttpDestination,
        object_id: &str,
        records: &[&[u8]],
        arrivals: &[i64],
    ) -> Vec<u8> {
        let mut errors = Vec::new();
        let Ok(url) = HttpUrl::parse(&http.url) else {
            return errors;
        };
        let source_arn = self.shared.arn(&self.name);
        let attributes = http_endpoint::common_attributes_header(&http.common_attributes);
        for (chunk, range) in http_endpoint::request_ranges(records)
            .into_iter()
            .enumerate()
        {
            let first = range.start;
            let (batch, batch_arrivals) = (&records[range.clone()], &arrivals[range]);
            let request_id = object::request_id(object_id, chunk);
            let body = bytes::Bytes::from(http_endpoint::request_body(
                &request_id,
                rt::now_ms(),
                batch.iter().copied(),
            ));
            let body = match http.gzip {
                true => match self.compressed(Compression::Gzip, body, "").await {
                    Some(b) => b,
                    None => return errors,
                },
                false => body,
            };
            let deadline = rt::now_ms().saturating_add(http.retry_ms as i64);
            let mut attempts = 0u32;
            let mut wait = HTTP_RETRY_FIRST;
            let failed = loop {
                attempts += 1;
                let mut request = hyper::Request::post(&url.path)
                    .header(hyper::header::HOST, &url.authority)
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .header(hyper::header::CONTENT_LENGTH, body.len())
                    .header("X-Amz-Firehose-Protocol-Version", "1.0")
                    .header("X-Amz-Firehose-Request-Id", &request_id)
                    .header("X-Amz-Firehose-Source-Arn", &source_arn);
                if let Some(key) = &http.access_key {
                    request = request.header("X-Amz-Firehose-Access-Key", key);
                }
                if let Some(a) = &attributes {
                    request = request.header("X-Amz-Firehose-Common-Attributes", a);
                }
                if http.gzip {
                    request = request.header(hyper::header::CONTENT_ENCODING, "gzip");
                }
                let attempt = match (
                    request.body(http_body_util::Full::new(body.clone())),
                    Peer::resolve(&url, &self.shared.tls).await,
                ) {
                    (Ok(request), Ok(peer)) => http_client::send(peer, request, HTTP_TIMEOUT)
                        .await
                        .map_err(|message| http_endpoint::AttemptFailed {
                            permanent: false,
                            message,
                        })
                        .and_then(|(status, answer)| {
                            http_endpoint::check_answer(status.as_u16(), &answer, &request_id)
                        }),
                    (Err(e), _) => Err(http_endpoint::AttemptFailed {
                        permanent: true,
                        message: e.to_string(),
                    }),
                    (_, Err(message)) => Err(http_endpoint::AttemptFailed {
                        permanent: false,
                        message,
                    }),
                };
                self.metrics.delivery.attempt(attempt.is_ok());
                match attempt {
                    Ok(()) => {
                        self.metrics
                            .delivery
                            .delivered(batch.len(), batch.iter().map(|r| r.len()).sum());
                        break None;
                    }
                    Err(f) => {
                        self.fail("HttpEndpoint.DestinationException", f.message.clone());
                        if f.permanent || rt::now_ms() >= deadline || self.stream().is_none() {
                            break Some(f);
                        }
                    }
                }
                // AWS's backoff: min(120 s, 1 s * 2^n), jittered by +-15%.
                let jitter = 85 + (rt::now_ms().rem_euclid(31)) as u32;
                rt::sleep(wait * jitter / 100).await;
                wait = (wait * 2).min(HTTP_RETRY_MAX);
            };
            if let Some(f) = failed
                && !f.permanent
            {
                let now = rt::now_ms();
                for (i, (data, &arrival_ms)) in batch.iter().zip(batch_arrivals).enumerate() {
                    errors.extend(http_endpoint::error_record(
                        attempts,
                        arrival_ms,
                        &f.message,
                        now,
                        data,
                        &format!("{object_id}.{}", first + i),
                    ));
                }
            }
        }
        errors
    }

    /// Stores one object, retrying until it is stored (true) or the delivery
    /// stream is gone; each attempt counts in `channel`.
    pub(super) async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: bytes::Bytes,
        channel: Option<&Channel>,
    ) -> bool {
        let mut wait = RETRY_FIRST;
        loop {
            let stored = self.shared.store.put(bucket, key, body.clone()).await;
            if let Some(c) = channel {
                c.attempt(stored.is_ok());
            }
            match stored {
                Ok(()) => {
                    self.shared
                        .recovered(&self.name, self.id, self.shard, Side::Write);
                    return true;
                }
                Err(e) => {
                    self.fail("S3.PutObject", e.message);
                    if self.stream().is_none() {
                        return false;
                    }
                    rt::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

/// The objects of a partitioned plan: each record (by index) in the object
/// of its partition keys (`planned` with them filled in), in key order; a
/// record that cannot be placed (a key missing, a prefix too long, a key the
/// store cannot hold (`storable`), more than `PARTITIONS_MAX` partitions)
/// becomes an error line in `errors`.
fn partition(
    planned: &str,
    records: &[&[u8]],
    keys: &[&Keys],
    arrivals: &[i64],
    storable: &dyn Fn(&str) -> Result<(), String>,
    errors: &mut Vec<u8>,
) -> std::collections::BTreeMap<String, Vec<usize>> {
    let mut objects: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for (i, ((data, keys), &arrival_ms)) in records.iter().zip(keys).zip(arrivals).enumerate() {
        let key = partition::object_key(planned, keys).and_then(|key| {
            // Checked once per partition: the store can hold it, and it is
            // not a directory of another partition's object, nor one of its
            // objects a directory (values `v` and `v/NAME` on a file store).
            if objects.contains_key(&key) {
                return Ok(key);
            }
            storable(&key)?;
            let clash = objects.keys().find(|other| {
                key.strip_prefix(other.as_str()).is_some_and(|r| r.starts_with('/'))
                    || other.strip_prefix(key.as_str()).is_some_and(|r| r.starts_with('/'))
            });
            match clash {
                Some(other) => Err(format!(
                    "the object key {key:?} and the key {other:?} of another partition cannot both be stored"
                )),
                None => Ok(key),
            }
        });
        let failed = match key {
            Ok(key) if objects.len() < PARTITIONS_MAX || objects.contains_key(&key) => {
                objects.entry(key).or_default().push(i);
                continue;
            }
            Ok(_) => (
                "DynamicPartitioning.PartitionCountExceeded",
                format!("the records of one object reach more than {PARTITIONS_MAX} partitions"),
            ),
            Err(why) => ("DynamicPartitioning.PartitionKeyMissing", why),
        };
        errors.extend(processing::error_record(
            1,
            arrival_ms,
            failed.0,
            &failed.1,
            rt::now_ms(),
            data,
            None,
        ));
    }
    objects
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_get_their_records_and_misplaced_ones_fail() {
        let mut a = Keys::default();
        a.add(false, [("c".to_string(), "a".to_string())]);
        let mut b = Keys::default();
        b.add(false, [("c".to_string(), "b".to_string())]);
        let none = Keys::default();
        let records: [&[u8]; 4] = [b"1", b"2", b"3", b"4"];
        let mut errors = Vec::new();
        let objects = partition(
            "c=!{partitionKeyFromQuery:c}/obj",
            &records,
            &[&a, &b, &a, &none],
            &[1, 2, 3, 4],
            &|_| Ok(()),
            &mut errors,
        );
        let got: Vec<(&str, &[usize])> = objects
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        assert_eq!(got, vec![("c=a/obj", &[0, 2][..]), ("c=b/obj", &[1][..])]);
        let line: serde_json::Value = serde_json::from_slice(&errors).unwrap();
        assert_eq!(line["errorCode"], "DynamicPartitioning.PartitionKeyMissing");
        assert_eq!(line["rawData"], "NA==");
    }

    #[test]
    fn keys_the_store_cannot_hold_fail_their_records() {
        let mut dots = Keys::default();
        dots.add(false, [("c".to_string(), "..".to_string())]);
        let mut fine = Keys::default();
        fine.add(false, [("c".to_string(), "x".to_string())]);
        let records: [&[u8]; 2] = [b"1", b"2"];
        let mut errors = Vec::new();
        let storable = |key: &str| match key.split('/').any(|s| s == "..") {
            true => Err("a `..` segment".to_string()),
            false => Ok(()),
        };
        let objects = partition(
            "!{partitionKeyFromQuery:c}/obj",
            &records,
            &[&dots, &fine],
            &[1, 2],
            &storable,
            &mut errors,
        );
        assert_eq!(objects.keys().collect::<Vec<_>>(), vec!["x/obj"]);
        let line: serde_json::Value = serde_json::from_slice(&errors).unwrap();
        assert!(line["errorMessage"].as_str().unwrap().contains(".."));
    }

    #[test]
    fn a_partition_cannot_be_a_directory_of_another() {
        let mut v = Keys::default();
        v.add(false, [("c".to_string(), "v".to_string())]);
        let mut deeper = Keys::default();
        deeper.add(false, [("c".to_string(), "v/obj".to_string())]);
        let records: [&[u8]; 2] = [b"1", b"2"];
        let mut errors = Vec::new();
        let objects = partition(
            "p/!{partitionKeyFromQuery:c}/obj",
            &records,
            &[&v, &deeper],
            &[1, 2],
            &|_| Ok(()),
            &mut errors,
        );
        assert_eq!(objects.keys().collect::<Vec<_>>(), vec!["p/v/obj"]);
        let line: serde_json::Value = serde_json::from_slice(&errors).unwrap();
        assert_eq!(line["rawData"], "Mg==");
    }
}
