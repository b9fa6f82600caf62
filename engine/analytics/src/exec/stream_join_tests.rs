//! Tests of stream_join.rs: SQLstream's windowed stream-to-stream join rule.

use super::*;
use arrow_array::StringArray;

/// A left row: (ROWTIME, key, value).
type L = (i64, Option<i64>, i64);
/// A right row: (ROWTIME, key, text).
type R = (i64, Option<i64>, &'static str);
/// An output row: (ROWTIME, left value, right text).
type Out = (i64, i64, Option<String>);

fn right_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "ROWTIME",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("K", DataType::Int64, true),
        Field::new("W", DataType::Utf8, false),
    ]))
}

fn spec(left_ms: i64, right_ms: i64, left_outer: bool) -> Arc<StreamJoinSpec> {
    Arc::new(StreamJoinSpec {
        left_window_ms: left_ms,
        right_window_ms: right_ms,
        left_outer,
        left_rowtime: 1,
        right_rowtime: 0,
        right_columns: vec![2],
        right_schema: right_schema(),
    })
}

fn key(k: Option<i64>) -> Option<Vec<u8>> {
    k.map(|k| k.to_le_bytes().to_vec())
}

/// Left batch: K, ROWTIME, V.
fn left(rows: &[L]) -> (RecordBatch, Vec<Option<Vec<u8>>>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("K", DataType::Int64, true),
        Field::new(
            "ROWTIME",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("V", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.0),
            )),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .unwrap();
    (batch, rows.iter().map(|r| key(r.1)).collect())
}

/// Right batch: ROWTIME, K, W.
fn right(rows: &[R]) -> (RecordBatch, Vec<Option<Vec<u8>>>) {
    let batch = RecordBatch::try_new(
        right_schema(),
        vec![
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.0),
            )),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .unwrap();
    (batch, rows.iter().map(|r| key(r.1)).collect())
}

/// The output's rows, checking its schema and ROWTIME order.
fn rows_of(out: Option<RecordBatch>) -> Vec<Out> {
    let Some(b) = out else {
        return Vec::new();
    };
    let schema = b.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["K", "ROWTIME", "V", "W"]);
    assert!(b.schema().field(3).is_nullable());
    let times = b
        .column(1)
        .as_primitive::<arrow_array::types::TimestampMillisecondType>();
    let values = b.column(2).as_primitive::<Int64Type>();
    let texts = b.column(3).as_string::<i32>();
    let rows: Vec<Out> = (0..b.num_rows())
        .map(|i| {
            let text = texts.is_valid(i).then(|| texts.value(i).to_owned());
            (times.value(i), values.value(i), text)
        })
        .collect();
    assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0), "{rows:?}");
    rows
}

/// Runs `calls` (left rows, right rows, watermark) in order.
fn run(spec: Arc<StreamJoinSpec>, calls: &[(&[L], &[R], i64)]) -> (Vec<Out>, StreamJoinState) {
    let mut state = StreamJoinState::new(spec);
    let mut all = Vec::new();
    for (l, r, watermark) in calls {
        let (lb, lk) = left(l);
        let (rb, rk) = right(r);
        let l = (!l.is_empty()).then_some((&lb, lk.as_slice()));
        let r = (!r.is_empty()).then_some((&rb, rk.as_slice()));
        let rows = rows_of(state.advance(l, r, *watermark));
        if let (Some(last), Some(first)) = (all.last(), rows.first()) {
            let (last, first): (&Out, &Out) = (last, first);
            assert!(last.0 <= first.0, "order across calls");
        }
        all.extend(rows);
    }
    (all, state)
}

fn out(time: i64, v: i64, w: Option<&str>) -> Out {
    (time, v, w.map(str::to_owned))
}

/// The semantics, pair by pair: what `run` must give (sorted) after a
/// final `watermark`.
fn expected(spec: &StreamJoinSpec, l: &[L], r: &[R], watermark: i64) -> Vec<Out> {
    let mut want = Vec::new();
    for &(tl, kl, v) in l {
        let mut matched = false;
        for &(tr, kr, w) in r {
            let hit = kl.is_some()
                && kl == kr
                && ((tr <= tl && tl - tr <= spec.right_window_ms)
                    || (tl <= tr && tr - tl <= spec.left_window_ms));
            if hit {
                matched = true;
                want.push(out(tl.max(tr), v, Some(w)));
            }
        }
        let end = tl + spec.left_window_ms;
        if spec.left_outer && !matched && end < watermark {
            want.push(out(end, v, None));
        }
    }
    want.sort();
    want
}

fn sorted(mut rows: Vec<Out>) -> Vec<Out> {
    rows.sort();
    rows
}

#[test]
fn a_right_window_matches_earlier_right_rows_inside_it_once() {
    let l: &[L] = &[(100, Some(1), 1), (200, Some(1), 2), (250, Some(2), 3)];
    let r: &[R] = &[(50, Some(1), "a"), (120, Some(1), "b"), (150, Some(2), "c")];
    let (rows, _) = run(spec(0, 100, false), &[(l, r, 1000)]);
    // 100 sees a (50) only (b is later, the left window is 0); 200 sees
    // b (120) but not a (150 ms back); 250 sees c (100 ms back).
    assert_eq!(
        rows,
        vec![
            out(100, 1, Some("a")),
            out(200, 2, Some("b")),
            out(250, 3, Some("c")),
        ]
    );
}

#[test]
fn windows_on_both_sides_match_either_way_round_at_the_later_rowtime() {
    let l: &[L] = &[(100, Some(1), 1), (300, Some(1), 2)];
    let r: &[R] = &[
        (80, Some(1), "early"),
        (130, Some(1), "late"),
        (400, Some(1), "x"),
    ];
    let s = spec(50, 30, false);
    let (rows, _) = run(s.clone(), &[(l, r, 1000)]);
    // 100 ⋈ early: the right row is 20 ms back (≤ 30); 100 ⋈ late: the
    // left row is 30 ms back (≤ 50); 300 and 400 are 100 ms apart.
    assert_eq!(
        rows,
        vec![out(100, 1, Some("early")), out(130, 1, Some("late"))]
    );
    assert_eq!(sorted(rows), expected(&s, l, r, 1000));
    // Just outside either window.
    let l: &[L] = &[(100, Some(1), 1)];
    let r: &[R] = &[(69, Some(1), "a"), (151, Some(1), "b")];
    assert!(run(s, &[(l, r, 1000)]).0.is_empty());
}

#[test]
fn equal_rowtimes_match_once_with_current_row_windows() {
    let l: &[L] = &[(10, Some(1), 1), (10, Some(1), 2), (11, Some(1), 3)];
    let r: &[R] = &[(10, Some(1), "a"), (11, Some(2), "b"), (12, Some(1), "c")];
    let (rows, state) = run(spec(0, 0, false), &[(l, r, 100)]);
    assert_eq!(
        sorted(rows),
        vec![out(10, 1, Some("a")), out(10, 2, Some("a"))]
    );
    assert_eq!(state.rows(), 0);
    // The right row at 10 coming in a call before the left ones changes
    // nothing.
    let calls: &[(&[L], &[R], i64)] = &[(&[], &r[..1], 10), (l, &r[1..], 100)];
    let (rows, _) = run(spec(0, 0, false), calls);
    assert_eq!(
        sorted(rows),
        vec![out(10, 1, Some("a")), out(10, 2, Some("a"))]
    );
}

#[test]
fn rows_split_across_calls_join_as_in_one_call() {
    let l: &[L] = &[
        (0, Some(1), 1),
        (5, Some(2), 2),
        (10, Some(1), 3),
        (10, None, 4),
        (25, Some(2), 5),
        (40, Some(1), 6),
        (41, Some(3), 7),
    ];
    let r: &[R] = &[
        (2, Some(1), "a"),
        (10, Some(1), "b"),
        (12, Some(2), "c"),
        (30, None, "d"),
        (33, Some(1), "e"),
        (45, Some(3), "f"),
    ];
    for left_outer in [false, true] {
        let s = spec(8, 10, left_outer);
        let (whole, _) = run(s.clone(), &[(l, r, 100)]);
        assert_eq!(sorted(whole.clone()), expected(&s, l, r, 100));
        let calls: &[(&[L], &[R], i64)] = &[
            (&l[..2], &r[..1], 10),
            (&l[2..4], &r[1..3], 11),
            (&[], &[], 20),
            (&l[4..5], &r[3..4], 33),
            (&[], &r[4..5], 40),
            (&l[5..], &r[5..], 100),
        ];
        let (split, state) = run(s, calls);
        assert_eq!(sorted(split), sorted(whole));
        assert_eq!(state.rows(), 0);
    }
}

#[test]
fn left_outer_gives_an_unmatched_row_once_at_its_window_end_after_the_watermark() {
    let s = spec(20, 0, true);
    let mut state = StreamJoinState::new(s);
    let (lb, lk) = left(&[(10, Some(1), 1), (12, Some(2), 2), (15, None, 3)]);
    // No right batch yet: nothing can come out before 30.
    assert!(state.advance(Some((&lb, &lk)), None, 16).is_none());
    let (rb, rk) = right(&[(25, Some(2), "b"), (29, None, "n")]);
    assert_eq!(
        rows_of(state.advance(None, Some((&rb, &rk)), 30)),
        vec![out(25, 2, Some("b"))]
    );
    // Row 1 ends at 30: out once the watermark passed 30.
    assert_eq!(
        rows_of(state.advance(None, None, 31)),
        vec![out(30, 1, None)]
    );
    assert!(state.advance(None, None, 31).is_none());
    // Row 2 matched: never unmatched; row 3 (NULL key) ends at 35.
    assert_eq!(
        rows_of(state.advance(None, None, 1000)),
        vec![out(35, 3, None)]
    );
    assert!(state.advance(None, None, 2000).is_none());
    assert_eq!(state.rows(), 0);
}

#[test]
fn an_unmatched_left_row_before_any_right_batch_has_the_right_schema() {
    let mut state = StreamJoinState::new(spec(0, 0, true));
    let (lb, lk) = left(&[(10, Some(1), 7)]);
    let b = state.advance(Some((&lb, &lk)), None, 11).unwrap();
    assert_eq!(b.schema().field(3).data_type(), &DataType::Utf8);
    assert_eq!(rows_of(Some(b)), vec![out(10, 7, None)]);
}

#[test]
fn null_keys_match_nothing() {
    let l: &[L] = &[(10, None, 1), (10, Some(1), 2)];
    let r: &[R] = &[(10, None, "n"), (10, Some(1), "a")];
    let (rows, _) = run(spec(5, 5, false), &[(l, r, 100)]);
    assert_eq!(rows, vec![out(10, 2, Some("a"))]);
    let (rows, _) = run(spec(5, 5, true), &[(l, r, 100)]);
    assert_eq!(sorted(rows), vec![out(10, 2, Some("a")), out(15, 1, None)]);
}

#[test]
fn buffers_empty_once_the_watermark_is_past_every_window() {
    let mut state = StreamJoinState::new(spec(60_000, 60_000, true));
    let (lb, lk) = left(&[(1_000, Some(1), 1), (2_000, Some(2), 2)]);
    let (rb, rk) = right(&[(1_500, Some(1), "a"), (1_600, Some(3), "c")]);
    let rows = rows_of(state.advance(Some((&lb, &lk)), Some((&rb, &rk)), 3_000));
    assert_eq!(rows, vec![out(1_500, 1, Some("a"))]);
    assert_eq!(state.rows(), 4);
    // Past 61 600 the right rows' windows and the first left row's
    // (matched) ended, not the second left row's (62 000).
    assert!(state.advance(None, None, 61_601).is_none());
    assert_eq!(state.rows(), 1);
    let rows = rows_of(state.advance(None, None, 1_000_000));
    assert_eq!(rows, vec![out(62_000, 2, None)]);
    assert_eq!(state.rows(), 0);
    assert!(state.left.stored.is_empty() && state.right.stored.is_empty());
}

#[test]
fn the_oldest_batch_is_copied_down_to_its_held_rows() {
    let mut state = StreamJoinState::new(spec(10, 10, false));
    let rows: Vec<L> = (0..100).map(|i| (i, Some(i % 3), i)).collect();
    let (lb, lk) = left(&rows);
    state.advance(Some((&lb, &lk)), None, 100);
    // Held: ROWTIME 90..99 of the 100 rows; the batch kept is theirs.
    assert_eq!(state.rows(), 10);
    assert_eq!(state.left.stored[0].batch.num_rows(), 10);
    let (rb, rk) = right(&[(105, Some(0), "z")]);
    let rows = rows_of(state.advance(None, Some((&rb, &rk)), 106));
    // 96 and 99 are within 10 ms of 105 with key 0.
    assert_eq!(rows, vec![out(105, 96, Some("z")), out(105, 99, Some("z"))]);
}

#[test]
fn random_streams_join_as_the_semantics_say_however_split() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    const TEXTS: [&str; 4] = ["a", "b", "c", "d"];
    for round in 0..200 {
        let (lw, rw) = (next(4) as i64 * 5, next(4) as i64 * 5);
        let s = spec(lw, rw, round % 2 == 0);
        let key = |k: u64| (k < 3).then_some(k as i64);
        let mut t = 0;
        let l: Vec<L> = (0..next(30))
            .map(|i| {
                t += next(4) as i64;
                (t, key(next(4)), i as i64)
            })
            .collect();
        t = 0;
        let r: Vec<R> = (0..next(30))
            .map(|_| {
                t += next(4) as i64;
                (t, key(next(4)), TEXTS[next(4) as usize])
            })
            .collect();
        // Watermarks cut both sides at the same times.
        let mut calls: Vec<(&[L], &[R], i64)> = Vec::new();
        let (mut li, mut ri, mut watermark) = (0, 0, 0);
        while li < l.len() || ri < r.len() {
            watermark += next(10) as i64;
            let le = li + l[li..].partition_point(|x| x.0 < watermark);
            let re = ri + r[ri..].partition_point(|x| x.0 < watermark);
            calls.push((&l[li..le], &r[ri..re], watermark));
            (li, ri) = (le, re);
        }
        let end = watermark + next(40) as i64;
        calls.push((&[], &[], end));
        let (rows, _) = run(s.clone(), &calls);
        assert_eq!(sorted(rows), expected(&s, &l, &r, end), "round {round}");
    }
}
