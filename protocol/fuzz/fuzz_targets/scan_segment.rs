//! Fuzz target: the recovery scan of a segment and batch verification at every
//! 8-aligned offset, on arbitrary bytes. Recovery (`segment::scan`) looks for valid
//! batches at every 8-aligned offset past a torn tail (`find_valid_batch`), record
//! data included, where a client can plant anything with a valid crc. So before
//! anything runs, every 8-aligned `RFLB` header whose length fits gets its crc made
//! right (back to front, so an outer batch's crc covers the inner ones' fixes) and
//! the fuzzer reaches the archive check instead of dying at the crc.
//!
//! Input: byte 0 is the torn-tail window in 8-byte units (0: a sealed segment, no
//! window); the rest is the segment, copied into a 16-aligned buffer (as storage
//! reads are). Checks: nothing panics; every batch `verify` accepts can be read to
//! its last record byte (ASan catches a read outside the buffer); what `scan` keeps
//! is a chain of batches that verify, with contiguous offsets, ending at `end`.

#![no_main]

use std::hint::black_box;

use libfuzzer_sys::fuzz_target;
use riffle_protocol::batch::{self, BATCH_MAGIC, BatchHeader, BatchView, padded};
use riffle_protocol::limits::{BATCH_ALIGNMENT, BATCH_HEADER_SIZE};
use riffle_store::segment;
use rkyv::util::AlignedVec;

fuzz_target!(|data: &[u8]| {
    let Some((&knob, rest)) = data.split_first() else {
        return;
    };
    let mut buf = AlignedVec::<16>::with_capacity(rest.len());
    buf.extend_from_slice(rest);
    fix_crcs(&mut buf);

    let mut q = 0;
    while q + BATCH_HEADER_SIZE <= buf.len() {
        if let Ok(view) = batch::verify(&buf[q..]) {
            walk(&view);
        }
        q += BATCH_ALIGNMENT;
    }

    // Start at the first batch's offset, so the scan gets past it.
    let base = BatchHeader::parse(&buf).map_or(0, |h| h.base_offset);
    let window = (knob != 0).then(|| knob as u64 * BATCH_ALIGNMENT as u64);
    match segment::scan(&buf, base, 64, window) {
        Ok(out) => {
            let (mut p, mut next) = (0usize, base);
            while (p as u64) < out.end {
                let view = batch::verify(&buf[p..]).expect("a kept batch verifies");
                assert_eq!(view.header.base_offset, next, "kept offsets are contiguous");
                walk(&view);
                next = view.header.next_offset();
                p += view.header.padded_length();
            }
            assert_eq!(p as u64, out.end, "the kept chain ends at `end`");
            assert_eq!(next, out.next_offset);
            assert!(out.end as usize <= padded(buf.len()));
            if window.is_none() {
                assert_eq!(out.torn_at, None, "a sealed segment is never torn");
            }
        }
        Err(e) => assert!(e.position as usize <= buf.len()),
    }
});

/// Makes the crc of every 8-aligned batch header whose length fits right.
fn fix_crcs(buf: &mut [u8]) {
    let last = buf.len().saturating_sub(BATCH_HEADER_SIZE) / BATCH_ALIGNMENT * BATCH_ALIGNMENT;
    for q in (0..=last).rev().step_by(BATCH_ALIGNMENT) {
        let rest = &buf[q..];
        if rest.len() < BATCH_HEADER_SIZE || rest[..4] != BATCH_MAGIC {
            continue;
        }
        let Ok(h) = BatchHeader::parse(rest) else {
            continue;
        };
        if h.length as usize <= rest.len() {
            let crc = batch::batch_crc(rest);
            buf[q + 12..q + 16].copy_from_slice(&crc.to_le_bytes());
        }
    }
}

/// Reads every byte a batch's records reach.
fn walk(view: &BatchView<'_>) {
    let mut sum = 0u64;
    for r in view.records() {
        let bytes = r.partition_key().bytes().chain(r.data().iter().copied());
        sum = bytes.fold(sum, |s, b| s.wrapping_add(u64::from(b)));
        sum = sum.wrapping_add(r.explicit_hash_key().unwrap_or(0) as u64);
        sum = sum.wrapping_add(r.arrival_ms() as u64);
    }
    black_box(sum);
}
