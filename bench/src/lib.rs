//! riffle-bench: helpers shared by the criterion benches and the load generator.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use riffle_protocol::batch::{BatchBuilder, RecordIn};
use rkyv::util::AlignedVec;

/// Polls all futures concurrently until every one is done; results in order.
pub async fn join_all<T, F: Future<Output = T>>(futures: Vec<F>) -> Vec<T> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<T>> = (0..futures.len()).map(|_| None).collect();
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        let mut pending = false;
        for (i, f) in futures.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => results[i] = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(results.iter_mut().map(|r| r.take().unwrap()).collect())
        }
    })
    .await
}

/// A batch of `count` records of `size` bytes with distinct partition keys.
pub fn make_batch(count: usize, size: usize, seed: u64) -> AlignedVec<16> {
    let keys: Vec<String> = (0..count).map(|i| format!("pk-{seed}-{i}")).collect();
    let data: Vec<u8> = (0..size).map(|i| (i as u64 ^ seed) as u8).collect();
    let records: Vec<RecordIn<'_>> = keys
        .iter()
        .map(|k| RecordIn {
            partition_key: k,
            explicit_hash_key: None,
            data: &data,
            arrival_ms: 0,
        })
        .collect();
    BatchBuilder::new().encode(&records)
}
