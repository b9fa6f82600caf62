//! Tests of `kpl`: the reader on hand-made and malformed records, and the
//! writer checked byte for byte against records `aws-kinesis-agg` wrote.

use super::*;

fn varint(v: u64, out: &mut Vec<u8>) {
    put_varint(v as usize, out);
}

fn field_bytes(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// An aggregated record as the KPL writes it (the format above).
fn aggregate(keys: &[&str], hashes: &[&str], records: &[(u64, Option<u64>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for k in keys {
        field_bytes(1, k.as_bytes(), &mut body);
    }
    for h in hashes {
        field_bytes(2, h.as_bytes(), &mut body);
    }
    for (k, h, data) in records {
        let mut r = Vec::new();
        varint(1 << 3, &mut r);
        varint(*k, &mut r);
        if let Some(h) = h {
            varint(2 << 3, &mut r);
            varint(*h, &mut r);
        }
        field_bytes(3, data, &mut r);
        // A tag (field 4) the reader skips.
        field_bytes(4, &[10, 1, b'k'], &mut r);
        field_bytes(3, &r, &mut body);
    }
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    out
}

#[test]
fn user_records_come_out_in_order() {
    let agg = aggregate(
        &["a", "b"],
        &["12345"],
        &[(0, None, b"one"), (1, Some(0), b""), (0, None, b"three")],
    );
    let want: [Input; 3] = [
        ("a", None, b"one"),
        ("b", Some("12345"), b""),
        ("a", None, b"three"),
    ];
    assert_eq!(deaggregate(&agg).unwrap(), want.map(user));
}

#[test]
fn anything_else_is_not_aggregated() {
    let agg = aggregate(&["a"], &[], &[(0, None, b"x")]);
    assert!(deaggregate(b"plain record").is_none());
    assert!(deaggregate(&MAGIC).is_none());
    // A flipped bit: the MD5 does not match.
    let mut bad = agg.clone();
    bad[6] ^= 1;
    assert!(deaggregate(&bad).is_none());
    // Valid MD5 but an index out of the table, or a truncated field.
    let out_of_table = aggregate(&["a"], &[], &[(5, None, b"x")]);
    assert!(deaggregate(&out_of_table).is_none());
    let mut body = Vec::new();
    field_bytes(3, &[0x1a, 0x7f, 1], &mut body); // data claims 127 bytes
    let mut truncated = MAGIC.to_vec();
    truncated.extend_from_slice(&body);
    truncated.extend_from_slice(&Md5::digest(&body));
    assert!(deaggregate(&truncated).is_none());
    // Every prefix of a valid record, and every byte of it flipped: no panic.
    for n in 0..agg.len() {
        let _ = deaggregate(&agg[..n]);
        let mut f = agg.clone();
        f[n] ^= 0xff;
        let _ = deaggregate(&f);
    }
}

/// A user record: partition key, explicit hash key, data.
type Input<'a> = (&'a str, Option<&'a str>, &'a [u8]);

/// The user record `deaggregate` gives for this input (an empty explicit hash
/// key is none).
fn user((partition_key, hash, data): Input) -> UserRecord {
    let explicit_hash_key = hash.filter(|h| !h.is_empty());
    UserRecord {
        partition_key,
        explicit_hash_key,
        data,
    }
}

/// Aggregates `input` with `agg`, checking that `size_with` predicted every
/// length exactly, the outer keys, that finishing empties the aggregator, and
/// that `deaggregate` gives the input back.
fn round_trip(agg: &mut Aggregator, input: &[Input]) -> Vec<u8> {
    assert!(agg.is_empty());
    for (i, &(key, hash, data)) in input.iter().enumerate() {
        let predicted = agg.size_with(key, hash, data);
        let outer_key_len = input[0].0.len();
        assert_eq!(
            agg.put_size_with(key, hash, data),
            predicted + outer_key_len
        );
        agg.add(key, hash, data);
        assert_eq!(agg.encoded_len(), predicted, "record {i}");
        assert_eq!(agg.len(), i + 1);
    }
    let want: Vec<UserRecord> = input.iter().copied().map(user).collect();
    assert_eq!(agg.partition_key(), want.first().map(|r| r.partition_key));
    assert_eq!(
        agg.explicit_hash_key(),
        want.first().and_then(|r| r.explicit_hash_key)
    );
    let len = agg.encoded_len();
    let bytes = agg.finish();
    assert_eq!(bytes.len(), len);
    assert!(agg.is_empty() && agg.partition_key().is_none());
    assert_eq!(agg.encoded_len(), MAGIC.len() + DIGEST_LEN);
    assert_eq!(deaggregate(&bytes).unwrap(), want);
    bytes
}

#[test]
fn aggregates_round_trip() {
    let big = vec![7u8; 20_000];
    let mid: Vec<u8> = (0..=255).collect();
    let (a, b) = (Some("5"), Some("0"));
    let c = Some("340282366920938463463374607431768211455");
    let cases: &[&[Input]] = &[
        &[("a", None, b"")],
        &[("a", None, b""), ("a", None, b""), ("a", None, b"")],
        &[
            ("a", None, b"1"),
            ("b", None, b"2"),
            ("a", None, b"3"),
            ("c", None, b""),
        ],
        &[
            ("a", None, b"x"),
            ("b", a, b"y"),
            ("a", a, b"z"),
            ("c", b, b""),
            ("c", None, b"w"),
        ],
        &[
            ("ключ", c, "données".as_bytes()),
            ("🔑", None, &mid),
            ("ключ", None, b""),
        ],
        &[
            ("k", Some(""), b"an empty explicit hash key is none"),
            ("k", a, b""),
        ],
        &[("k", None, &big), ("k", None, &mid)],
    ];
    let mut agg = Aggregator::new();
    for case in cases {
        let first = round_trip(&mut agg, case);
        // Reused after finish: the same input gives the same bytes.
        assert_eq!(round_trip(&mut agg, case), first);
    }
}

#[test]
fn many_distinct_keys() {
    // Indices past 127 and 16383 take two and three bytes.
    let keys: Vec<String> = (0..20_000).map(|i| format!("{i:x}")).collect();
    let hashed = |i: usize| i.is_multiple_of(2).then(|| keys[i].as_str());
    let input: Vec<Input> = (0..keys.len())
        .map(|i| (keys[i].as_str(), hashed(i), &b"data"[..i % 5]))
        .collect();
    let mut agg = Aggregator::new();
    let once = round_trip(&mut agg, &input).len();
    // Repeating every record adds records, the same bytes again, and no keys.
    let twice: Vec<Input> = input.iter().chain(&input).copied().collect();
    let key_len = |i: usize| 2 + keys[i].len();
    let tables: usize = (0..keys.len())
        .map(|i| key_len(i) + hashed(i).map_or(0, |_| key_len(i)))
        .sum();
    let records = once - MAGIC.len() - tables - DIGEST_LEN;
    assert_eq!(round_trip(&mut agg, &twice).len(), once + records);
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Byte for byte against the reference implementation. The expected bytes were
/// made by `aws-kinesis-agg` 1.2.3 from PyPI (with protobuf 7.36.2 and six 1.17.0,
/// Python 3.11) with this script:
///
/// ```python
/// import hashlib
/// from aws_kinesis_agg.aggregator import RecordAggregator
/// def agg(records):
///     a = RecordAggregator()
///     for pk, ehk, data in records:
///         assert a.add_user_record(pk, data, ehk) is None
///     return a.clear_and_get().get_contents()  # (pk, ehk, bytes)
/// H = "170141183460469231731687303715884105728"  # 2^127
/// inputs = {
///     "A": [("alpha", None, b"one"), ("beta", None, b""), ("alpha", None, b"three")],
///     "B": [("k", H, b"x"), ("\u043a\u043b\u044e\u0447-\U0001F511", None, b"\x00\xff"),
///           ("k", None, b"y"), ("k2", "0", b"z"), ("k2", H, b"w")],
///     "C": [("solo", None, b"lone")],
///     "D": [("k%d" % i, None, bytes([i]) * (i % 3)) for i in range(130)]
///          + [("k129", "7", bytes(range(256)) * 2)],
/// }
/// for name, recs in inputs.items():
///     pk, ehk, body = agg(recs)
///     print(name, repr(pk), repr(ehk), len(body), hashlib.md5(body).hexdigest())
///     if len(body) < 200:
///         print("  ", body.hex())
/// ```
#[test]
fn same_bytes_as_aws_kinesis_agg() {
    const H: &str = "170141183460469231731687303715884105728";
    let a: &[Input] = &[
        ("alpha", None, b"one"),
        ("beta", None, b""),
        ("alpha", None, b"three"),
    ];
    let b: &[Input] = &[
        ("k", Some(H), b"x"),
        ("ключ-🔑", None, b"\x00\xff"),
        ("k", None, b"y"),
        ("k2", Some("0"), b"z"),
        ("k2", Some(H), b"w"),
    ];
    let c: &[Input] = &[("solo", None, b"lone")];
    let cases: [(&[Input], Option<&str>, &str); 3] = [
        (
            a,
            None,
            "f3899ac20a05616c7068610a04626574611a0708001a036f6e651a0408011a001a0908001a0574\
             687265659547667e9b54781033a4dea403273ff6",
        ),
        (
            b,
            Some(H),
            "f3899ac20a016b0a0dd0bad0bbd18ed1872df09f94910a026b3212273137303134313138333436\
             303436393233313733313638373330333731353838343130353732381201301a07080010001a01\
             781a0608011a0200ff1a0508001a01791a07080210011a017a1a07080210001a01772680675\
             6c4a4d7270e3121aa6a27def8",
        ),
        (
            c,
            None,
            "f3899ac20a04736f6c6f1a0808001a046c6f6e65842584442a16c29f523fa6224a88a673",
        ),
    ];
    let mut agg = Aggregator::new();
    for (input, outer_hash, want) in cases {
        for &(key, hash, data) in input {
            agg.add(key, hash, data);
        }
        // Python's get_contents(): (first partition key, first explicit hash key, bytes).
        assert_eq!(agg.partition_key(), Some(input[0].0));
        assert_eq!(agg.explicit_hash_key(), outer_hash);
        assert_eq!(hex(&agg.finish()), want);
        let theirs: Vec<UserRecord> = input.iter().copied().map(user).collect();
        assert_eq!(deaggregate(&unhex(want)).unwrap(), theirs);
    }
    // D: 131 records, over 128 keys; compared by length and MD5 of the bytes.
    let keys: Vec<String> = (0..130).map(|i| format!("k{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        agg.add(key, None, &vec![i as u8; i % 3]);
    }
    let long: Vec<u8> = (0..512).map(|i| i as u8).collect();
    agg.add("k129", Some("7"), &long);
    assert_eq!(
        (agg.partition_key(), agg.explicit_hash_key()),
        (Some("k0"), None)
    );
    let d = agg.finish();
    assert_eq!(d.len(), 2127);
    assert_eq!(hex(&Md5::digest(&d)), "9d6c05a5679184c9a42cc3b8c9cf2906");
}

#[test]
fn size_with_fills_a_record_to_the_limit() {
    const LIMIT: usize = 1 << 20;
    let data = vec![0xab_u8; LIMIT];
    let mut agg = Aggregator::new();
    for i in 0..1000 {
        agg.add(
            &format!("k{}", i % 37),
            (i % 5 == 0).then_some("42"),
            &data[..i % 300],
        );
    }
    // The largest last user record that keeps the put within the limit.
    let put_size = |n: usize| agg.put_size_with("last", Some("7"), &data[..n]);
    let (mut lo, mut hi) = (0, LIMIT);
    assert!(put_size(lo) <= LIMIT && put_size(hi) > LIMIT);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if put_size(mid) <= LIMIT {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // Varint lengths can step by more than one byte, by at most three.
    assert!(LIMIT - put_size(lo) <= 2, "{}", put_size(lo));
    let predicted = agg.size_with("last", Some("7"), &data[..lo]);
    agg.add("last", Some("7"), &data[..lo]);
    let bytes = agg.finish();
    assert_eq!(bytes.len(), predicted);
    assert!(bytes.len() + "k0".len() <= LIMIT);
    let records = deaggregate(&bytes).unwrap();
    assert_eq!(records.len(), 1001);
    assert_eq!(records[1000].data.len(), lo);
}

#[test]
fn a_lone_user_record_is_there_as_it_is() {
    let mut agg = Aggregator::new();
    assert_eq!(
        (agg.single(), agg.partition_key(), agg.explicit_hash_key()),
        (None, None, None)
    );
    agg.add("solo", Some("9"), b"lone");
    assert_eq!(agg.single(), Some(user(("solo", Some("9"), b"lone"))));
    agg.add("other", None, b"x");
    assert_eq!(agg.single(), None);
    assert_eq!(
        (agg.partition_key(), agg.explicit_hash_key()),
        (Some("solo"), Some("9"))
    );
    // Finishing an empty aggregator: magic and the MD5 of nothing, no user records.
    agg.finish();
    let empty = agg.finish();
    assert_eq!(empty.len(), MAGIC.len() + DIGEST_LEN);
    assert_eq!(deaggregate(&empty), Some(vec![]));
    // finish_into appends.
    let mut out = b"prefix".to_vec();
    agg.add("a", None, b"b");
    let len = agg.encoded_len();
    agg.finish_into(&mut out);
    assert_eq!((&out[..6], out.len()), (&b"prefix"[..], 6 + len));
    assert_eq!(deaggregate(&out[6..]).unwrap()[0].data, b"b");
}
