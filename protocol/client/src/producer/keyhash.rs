//! Partition keys' hash keys (the MD5 Kinesis routes by), remembered per
//! sending thread: a producer sends the same keys again and again, and for a
//! small record the MD5 of its key is a large part of its cost. A small
//! direct-mapped table of short keys, no allocation, no lock.

use std::cell::RefCell;

use riffle_protocol::routing;

/// Keys up to this many bytes are remembered (most keys are ids).
const KEY_BYTES_MAX: usize = 48;
const SLOTS: usize = 256;

#[derive(Clone, Copy)]
struct Slot {
    /// 0: empty (an empty key is never sent).
    len: u8,
    key: [u8; KEY_BYTES_MAX],
    hash: u128,
}

thread_local! {
    static TABLE: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// FNV-1a: cheap, and the table's index only has to spread ids.
fn slot_of(key: &[u8]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    (h ^ (h >> 32)) as usize % SLOTS
}

/// `routing::hash_key_of(partition_key)`, remembered.
pub(super) fn hash_key_of(partition_key: &str) -> u128 {
    let key = partition_key.as_bytes();
    if key.is_empty() || key.len() > KEY_BYTES_MAX {
        return routing::hash_key_of(partition_key);
    }
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        if t.is_empty() {
            t.resize(
                SLOTS,
                Slot {
                    len: 0,
                    key: [0; KEY_BYTES_MAX],
                    hash: 0,
                },
            );
        }
        let slot = &mut t[slot_of(key)];
        if slot.len as usize == key.len() && &slot.key[..key.len()] == key {
            return slot.hash;
        }
        let hash = routing::hash_key_of(partition_key);
        slot.len = key.len() as u8;
        slot.key[..key.len()].copy_from_slice(key);
        slot.hash = hash;
        hash
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_hash_keys_are_the_md5_ones() {
        // Many more keys than slots (collisions evict), keys of every length
        // around the bound, each asked for twice.
        for round in 0..2 {
            for i in 0..2000 {
                let key = format!("{i}-{}", "k".repeat(i % (KEY_BYTES_MAX + 8)));
                assert_eq!(
                    hash_key_of(&key),
                    routing::hash_key_of(&key),
                    "round {round}: {key}"
                );
            }
        }
        // A key that is a prefix of a remembered one is not taken for it.
        assert_eq!(hash_key_of("abc"), routing::hash_key_of("abc"));
        assert_eq!(hash_key_of("ab"), routing::hash_key_of("ab"));
        assert_eq!(hash_key_of("é"), routing::hash_key_of("é"));
    }
}
