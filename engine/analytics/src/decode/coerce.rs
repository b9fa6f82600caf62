//! KDA's coercion of a source value (a JSON value or a CSV field) into a
//! column's SQL type, exactly per docs/analytics-design.md §2.2, and the
//! exact parsers it needs: numbers into integers and decimals without going
//! through f64, dates and times, `X'…'` binary. Pure functions; the failure
//! of one is a coercion error for the whole row (the caller's business).

use riffle_protocol::time::days_from_civil;

use crate::schema::SqlType;

/// A source value, its text given as a span of the record or of the row's
/// scratch text (where unescaped JSON strings go).
#[derive(Clone, Copy, Debug)]
pub(super) enum Src {
    Null,
    Bool(bool),
    /// A JSON number's text (checked grammar).
    Number(Span),
    /// A JSON string's content, unescaped; or a CSV field.
    Str(Span),
    /// An array's or object's JSON text.
    Json(Span),
}

/// Where text lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Span {
    /// In the row's scratch text, else in the record.
    pub scratch: bool,
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn record(start: usize, end: usize) -> Span {
        Span {
            scratch: false,
            start,
            end,
        }
    }

    fn text<'a>(self, record: &'a str, scratch: &'a str) -> &'a str {
        let from = if self.scratch { scratch } else { record };
        from.get(self.start..self.end).unwrap_or("")
    }

    fn prefix(self, len: usize) -> Span {
        Span {
            end: self.start + len,
            ..self
        }
    }
}

/// A coerced value waiting for the rest of its row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Staged {
    Null,
    Bool(bool),
    Int(i64),
    F32(f32),
    F64(f64),
    Dec(i128),
    Text(Span),
    /// A span of the row's scratch bytes.
    Bin(usize, usize),
    /// Days since 1970-01-01.
    Date(i32),
    /// Milliseconds since midnight.
    Time(i32),
    /// Milliseconds since the epoch.
    Ts(i64),
}

/// The row's scratch buffers.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    pub text: String,
    pub bin: Vec<u8>,
}

/// Coerces `src` into `ty`; `Err(())` is a coercion error (the caller names
/// the column, type and value). `csv` marks a CSV field: empty is NULL for
/// every type but text.
pub(super) fn coerce(
    src: Src,
    ty: SqlType,
    record: &str,
    scratch: &mut Scratch,
    csv: bool,
) -> Result<Staged, ()> {
    use SqlType as T;
    if let Src::Str(span) = src
        && csv
        && span.start == span.end
        && !ty.is_text()
    {
        return Ok(Staged::Null);
    }
    let text_len = match ty {
        T::Char { len } | T::Varchar { len } => Some(len as usize),
        _ => None,
    };
    if let Some(len) = text_len {
        return Ok(match src {
            Src::Null => Staged::Null,
            Src::Bool(b) => {
                let word = if b { "true" } else { "false" };
                let start = scratch.text.len();
                scratch.text.push_str(&word[..word.len().min(len)]);
                Staged::Text(Span {
                    scratch: true,
                    start,
                    end: scratch.text.len(),
                })
            }
            Src::Number(s) | Src::Str(s) | Src::Json(s) => {
                Staged::Text(s.prefix(char_prefix(s.text(record, &scratch.text), len)))
            }
        });
    }
    if let T::Binary { len } | T::Varbinary { len } = ty {
        let start = scratch.bin.len();
        match src {
            Src::Null => return Ok(Staged::Null),
            Src::Bool(b) => scratch.bin.push(u8::from(b)),
            Src::Str(s) => hex_literal(s.text(record, &scratch.text), &mut scratch.bin)?,
            Src::Number(_) | Src::Json(_) => return Err(()),
        }
        scratch.bin.truncate(start + len as usize);
        return Ok(Staged::Bin(start, scratch.bin.len()));
    }
    let text = match src {
        Src::Null => return Ok(Staged::Null),
        Src::Json(_) => return Err(()),
        Src::Bool(b) => {
            return match ty {
                T::Boolean => Ok(Staged::Bool(b)),
                T::Real => Ok(Staged::F32(f32::from(u8::from(b)))),
                T::Double => Ok(Staged::F64(f64::from(u8::from(b)))),
                T::TinyInt | T::SmallInt | T::Integer | T::BigInt => Ok(Staged::Int(i64::from(b))),
                T::Decimal { precision, scale } => {
                    decimal(&Exact::of_int(i128::from(b)), precision, scale)
                        .map(Staged::Dec)
                        .ok_or(())
                }
                _ => Err(()),
            };
        }
        Src::Number(s) => {
            if matches!(ty, T::Date | T::Time | T::Timestamp) {
                return Err(());
            }
            s.text(record, &scratch.text)
        }
        Src::Str(s) => {
            let text = s.text(record, &scratch.text);
            match ty {
                // Never an error: anything but "true" is false.
                T::Boolean => return Ok(Staged::Bool(text.eq_ignore_ascii_case("true"))),
                T::Date => return date(text.trim()).map(Staged::Date).ok_or(()),
                T::Time => return time(text.trim()).map(Staged::Time).ok_or(()),
                T::Timestamp => return timestamp(text.trim()).map(Staged::Ts).ok_or(()),
                _ => text.trim(),
            }
        }
    };
    // A number's text, or a string's, into a numeric or BOOLEAN column.
    let bounds = match ty {
        T::TinyInt => Some((i8::MIN.into(), i8::MAX.into())),
        T::SmallInt => Some((i16::MIN.into(), i16::MAX.into())),
        T::Integer => Some((i32::MIN.into(), i32::MAX.into())),
        T::BigInt => Some((i64::MIN, i64::MAX)),
        _ => None,
    };
    // Most integers are plain digits: read without the exact parser.
    if let (Some((min, max)), Some(v)) = (bounds, plain_integer(text.as_bytes())) {
        return (min..=max).contains(&v).then_some(Staged::Int(v)).ok_or(());
    }
    let exact = Exact::parse(text.as_bytes()).ok_or(())?;
    match ty {
        T::Boolean => Ok(Staged::Bool(!exact.zero)),
        T::TinyInt => integer(&exact, i8::MIN.into(), i8::MAX.into()),
        T::SmallInt => integer(&exact, i16::MIN.into(), i16::MAX.into()),
        T::Integer => integer(&exact, i32::MIN.into(), i32::MAX.into()),
        T::BigInt => integer(&exact, i64::MIN.into(), i64::MAX.into()),
        T::Real => text
            .parse::<f32>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Staged::F32)
            .ok_or(()),
        T::Double => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Staged::F64)
            .ok_or(()),
        T::Decimal { precision, scale } => {
            decimal(&exact, precision, scale).map(Staged::Dec).ok_or(())
        }
        _ => Err(()),
    }
}

/// `-?[0-9]{1,18}` as an i64 (None for any other text: the exact parser
/// reads it).
fn plain_integer(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(if negative { -v } else { v })
}

fn integer(exact: &Exact, min: i128, max: i128) -> Result<Staged, ()> {
    let v = exact
        .scaled(0)
        .filter(|v| (min..=max).contains(v))
        .ok_or(())?;
    i64::try_from(v).map(Staged::Int).map_err(|_| ())
}

/// The value as a Decimal128 of `precision` and `scale`, if it fits exactly.
fn decimal(exact: &Exact, precision: u8, scale: i8) -> Option<i128> {
    let v = exact.scaled(i64::from(scale))?;
    let bound = 10i128.checked_pow(u32::from(precision))?;
    (v.abs() < bound).then_some(v)
}

/// How many bytes of `s` its first `chars` characters take.
pub(super) fn char_prefix(s: &str, chars: usize) -> usize {
    if s.len() <= chars {
        return s.len();
    }
    s.char_indices().nth(chars).map_or(s.len(), |(i, _)| i)
}

/// A number read exactly: `±mantissa × 10^exp10`, trailing zeros moved into
/// the exponent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Exact {
    pub negative: bool,
    /// `None` if it has more than 38 significant digits.
    pub mantissa: Option<i128>,
    pub exp10: i64,
    pub zero: bool,
}

/// Significant digits an i128 always holds.
const DIGITS_MAX: usize = 38;

impl Exact {
    fn of_int(v: i128) -> Exact {
        Exact {
            negative: v < 0,
            mantissa: Some(v.abs()),
            exp10: 0,
            zero: v == 0,
        }
    }

    /// Parses `[+-]? digits? (. digits?)? ([eE] [+-]? digits)?` with at least
    /// one mantissa digit (JSON numbers are a subset).
    pub fn parse(s: &[u8]) -> Option<Exact> {
        let mut i = 0;
        let negative = match s.first() {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let digits_at = |from: usize| s[from..].iter().take_while(|c| c.is_ascii_digit()).count();
        let int = &s[i..i + digits_at(i)];
        i += int.len();
        let mut frac: &[u8] = &[];
        if s.get(i) == Some(&b'.') {
            i += 1;
            frac = &s[i..i + digits_at(i)];
            i += frac.len();
        }
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let mut exp: i64 = 0;
        if let Some(b'e' | b'E') = s.get(i) {
            i += 1;
            let exp_negative = match s.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let n = digits_at(i);
            if n == 0 {
                return None;
            }
            for &d in &s[i..i + n] {
                // Saturates far beyond any exponent a column can hold.
                exp = (exp * 10 + i64::from(d - b'0')).min(1_000_000_000);
            }
            i += n;
            if exp_negative {
                exp = -exp;
            }
        }
        if i != s.len() {
            return None;
        }
        let all = || int.iter().chain(frac.iter());
        let total = int.len() + frac.len();
        let Some(first) = all().position(|&d| d != b'0') else {
            return Some(Exact {
                negative,
                mantissa: Some(0),
                exp10: 0,
                zero: true,
            });
        };
        let trailing = all().rev().take_while(|&&d| d == b'0').count();
        let last = total - 1 - trailing;
        let significant = last + 1 - first;
        let mantissa = (significant <= DIGITS_MAX).then(|| {
            all()
                .skip(first)
                .take(significant)
                .fold(0i128, |m, &d| m * 10 + i128::from(d - b'0'))
        });
        Some(Exact {
            negative,
            mantissa,
            exp10: exp - frac.len() as i64 + trailing as i64,
            zero: false,
        })
    }

    /// The value times `10^scale` as an integer, if that is exact and fits.
    pub fn scaled(&self, scale: i64) -> Option<i128> {
        if self.zero {
            return Some(0);
        }
        let k = self.exp10.checked_add(scale)?;
        if k < 0 {
            return None;
        }
        let v = self
            .mantissa?
            .checked_mul(10i128.checked_pow(u32::try_from(k).ok()?)?)?;
        Some(if self.negative { -v } else { v })
    }
}

/// `X'3F67A23A'` (even hex digits; `x` too) appended to `out` as bytes.
fn hex_literal(s: &str, out: &mut Vec<u8>) -> Result<(), ()> {
    let body = s
        .strip_prefix(['X', 'x'])
        .and_then(|r| r.strip_prefix('\''))
        .and_then(|r| r.strip_suffix('\''))
        .ok_or(())?;
    if body.len() % 2 != 0 {
        return Err(());
    }
    for pair in body.as_bytes().chunks_exact(2) {
        let hi = (pair[0] as char).to_digit(16).ok_or(())?;
        let lo = (pair[1] as char).to_digit(16).ok_or(())?;
        out.push((hi * 16 + lo) as u8);
    }
    Ok(())
}

/// Exactly `n` ASCII digits at the start of `s`, as a number.
fn fixed(s: &[u8], n: usize) -> Option<u32> {
    let d = s.get(..n)?;
    d.iter().try_fold(0u32, |v, &c| {
        c.is_ascii_digit().then(|| v * 10 + u32::from(c - b'0'))
    })
}

/// `YYYY-MM-DD` (the date part of `s`); returns the days and the rest.
fn date_prefix(s: &[u8]) -> Option<(i64, &[u8])> {
    // A column's dates mostly repeat from row to row: the last valid one
    // read on this thread is kept, its ten bytes against its days.
    thread_local! {
        static LAST: std::cell::Cell<([u8; 10], i64)> = const { std::cell::Cell::new((*b"1970-01-01", 0)) };
    }
    let head: &[u8; 10] = s.get(..10)?.try_into().ok()?;
    let (text, days) = LAST.get();
    if text == *head {
        return Some((days, &s[10..]));
    }
    let (days, rest) = parse_date(s)?;
    LAST.set((*head, days));
    Some((days, rest))
}

fn parse_date(s: &[u8]) -> Option<(i64, &[u8])> {
    let y = fixed(s, 4)?;
    let m = fixed(s.get(5..)?, 2)?;
    let d = fixed(s.get(8..)?, 2)?;
    if s[4] != b'-' || s[7] != b'-' || !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in_month = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    (d <= days_in_month).then(|| {
        let days = days_from_civil(i64::from(y), i64::from(m), i64::from(d));
        (days, &s[10..])
    })
}

/// `HH:MM:SS[.f…]` (fraction up to 9 digits, kept to milliseconds); the
/// milliseconds since midnight and the rest.
fn time_prefix(s: &[u8]) -> Option<(i64, &[u8])> {
    let h = fixed(s, 2)?;
    let m = fixed(s.get(3..)?, 2)?;
    let sec = fixed(s.get(6..)?, 2)?;
    if s[2] != b':' || s[5] != b':' || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let mut ms = 0;
    let mut rest = &s[8..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        for i in 0..3 {
            ms = ms * 10
                + frac
                    .get(i)
                    .filter(|_| i < n)
                    .map_or(0, |c| i64::from(c - b'0'));
        }
        rest = &frac[n..];
    }
    Some((
        i64::from(h * 3_600_000 + m * 60_000 + sec * 1000) + ms,
        rest,
    ))
}

/// `1992-02-14`.
pub(super) fn date(s: &str) -> Option<i32> {
    match date_prefix(s.as_bytes())? {
        (days, []) => i32::try_from(days).ok(),
        _ => None,
    }
}

/// `18:35:44` or `18:35:44.123`.
pub(super) fn time(s: &str) -> Option<i32> {
    match time_prefix(s.as_bytes())? {
        (ms, []) => i32::try_from(ms).ok(),
        _ => None,
    }
}

/// `1992-02-14`, `1992-02-14 18:35:44.0`, `1992-02-14T18:35:44.123`, with an
/// optional `Z` (times are UTC).
pub(crate) fn timestamp(s: &str) -> Option<i64> {
    let (days, rest) = date_prefix(s.as_bytes())?;
    let (ms, rest) = match rest.split_first() {
        None => (0, rest),
        Some((b' ' | b'T', time)) => time_prefix(time)?,
        Some(_) => return None,
    };
    matches!(rest, [] | [b'Z']).then_some(days * 86_400_000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_integers_read_as_the_exact_parser_reads_them() {
        let texts = [
            "0",
            "-0",
            "7",
            "007",
            "-12",
            "123456789012345678",
            "-999999999999999999",
            "1234567890123456789",
            "9223372036854775807",
            "-9223372036854775808",
            "+7",
            "1.0",
            "1e3",
            "",
            "-",
            "12a",
            " 1",
            "128",
            "-129",
            "32768",
            "2147483648",
        ];
        for text in texts {
            for (min, max) in [(-128, 127), (-32768, 32767), (i64::MIN, i64::MAX)] {
                let exact = Exact::parse(text.as_bytes())
                    .ok_or(())
                    .and_then(|e| integer(&e, min.into(), max.into()));
                let fast = plain_integer(text.as_bytes())
                    .map(|v| (min..=max).contains(&v).then_some(Staged::Int(v)).ok_or(()));
                if let Some(fast) = fast {
                    assert_eq!(fast, exact, "{text:?} in {min}..={max}");
                }
            }
        }
        assert_eq!(plain_integer(b"-42"), Some(-42));
        assert_eq!(
            plain_integer(b"1234567890123456789"),
            None,
            "19 digits: the exact parser"
        );
        assert_eq!(plain_integer(b"+7"), None);
    }

    #[test]
    fn exact_numbers() {
        type Parts = Option<(bool, Option<i128>, i64)>;
        let cases: &[(&str, Parts)] = &[
            ("0", Some((false, Some(0), 0))),
            ("-0.000", Some((true, Some(0), 0))),
            ("123", Some((false, Some(123), 0))),
            ("123.40", Some((false, Some(1234), -1))),
            ("1200", Some((false, Some(12), 2))),
            ("1e2", Some((false, Some(1), 2))),
            ("-4.5E-3", Some((true, Some(45), -4))),
            ("+7", Some((false, Some(7), 0))),
            (".5", Some((false, Some(5), -1))),
            ("5.", Some((false, Some(5), 0))),
            (
                "1.000000000000000000000000000000000000000000000",
                Some((false, Some(1), 0)),
            ),
            (
                "123456789012345678901234567890123456789",
                Some((false, None, 0)),
            ),
            ("", None),
            (".", None),
            ("1e", None),
            ("abc", None),
            ("1 ", None),
            ("--1", None),
            ("0x10", None),
        ];
        for (text, want) in cases {
            let got = Exact::parse(text.as_bytes()).map(|e| (e.negative, e.mantissa, e.exp10));
            assert_eq!(got, *want, "{text:?}");
        }
        let scaled = |t: &str, s: i64| Exact::parse(t.as_bytes()).and_then(|e| e.scaled(s));
        assert_eq!(scaled("123.45", 2), Some(12345));
        assert_eq!(scaled("-123.45", 3), Some(-123450));
        assert_eq!(scaled("123.456", 2), None);
        assert_eq!(scaled("1e38", 0), Some(10i128.pow(38)));
        assert_eq!(scaled("1e39", 0), None);
        assert_eq!(scaled("1e999999999999", 0), None);
        assert_eq!(scaled("1e-999999999999", 0), None);
        assert_eq!(scaled("0e999999999999", 0), Some(0));
    }

    #[test]
    fn the_kept_date_answers_only_its_own_bytes() {
        // Valid and invalid dates in turn, each after itself and the
        // others: the date kept from the last row never answers for another.
        let cases = [
            ("2026-01-01 00:00:01", Some(1_767_225_601_000)),
            ("2026-02-30 00:00:01", None),
            ("2026-01-01x00:00:01", None),
            ("2026-01-02 00:00:01", Some(1_767_312_001_000)),
            ("1970-01-01 00:00:00", Some(0)),
            ("\0\0\0\0\0\0\0\0\0\0 00:00:00", None),
        ];
        for _ in 0..2 {
            for (text, ms) in cases {
                assert_eq!(timestamp(text), ms, "{text:?}");
                assert_eq!(timestamp(text), ms, "{text:?} again");
            }
        }
        assert_eq!(date("2026-01-01"), Some(20_454));
        assert_eq!(date("2026-01-01 "), None);
    }

    #[test]
    fn dates_times_timestamps() {
        assert_eq!(date("1970-01-01"), Some(0));
        assert_eq!(date("1992-02-14"), Some(8079));
        assert_eq!(date("2000-02-29"), Some(11016));
        assert_eq!(date("1969-12-31"), Some(-1));
        for bad in [
            "1900-02-29",
            "1992-13-01",
            "1992-00-10",
            "1992-04-31",
            "92-02-14",
            "1992/02/14",
            "1992-02-14x",
            "",
        ] {
            assert_eq!(date(bad), None, "{bad}");
        }
        assert_eq!(time("00:00:00"), Some(0));
        assert_eq!(time("18:35:44.5"), Some(66_944_500));
        assert_eq!(time("23:59:59.999999"), Some(86_399_999));
        for bad in [
            "24:00:00",
            "12:60:00",
            "12:00",
            "12:00:00.",
            "12:00:00.1234567890",
        ] {
            assert_eq!(time(bad), None, "{bad}");
        }
        let ts_1992 = 8079 * 86_400_000i64;
        let cases = [
            ("1992-02-14", Some(ts_1992)),
            ("1992-02-14 18:35:44.0", Some(ts_1992 + 66_944_000)),
            ("1992-02-14T18:35:44.123", Some(ts_1992 + 66_944_123)),
            ("1992-02-14T18:35:44.123456Z", Some(ts_1992 + 66_944_123)),
            ("1992-02-14 18:35:44", Some(ts_1992 + 66_944_000)),
            ("1992-02-14 18:35", None),
            ("1992-02-14X18:35:44", None),
            ("1992-02-14 18:35:44+02:00", None),
        ];
        for (text, want) in cases {
            assert_eq!(timestamp(text), want, "{text}");
        }
    }

    #[test]
    fn hex_literals() {
        let mut out = Vec::new();
        assert_eq!(hex_literal("X'3F67A23A'", &mut out), Ok(()));
        assert_eq!(out, [0x3F, 0x67, 0xA2, 0x3A]);
        out.clear();
        assert_eq!(hex_literal("x'ff'", &mut out), Ok(()));
        assert_eq!(out, [0xFF]);
        for bad in ["X'3F6'", "3F67", "X'GG'", "X'3F", "Y'00'"] {
            assert_eq!(hex_literal(bad, &mut Vec::new()), Err(()), "{bad}");
        }
    }

    #[test]
    fn char_prefixes_count_characters() {
        assert_eq!(char_prefix("HEALTHCARE", 4), 4);
        assert_eq!(char_prefix("QXZ", 4), 3);
        assert_eq!(char_prefix("ééé", 2), 4);
        assert_eq!(char_prefix("", 2), 0);
    }
}
