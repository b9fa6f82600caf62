//! Which record each per-row row came from: its name at an output
//! (sink.rs), so that a resumed run, or a run of changed code, knows a row
//! written before by the record and the pumps that made it, whatever else
//! the code does with the rows around it (a filter letting more through, a
//! pump added elsewhere, an output moved between the shard's task and
//! home).
//!
//! A row's id is its record's offset in the shard and its `part`: the
//! row's place among its record's rows (a CSV record, or a KPL aggregate,
//! holds several; rows that failed to decode counted, so a schema change
//! that decodes one moves no other; a KPL user record's index in the high
//! 32 bits), then through each reference join the match it is
//! (the first match keeps the id; the m-th after it takes a hash of the
//! id and m, see [`joined`]). A filter or a failed row only drops ids; a
//! projection keeps them.

use std::sync::Arc;

/// A per-row row's origin in its shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RowId {
    /// The record's offset in the shard.
    pub(crate) offset: u64,
    /// The row within the record (and join matches, [`joined`]).
    pub(crate) part: u64,
}

/// The ids of a batch's rows, in row order.
pub(crate) type RowIds = Arc<[RowId]>;

/// The ids of rows made one per row of `ids` at `from` (None: one per
/// row, in order).
pub(crate) fn taken(ids: &RowIds, from: Option<&[u32]>) -> RowIds {
    match from {
        None => ids.clone(),
        Some(from) => from.iter().map(|&r| ids[r as usize]).collect(),
    }
}

/// The ids of a join's output rows, each made from row `left[i]` of the
/// rows `ids` names (a row's matches are consecutive). The first match of
/// a row keeps its id (so a join that finds one match changes no name);
/// the m-th after it takes a hash of the id and m (FNV-1a over the bytes
/// of `part` and `m`; distinct from the ids of the record's other rows but
/// for a 2^-64 chance).
pub(crate) fn joined(ids: &RowIds, left: &[u32]) -> RowIds {
    let mut out = Vec::with_capacity(left.len());
    let mut m = 0u64;
    for (i, &r) in left.iter().enumerate() {
        m = match i > 0 && left[i - 1] == r {
            true => m + 1,
            false => 0,
        };
        let id = ids[r as usize];
        out.push(match m {
            0 => id,
            _ => RowId {
                offset: id.offset,
                part: fnv(&[id.part, m]),
            },
        });
    }
    out.into()
}

/// FNV-1a of the little-endian bytes of `words`.
fn fnv(words: &[u64]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for w in words {
        for b in w.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(parts: &[(u64, u64)]) -> RowIds {
        parts
            .iter()
            .map(|&(offset, part)| RowId { offset, part })
            .collect()
    }

    #[test]
    fn a_filter_keeps_the_ids_of_the_rows_it_keeps() {
        let all = ids(&[(7, 0), (7, 1), (8, 0)]);
        assert_eq!(taken(&all, None), all);
        assert_eq!(taken(&all, Some(&[0, 2])), ids(&[(7, 0), (8, 0)]));
        assert_eq!(taken(&all, Some(&[])), ids(&[]));
    }

    #[test]
    fn a_join_names_each_match_of_a_row_apart() {
        let all = ids(&[(7, 0), (7, 1), (8, 0)]);
        // Row 0 matches twice, row 1 not at all (INNER), row 2 once.
        let out = joined(&all, &[0, 0, 2]);
        assert_eq!(out[0], RowId { offset: 7, part: 0 });
        assert_eq!(out[2], RowId { offset: 8, part: 0 });
        let second = out[1];
        assert_eq!(second.offset, 7);
        assert!(second.part != 0 && second.part != 1, "{second:?}");
        // The same rows always get the same names.
        assert_eq!(joined(&all, &[0, 0, 2]), out);
        // Every match of a row is distinct.
        let many = joined(&all, &[1, 1, 1, 1]);
        let set: std::collections::HashSet<_> = many.iter().collect();
        assert_eq!(set.len(), 4);
    }
}
