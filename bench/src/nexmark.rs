//! The Nexmark-like bids the `analytics` scenario loads and its criterion
//! bench decodes (the published Nexmark model, not the `nexmark` crate):
//! bids of a 1:3:46 person:auction:bid event stream, half of them on the
//! hot auction (the newest multiple of 100), the others spread over the 100
//! newest; three quarters by the hot bidder, the others over the 1,000
//! newest people; prices log-uniform between 1 and 10^8 cents; a tenth of
//! the channels one of four named, the rest `channel-N`. Every bid follows
//! from the seed and its index alone, so producer threads generate their
//! slices independently.

use std::io::Write;

use serde_json::{Value, json};

/// The generator's seed (every run loads the same bids).
pub const SEED: u64 = 14;

/// The bids' `InputSchema` (the API's shape): a record is a row of JSON,
/// every column mapped from its member.
pub fn bid_schema() -> Value {
    let column = |name: &str, path: &str, ty: &str| json!({"Name": name, "Mapping": format!("$.{path}"), "SqlType": ty});
    json!({
        "RecordFormat": {"RecordFormatType": "JSON",
                         "MappingParameters": {"JSONMappingParameters": {"RecordRowPath": "$"}}},
        "RecordEncoding": "UTF-8",
        "RecordColumns": [
            column("AUCTION", "auction", "BIGINT"),
            column("BIDDER", "bidder", "BIGINT"),
            column("PRICE", "price", "BIGINT"),
            column("CHANNEL", "channel", "VARCHAR(16)"),
            column("URL", "url", "VARCHAR(128)"),
            column("DATETIME", "dateTime", "TIMESTAMP"),
            column("EXTRA", "extra", "VARCHAR(64)"),
        ],
    })
}

/// First ids, as Nexmark numbers them.
pub const FIRST_AUCTION_ID: i64 = 1000;
pub const FIRST_PERSON_ID: i64 = 1000;
/// Events per epoch: 1 person, 3 auctions, 46 bids.
pub const BIDS_PER_EPOCH: u64 = 46;
pub const AUCTIONS_PER_EPOCH: i64 = 3;
/// A hot auction is the newest multiple of this; a hot bidder the newest
/// multiple of it plus one.
pub const HOT_STEP: i64 = 100;
/// 1 in HOT_AUCTION_RATIO bids is not on the hot auction; 1 in
/// HOT_BIDDER_RATIO not by the hot bidder.
const HOT_AUCTION_RATIO: u64 = 2;
const HOT_BIDDER_RATIO: u64 = 4;
const AUCTIONS_IN_FLIGHT: u64 = 100;
const ACTIVE_PEOPLE: u64 = 1000;
/// 2026-01-01 00:00:00 UTC; bids are 1 ms apart per 10 events.
pub const BASE_MS: i64 = 1_767_225_600_000;
const NAMED_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// SplitMix64: small, seedable, good enough for a load.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn letters(&mut self, n: usize, out: &mut Vec<u8>) {
        out.extend((0..n).map(|_| b'a' + self.below(26) as u8));
    }
}

/// Bid `index` of the stream seeded `seed`, as JSON, and its auction.
pub fn bid(seed: u64, index: u64) -> (Vec<u8>, i64) {
    let mut rng = Rng(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
    rng.next();
    let epoch = index / BIDS_PER_EPOCH;
    // The event's number in the 1:3:46 stream (person, auctions, then bids).
    let event = epoch * 50 + 4 + index % BIDS_PER_EPOCH;
    let newest_auction = epoch as i64 * AUCTIONS_PER_EPOCH + AUCTIONS_PER_EPOCH - 1;
    let newest_person = epoch as i64;
    let auction = FIRST_AUCTION_ID
        + if rng.below(HOT_AUCTION_RATIO) > 0 {
            newest_auction / HOT_STEP * HOT_STEP
        } else {
            (newest_auction - rng.below(AUCTIONS_IN_FLIGHT) as i64).max(0)
        };
    let bidder = FIRST_PERSON_ID
        + if rng.below(HOT_BIDDER_RATIO) > 0 {
            newest_person / HOT_STEP * HOT_STEP + 1
        } else {
            (newest_person - rng.below(ACTIVE_PEOPLE) as i64).max(0)
        };
    let price = (10f64.powf(rng.unit() * 6.0) * 100.0).round() as i64;
    let mut out = Vec::with_capacity(208);
    let _ = write!(
        out,
        r#"{{"auction":{auction},"bidder":{bidder},"price":{price},"channel":""#
    );
    if rng.below(10) == 0 {
        out.extend_from_slice(NAMED_CHANNELS[rng.below(4) as usize].as_bytes());
    } else {
        let _ = write!(out, "channel-{}", rng.below(10_000));
    }
    out.extend_from_slice(br#"","url":"https://www.nexmark.com/"#);
    for _ in 0..3 {
        rng.letters(5, &mut out);
        out.push(b'/');
    }
    out.extend_from_slice(br#"item.htm?query=1","dateTime":""#);
    timestamp(BASE_MS + (event / 10) as i64, &mut out);
    out.extend_from_slice(br#"","extra":""#);
    // Pad to 160-200 bytes with at most 64 letters.
    let target = 160 + rng.below(41) as usize;
    let extra = target.saturating_sub(out.len() + 2).min(64);
    rng.letters(extra, &mut out);
    out.extend_from_slice(b"\"}");
    (out, auction)
}

/// `yyyy-MM-dd HH:mm:ss.SSS` (UTC) of `ms` since the epoch.
pub fn timestamp(ms: i64, out: &mut Vec<u8>) {
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = riffle_protocol::time::civil_from_days(days);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bids_are_json_of_the_schema_and_their_size() {
        for i in [0, 1, 45, 46, 1_000_000, 1_999_999] {
            let (data, auction) = bid(SEED, i);
            assert!(
                (150..=200).contains(&data.len()),
                "{}",
                String::from_utf8_lossy(&data)
            );
            let v: Value = serde_json::from_slice(&data).expect("a bid is JSON");
            assert_eq!(v["auction"].as_i64(), Some(auction));
            assert!(v["bidder"].as_i64().is_some_and(|b| b >= FIRST_PERSON_ID));
            assert!(
                v["price"]
                    .as_i64()
                    .is_some_and(|p| (100..=100_000_000).contains(&p))
            );
            assert!(v["channel"].as_str().is_some_and(|c| c.len() <= 16));
            assert!(v["url"].as_str().is_some_and(|u| u.len() <= 128));
            assert!(v["extra"].as_str().is_some_and(|e| e.len() <= 64));
            assert_eq!(bid(SEED, i).0, data, "a bid follows from seed and index");
        }
    }

    #[test]
    fn about_half_the_bids_are_on_the_hot_auction() {
        let hot = (0..10_000u64)
            .filter(|&i| {
                let newest = (i / BIDS_PER_EPOCH) as i64 * AUCTIONS_PER_EPOCH + 2;
                bid(SEED, i).1 == FIRST_AUCTION_ID + newest / HOT_STEP * HOT_STEP
            })
            .count();
        assert!((4_700..=5_500).contains(&hot), "{hot} of 10000 hot");
    }

    #[test]
    fn timestamps_are_civil_utc() {
        let mut out = Vec::new();
        timestamp(BASE_MS, &mut out);
        out.push(b'|');
        timestamp(951_825_599_999, &mut out); // 2000-02-29 11:59:59.999
        out.push(b'|');
        timestamp(0, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-01-01 00:00:00.000|2000-02-29 11:59:59.999|1970-01-01 00:00:00.000"
        );
    }
}
