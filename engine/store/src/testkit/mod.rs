//! Storage-independent test workloads for the shard log, and the helpers they share.
//!
//! Compiled only with the `testkit` feature. The store's own tests run these
//! workloads on [`SimStorage`]; the engine runs the very same ones on its glommio
//! direct-I/O storage in a temp dir (`engine/tests/store_on_dma.rs`), so both disks
//! answer to one set of test bodies. Tests that need what only the simulated disk
//! can do (crash at a sync, torn writes, injected faults) stay in the store's
//! `tests/` and use the helpers here.
//!
//! A workload gets a [`Machine`]: a way to make a storage and, if the storage can,
//! to power-cycle it. Every workload first removes its shard directory, so it can
//! run in a reused real directory. Workloads are runtime-free futures: drive them
//! with any executor the storage needs.
//!
//! Seeds, not flakes: randomized workloads take their seeds from [`seeds`]
//! (`RIFFLE_SEED` replays one) and [`for_each_seed`] prints the replay command.

pub mod model;
pub mod reads;
pub mod retention;
pub mod smoke;

use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;
use std::path::Path;
use std::rc::Rc;

use riffle_protocol::Error;
use riffle_protocol::batch::{BatchBuilder, RecordIn, ValidBatch};

use crate::cipher::{BatchKeys, DATA_KEY_LEN, DataKey};
use crate::log::{self, LogConfig, LogView, ReadOutput};
use crate::sim::SimStorage;
use crate::storage::{Storage, StorageFile};

/// The machine under a workload's log: its storage and what can happen to it.
pub trait Machine: Sized {
    type Storage: Storage;

    /// A machine with its own disk; `seed` drives whatever the disk randomizes.
    fn boot(seed: u64) -> Self;
    /// A handle on the disk as it is now.
    fn storage(&self) -> Self::Storage;
    /// Power-cycles the machine: afterwards [`Machine::storage`] is the disk a
    /// restarted machine sees (only durable bytes survive). Returns false when this
    /// machine cannot do that; the workload then only drops the log and opens it
    /// again on the same storage, which is all real storage offers in-process.
    fn restart(&mut self) -> bool;
}

/// The simulated disk: a restart keeps only the durable image.
impl Machine for SimStorage {
    type Storage = SimStorage;

    fn boot(seed: u64) -> SimStorage {
        SimStorage::new(seed)
    }
    fn storage(&self) -> SimStorage {
        self.clone()
    }
    fn restart(&mut self) -> bool {
        *self = SimStorage::restart(self);
        true
    }
}

/// Real storage, used in-process: no restart, a reopen is the closest thing.
#[derive(Clone, Debug)]
pub struct NoRestart<S>(pub S);

impl<S: Storage + Default> Machine for NoRestart<S> {
    type Storage = S;

    fn boot(_seed: u64) -> NoRestart<S> {
        NoRestart(S::default())
    }
    fn storage(&self) -> S {
        self.0.clone()
    }
    fn restart(&mut self) -> bool {
        false
    }
}

/// Drops `log` if given, power-cycles `machine` when `restart` is set and it can,
/// and opens the log in `dir` again.
pub async fn reopen<M: Machine>(
    machine: &mut M,
    log: Option<log::ShardLog<M::Storage>>,
    dir: &Path,
    config: &LogConfig,
    restart: bool,
) -> Result<log::ShardLog<M::Storage>, Error> {
    drop(log);
    if restart {
        machine.restart();
    }
    log::ShardLog::open(machine.storage(), dir, config.clone()).await
}

/// Removes `dir` and everything in it: a workload's fresh start on a reused disk.
pub async fn wipe<S: Storage>(storage: &S, dir: &Path) {
    storage
        .remove_dir_all(dir)
        .await
        .unwrap_or_else(|e| panic!("remove {}: {e}", dir.display()));
}

/// Seeds for a randomized test: `RIFFLE_SEED` (a number or a comma-separated
/// list, decimal or 0x-hex) when set, otherwise `defaults`.
pub fn seeds(defaults: &[u64]) -> Vec<u64> {
    match std::env::var("RIFFLE_SEED") {
        Ok(s) => s
            .split(',')
            .map(|x| {
                let x = x.trim();
                let parsed = match x.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => x.parse(),
                };
                parsed.unwrap_or_else(|_| panic!("RIFFLE_SEED={s}: {x:?} is not a u64"))
            })
            .collect(),
        Err(_) => defaults.to_vec(),
    }
}

/// The command that replays one seed of a test binary of a package.
pub fn replay_hint(package: &str, test: &str, seed: u64) -> String {
    format!("RIFFLE_SEED={seed} cargo test -p {package} --test {test}")
}

/// Runs `run` for every seed of [`seeds`]`(defaults)`, printing first which seed
/// runs and how to replay it (`what` names the workload).
pub fn for_each_seed(
    defaults: &[u64],
    what: &str,
    package: &str,
    test: &str,
    mut run: impl FnMut(u64),
) {
    for seed in seeds(defaults) {
        eprintln!(
            "{what} seed {seed}: replay with {}",
            replay_hint(package, test, seed)
        );
        run(seed);
    }
}

/// xorshift64* seeded through splitmix64: tiny, portable, stable across versions.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi);
        match (hi - lo).checked_add(1) {
            Some(n) => lo + self.next_u64() % n,
            None => self.next_u64(),
        }
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64 - 1) as usize]
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// A record as a producer sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Rec {
    pub key: String,
    pub data: Vec<u8>,
}

impl Rec {
    /// Bytes AWS counts against GetRecords limits: data plus partition key.
    pub fn size(&self) -> u64 {
        (self.data.len() + self.key.len()) as u64
    }
}

impl fmt::Debug for Rec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Rec {{ key: {:?}, data: {} }}",
            self.key,
            short(&self.data)
        )
    }
}

/// Random records, at most `count_max` of them: most of at most 200 bytes, the
/// rest up to `data_max`; with chance `big_percent` the first is a big one of up to
/// `big_max` bytes.
pub fn gen_records(
    rng: &mut Rng,
    count_max: u64,
    data_max: u64,
    big_percent: u64,
    big_max: u64,
) -> Vec<Rec> {
    let n = if rng.chance(50) {
        rng.range(1, 5.min(count_max))
    } else {
        rng.range(1, count_max)
    };
    let big = rng.chance(big_percent);
    (0..n)
        .map(|i| {
            let key = gen_key(rng);
            let len = if big && i == 0 {
                rng.range(big_max / 4, big_max)
            } else if rng.chance(70) {
                rng.range(0, 200.min(data_max))
            } else {
                rng.range(0, data_max)
            };
            Rec {
                key,
                data: rng.bytes(len as usize),
            }
        })
        .collect()
}

/// A partition key of 1 to 256 characters, sometimes with multi-byte characters
/// (AWS counts the key's UTF-8 bytes).
pub fn gen_key(rng: &mut Rng) -> String {
    const ALPHABET: &[char] = &[
        'a', 'b', 'c', 'x', 'y', 'z', '0', '7', '-', '_', 'é', 'ж', '€',
    ];
    let len = if rng.chance(3) {
        rng.range(200, 256)
    } else {
        rng.range(1, 24)
    };
    (0..len).map(|_| *rng.pick(ALPHABET)).collect()
}

/// Encodes records as one unsealed batch.
pub fn encode(recs: &[Rec]) -> ValidBatch {
    let ins: Vec<RecordIn<'_>> = recs
        .iter()
        .map(|r| RecordIn {
            partition_key: &r.key,
            explicit_hash_key: None,
            data: &r.data,
            arrival_ms: 0,
        })
        .collect();
    BatchBuilder::new().build(&ins)
}

/// A record as a reader got it.
#[derive(Clone, PartialEq, Eq)]
pub struct Served {
    pub offset: u64,
    pub key: String,
    pub data: Vec<u8>,
    pub arrival_ms: i64,
}

impl fmt::Debug for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Served {{ offset: {}, key: {:?}, data: {}, arrival_ms: {} }}",
            self.offset,
            self.key,
            short(&self.data),
            self.arrival_ms
        )
    }
}

/// A short description of a byte string: its length and first bytes.
pub fn short(data: &[u8]) -> String {
    format!("{} bytes {:02x?}", data.len(), &data[..data.len().min(8)])
}

/// The records of a read, in order, with their offsets. Asserts that the spans
/// are contiguous from the read's start.
pub fn served<B: Deref<Target = [u8]> + Clone>(out: &ReadOutput<B>) -> Vec<Served> {
    let mut v: Vec<Served> = Vec::new();
    for span in &out.spans {
        let first = span.first_offset();
        if let Some(prev) = v.last() {
            assert_eq!(first, prev.offset + 1, "spans of one read are contiguous");
        }
        for (i, r) in span.records().iter().enumerate() {
            v.push(Served {
                offset: first + i as u64,
                key: r.partition_key().to_string(),
                data: r.data().to_vec(),
                arrival_ms: r.arrival_ms(),
            });
        }
    }
    assert_eq!(
        v.len() as u64,
        out.record_count as u64,
        "record_count matches the spans"
    );
    if let Some(last) = v.last() {
        assert_eq!(
            last.offset + 1,
            out.next_offset,
            "next_offset follows the last record"
        );
    }
    v
}

/// The data keys of the workloads that encrypt: reference 1 and 2 (a stream
/// whose key changed), the same material on every load, as a KMS would give.
pub struct TestKeys {
    keys: [std::sync::Arc<DataKey>; 2],
}

impl TestKeys {
    pub fn new() -> TestKeys {
        let key = |byte| std::sync::Arc::new(DataKey::new(&[byte; DATA_KEY_LEN]).unwrap());
        TestKeys {
            keys: [key(0x5a), key(0xa5)],
        }
    }

    /// The key `key_ref` (1 or 2) names.
    pub fn get(&self, key_ref: u32) -> &DataKey {
        &self.keys[key_ref as usize - 1]
    }
}

impl Default for TestKeys {
    fn default() -> TestKeys {
        TestKeys::new()
    }
}

impl BatchKeys for TestKeys {
    fn data_key(&self, key_ref: u32) -> Result<std::sync::Arc<DataKey>, Error> {
        match key_ref {
            1 | 2 => Ok(self.keys[key_ref as usize - 1].clone()),
            _ => Err(Error::new(
                riffle_protocol::ErrorCode::KmsNotFound,
                format!("no data key {key_ref}"),
            )),
        }
    }
}

/// Every visible record from `from` on, read in pages of at most 700 records
/// (with [`TestKeys`]: batches some workloads encrypted read back too).
pub async fn read_all<F: StorageFile>(
    view: &Rc<RefCell<LogView<F>>>,
    from: u64,
    read_size: usize,
) -> Result<Vec<Served>, Error> {
    let keys = TestKeys::new();
    let mut all = Vec::new();
    let mut next = from;
    loop {
        let out = log::read_with(view, next, 700, 10 << 20, read_size, Some(&keys)).await?;
        if out.record_count == 0 {
            return Ok(all);
        }
        next = out.next_offset;
        all.extend(served(&out));
    }
}

/// A record the test expects at an offset.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    pub offset: u64,
    pub rec: &'a Rec,
    pub arrival_ms: i64,
}

/// Compares served records with expected ones; panics at the first difference.
pub fn assert_records(got: &[Served], want: &[Expected<'_>], ctx: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.offset == w.offset
                && g.key == w.rec.key
                && g.data == w.rec.data
                && g.arrival_ms == w.arrival_ms,
            "{ctx}: record #{i} differs:\n got  {g:?}\n want offset {} {:?} arrival {}",
            w.offset,
            w.rec,
            w.arrival_ms
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{ctx}: served {} records, expected {} (first offsets got {:?}, want {:?})",
        got.len(),
        want.len(),
        got.first().map(|g| g.offset),
        want.first().map(|w| w.offset)
    );
}

/// Compares two lists of served records; panics at the first difference.
pub fn assert_same(got: &[Served], want: &[Served], ctx: &str) {
    if let Some(i) = got.iter().zip(want).position(|(g, w)| g != w) {
        panic!(
            "{ctx}: record #{i} differs:\n got  {:?}\n want {:?}",
            got[i], want[i]
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{ctx}: served {} records, expected {} (got offsets {:?}..., want {:?}...)",
        got.len(),
        want.len(),
        got.first().map(|g| g.offset),
        want.first().map(|w| w.offset)
    );
}

/// The names of the entries of `dir` on `storage`, sorted.
pub async fn file_names<S: Storage>(storage: &S, dir: &Path) -> Vec<String> {
    storage
        .list_dir(dir)
        .await
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
}

/// Small limits so rolls, multi-block reads and index seeks happen often.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_size_max: 16 << 10,
        segment_age_ms_max: 60_000,
        write_size: 4096,
        index_interval_bytes: 1024,
        unsynced_bytes_max: 1 << 20,
        read_size: 8192,
        durable_acks: true,
        preallocate: true,
        preallocate_step: 8192,
        recent_bytes_max: 0,
        follow_bytes_max: 0,
    }
}
