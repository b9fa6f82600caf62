//! Dates and timestamps as the two JSON SerDes read them: the OpenX rules, Hive's
//! default (`java.sql.Timestamp::valueOf`), `millis`, and a subset of Joda-Time
//! patterns compiled once (`JodaPattern`).
//!
//! Results are days (dates) or microseconds (timestamps) since 1970-01-01 UTC. A
//! value without an offset is a UTC wall clock (Firehose's JVMs run in UTC); one with
//! an offset (`Z` patterns) is moved to UTC. Digits finer than a microsecond are cut.
//! Years are kept in Hive's range 0001..=9999.
//!
//! Calendar arithmetic comes from `riffle_protocol::time` (a small pure crate every
//! Firehose build already has).

use crate::number;

/// Microseconds per second, and the Hive year range.
const MICROS_PER_SECOND: i64 = 1_000_000;
const YEAR_MIN: i64 = 1;
const YEAR_MAX: i64 = 9999;
/// The most `y` letters a Joda pattern may have: a year of up to 9 digits, so digit
/// runs always fit an i64.
const YEAR_LETTERS_MAX: usize = 9;

/// Days since 1970-01-01 of a proleptic Gregorian date (no range check).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    riffle_protocol::time::days_from_civil(year, i64::from(month), i64::from(day))
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Calendar fields read from a text; `to_micros` checks and combines them.
#[derive(Clone, Copy, Debug)]
struct Fields {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    offset_seconds: i64,
}

impl Default for Fields {
    fn default() -> Self {
        Fields {
            year: 1970,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            nanos: 0,
            offset_seconds: 0,
        }
    }
}

impl Fields {
    fn check_date(&self) -> Option<i64> {
        if !(YEAR_MIN..=YEAR_MAX).contains(&self.year)
            || !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
        {
            return None;
        }
        Some(days_from_civil(self.year, self.month, self.day))
    }

    fn to_micros(self) -> Option<i64> {
        let days = self.check_date()?;
        if self.hour > 23 || self.minute > 59 || self.second > 59 || self.nanos > 999_999_999 {
            return None;
        }
        let seconds = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - self.offset_seconds;
        Some(seconds * MICROS_PER_SECOND + i64::from(self.nanos / 1000))
    }
}

/// A cursor over the text being parsed.
struct Scan<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Scan<'a> {
    fn new(s: &'a str) -> Self {
        Scan {
            s: s.as_bytes(),
            pos: 0,
        }
    }
    fn done(&self) -> bool {
        self.pos == self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    /// Between `min` and `max` ASCII digits, greedily; their value and count. None
    /// also when the value would overflow an i64.
    fn digits(&mut self, min: usize, max: usize) -> Option<(i64, usize)> {
        let start = self.pos;
        let mut value: i64 = 0;
        while self.pos - start < max {
            match self.peek() {
                Some(b @ b'0'..=b'9') => {
                    value = value.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
                    self.pos += 1;
                }
                _ => break,
            }
        }
        let count = self.pos - start;
        (count >= min).then_some((value, count))
    }
    /// A fraction of a second: 1..=9 digits as nanoseconds (further digits are read
    /// and dropped).
    fn fraction(&mut self) -> Option<u32> {
        let (value, count) = self.digits(1, 9)?;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        Some((value * 10i64.pow((9 - count) as u32)) as u32)
    }
    /// `yyyy-[M]M-[d]d`.
    fn date(&mut self, f: &mut Fields) -> Option<()> {
        f.year = self.digits(4, 4)?.0;
        self.eat(b'-').then_some(())?;
        f.month = self.digits(1, 2)?.0 as u32;
        self.eat(b'-').then_some(())?;
        f.day = self.digits(1, 2)?.0 as u32;
        Some(())
    }
    /// `HH:mm:ss[.f...]`.
    fn time(&mut self, f: &mut Fields) -> Option<()> {
        f.hour = self.digits(1, 2)?.0 as u32;
        self.eat(b':').then_some(())?;
        f.minute = self.digits(2, 2)?.0 as u32;
        self.eat(b':').then_some(())?;
        f.second = self.digits(2, 2)?.0 as u32;
        if self.eat(b'.') {
            f.nanos = self.fraction()?;
        }
        Some(())
    }
}

/// A DATE column's text: `yyyy-[M]M-[d]d`, optionally followed by a time after `T`
/// or a space (ignored), as Hive's `Date.valueOf` reads it. Days since the epoch.
pub fn parse_date(text: &str) -> Option<i32> {
    let mut scan = Scan::new(text.trim());
    let mut f = Fields::default();
    scan.date(&mut f)?;
    if !scan.done() && !scan.eat(b'T') && !scan.eat(b' ') {
        return None;
    }
    i32::try_from(f.check_date()?).ok()
}

/// `java.sql.Timestamp::valueOf`: `yyyy-[M]M-[d]d HH:mm:ss[.fffffffff]`.
pub fn parse_hive_default(text: &str) -> Option<i64> {
    let mut scan = Scan::new(text.trim());
    let mut f = Fields::default();
    scan.date(&mut f)?;
    scan.eat(b' ').then_some(())?;
    scan.time(&mut f)?;
    scan.done().then_some(())?;
    f.to_micros()
}

/// OpenX's text forms: `yyyy-MM-dd'T'HH:mm:ss[.S]'Z'` and `yyyy-[M]M-[d]d HH:mm:ss[.S]`.
fn parse_openx_datetime(text: &str) -> Option<i64> {
    let mut scan = Scan::new(text);
    let mut f = Fields::default();
    scan.date(&mut f)?;
    let iso = scan.eat(b'T');
    if !iso {
        scan.eat(b' ').then_some(())?;
    }
    scan.time(&mut f)?;
    if iso {
        scan.eat(b'Z').then_some(())?;
    } else {
        scan.eat(b'Z');
    }
    scan.done().then_some(())?;
    f.to_micros()
}

/// Whole seconds or milliseconds since the epoch as OpenX tells them apart: an integer
/// of 13 digits or more is milliseconds, a shorter one seconds.
fn openx_epoch_integer(digits: &str) -> Option<i64> {
    let value: i64 = digits.parse().ok()?;
    let unsigned = digits.strip_prefix('-').unwrap_or(digits);
    let micros_per_unit = if unsigned.len() >= 13 {
        1000
    } else {
        MICROS_PER_SECOND
    };
    checked_in_range(value.checked_mul(micros_per_unit)?)
}

/// Fractional seconds since the epoch (`1486210511.25`, `1.5e9`), read exactly and
/// rounded half away from zero to a microsecond.
fn epoch_float_seconds(text: &str) -> Option<i64> {
    let micros = number::decimal(text, 38, 6).ok()?;
    checked_in_range(i64::try_from(micros).ok()?)
}

/// Keeps epoch values inside years 0001..=9999 like the text forms.
fn checked_in_range(micros: i64) -> Option<i64> {
    let min = days_from_civil(YEAR_MIN, 1, 1) * 86_400 * MICROS_PER_SECOND;
    let max = days_from_civil(YEAR_MAX + 1, 1, 1) * 86_400 * MICROS_PER_SECOND - 1;
    (min..=max).contains(&micros).then_some(micros)
}

/// An OpenX timestamp from a JSON string or a JSON number's text: a date-time (it has
/// a `:`), float epoch seconds (it has a `.` or an exponent), or integer epoch
/// seconds/milliseconds (13+ digits).
pub fn parse_openx_text(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.contains(':') {
        parse_openx_datetime(text)
    } else if text.contains('.') || text.contains(['e', 'E']) {
        epoch_float_seconds(text)
    } else {
        openx_epoch_integer(text)
    }
}

/// Epoch milliseconds (Hive's special format `millis`), from the text of a JSON
/// number or string.
pub fn parse_millis(text: &str) -> Option<i64> {
    let millis: i64 = text.trim().parse().ok()?;
    checked_in_range(millis.checked_mul(1000)?)
}

/// One element of a compiled Joda pattern.
#[derive(Clone, Debug, PartialEq)]
enum Item {
    Literal(String),
    /// `y...`: up to `max_digits` digits (the count when a numeric field follows, 9
    /// otherwise), an optional sign.
    Year {
        max_digits: usize,
    },
    /// `yy`: two digits around the pivot; any other digit count is a full year when
    /// no numeric field follows (Joda's lenient parse).
    TwoDigitYear {
        lenient: bool,
    },
    Month,
    MonthText,
    Day,
    Hour24,
    Hour12,
    HalfDay,
    Minute,
    Second,
    Fraction,
    Offset,
    DayOfWeekText,
}

impl Item {
    fn is_numeric(&self) -> bool {
        !matches!(
            self,
            Item::Literal(_) | Item::MonthText | Item::HalfDay | Item::Offset | Item::DayOfWeekText
        )
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// The letters `JodaPattern` understands.
pub const JODA_LETTERS: &str = "y M d H h a m s S Z E";

/// A Joda-Time `DateTimeFormat` pattern, compiled. Supported letters: `y` (`yyyy`,
/// `yy`), `M` (`M`, `MM`, `MMM`/`MMMM` English names), `d`, `H`, `h` with `a`, `m`,
/// `s`, `S...` (fraction), `Z`/`ZZ` (offset `Z`, `+HH`, `+HHmm`, `+HH:mm`), `E`
/// (English day names, read and ignored), `'literal'` and `''`; other characters are
/// literals. Other letters are refused when the pattern is compiled.
#[derive(Clone, Debug, PartialEq)]
pub struct JodaPattern {
    items: Vec<Item>,
    /// Two-digit years fall in `pivot - 50 ..= pivot + 49` (Joda: this year - 30).
    pivot_year: i64,
}

impl JodaPattern {
    pub fn compile(pattern: &str, this_year: i64) -> Result<JodaPattern, String> {
        let mut raw: Vec<(char, usize)> = Vec::new(); // (letter, count); '\0' = literal
        let mut literals: Vec<String> = Vec::new();
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                let mut text = String::new();
                if chars.get(i + 1) == Some(&'\'') {
                    text.push('\'');
                    i += 2;
                } else {
                    i += 1;
                    loop {
                        match chars.get(i) {
                            None => {
                                return Err(format!(
                                    "timestamp format \"{pattern}\": unterminated quoted literal"
                                ));
                            }
                            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                                text.push('\'');
                                i += 2;
                            }
                            Some('\'') => {
                                i += 1;
                                break;
                            }
                            Some(&other) => {
                                text.push(other);
                                i += 1;
                            }
                        }
                    }
                }
                raw.push(('\0', literals.len()));
                literals.push(text);
            } else if c.is_ascii_alphabetic() {
                let mut count = 1;
                while chars.get(i + count) == Some(&c) {
                    count += 1;
                }
                if !"yMdHhamsSZE".contains(c) {
                    return Err(format!(
                        "timestamp format \"{pattern}\": unsupported Joda pattern letter '{c}' (supported: {JODA_LETTERS}, 'quoted text')"
                    ));
                }
                if c == 'y' && count > YEAR_LETTERS_MAX {
                    return Err(format!(
                        "timestamp format \"{pattern}\": more than {YEAR_LETTERS_MAX} 'y' letters (a year has at most 9 digits)"
                    ));
                }
                if c == 'Z' && count > 2 {
                    return Err(format!(
                        "timestamp format \"{pattern}\": time zone ids (ZZZ) are not supported; use Z or ZZ for an offset"
                    ));
                }
                raw.push((c, count));
                i += count;
            } else {
                raw.push(('\0', literals.len()));
                literals.push(c.to_string());
                i += 1;
            }
        }
        let mut items: Vec<Item> = Vec::with_capacity(raw.len());
        for (index, &(c, count)) in raw.iter().enumerate() {
            let next_numeric = raw
                .get(index + 1)
                .is_some_and(|&(n, ncount)| "yHhmsSd".contains(n) || (n == 'M' && ncount < 3));
            let item = match c {
                '\0' => Item::Literal(literals[count].clone()),
                'y' if count == 2 => Item::TwoDigitYear {
                    lenient: !next_numeric,
                },
                'y' => Item::Year {
                    max_digits: if next_numeric { count.max(4) } else { 9 },
                },
                'M' if count >= 3 => Item::MonthText,
                'M' => Item::Month,
                'd' => Item::Day,
                'H' => Item::Hour24,
                'h' => Item::Hour12,
                'a' => Item::HalfDay,
                'm' => Item::Minute,
                's' => Item::Second,
                'S' => Item::Fraction,
                'Z' => Item::Offset,
                'E' => Item::DayOfWeekText,
                _ => unreachable!("letters were checked above"),
            };
            // Merge adjacent literals.
            if let (Item::Literal(text), Some(Item::Literal(prev))) = (&item, items.last_mut()) {
                prev.push_str(text);
                continue;
            }
            items.push(item);
        }
        if !items.iter().any(Item::is_numeric) {
            return Err(format!(
                "timestamp format \"{pattern}\": it has no date or time field"
            ));
        }
        Ok(JodaPattern {
            items,
            pivot_year: this_year - 30,
        })
    }

    /// Microseconds since the epoch, or None when the text does not match entirely.
    pub fn parse(&self, text: &str) -> Option<i64> {
        let mut scan = Scan::new(text);
        let mut f = Fields::default();
        let mut hour12: Option<u32> = None;
        let mut pm = false;
        for item in &self.items {
            match item {
                Item::Literal(lit) => {
                    let rest = scan.s.get(scan.pos..)?;
                    rest.starts_with(lit.as_bytes()).then_some(())?;
                    scan.pos += lit.len();
                }
                Item::Year { max_digits } => {
                    let negative = scan.eat(b'-');
                    if !negative {
                        scan.eat(b'+');
                    }
                    let (y, _) = scan.digits(1, *max_digits)?;
                    f.year = if negative { -y } else { y };
                }
                Item::TwoDigitYear { lenient } => {
                    let (y, count) = scan.digits(1, if *lenient { 9 } else { 2 })?;
                    f.year = if count == 2 {
                        let low = self.pivot_year - 50;
                        let base = low - low.rem_euclid(100);
                        let candidate = base + y;
                        if candidate < low {
                            candidate + 100
                        } else {
                            candidate
                        }
                    } else if *lenient {
                        y
                    } else {
                        return None;
                    };
                }
                Item::Month => f.month = scan.digits(1, 2)?.0 as u32,
                Item::MonthText => f.month = read_name(&mut scan, &MONTHS)? as u32 + 1,
                Item::Day => f.day = scan.digits(1, 2)?.0 as u32,
                Item::Hour24 => f.hour = scan.digits(1, 2)?.0 as u32,
                Item::Hour12 => hour12 = Some(scan.digits(1, 2)?.0 as u32),
                Item::HalfDay => {
                    let rest = scan.s.get(scan.pos..scan.pos + 2)?;
                    pm = if rest.eq_ignore_ascii_case(b"pm") {
                        true
                    } else if rest.eq_ignore_ascii_case(b"am") {
                        false
                    } else {
                        return None;
                    };
                    scan.pos += 2;
                }
                Item::Minute => f.minute = scan.digits(1, 2)?.0 as u32,
                Item::Second => f.second = scan.digits(1, 2)?.0 as u32,
                Item::Fraction => f.nanos = scan.fraction()?,
                Item::Offset => f.offset_seconds = read_offset(&mut scan)?,
                Item::DayOfWeekText => {
                    read_name(&mut scan, &WEEKDAYS)?;
                }
            }
        }
        if let Some(h) = hour12 {
            if !(1..=12).contains(&h) {
                return None;
            }
            f.hour = h % 12 + if pm { 12 } else { 0 };
        }
        scan.done().then_some(())?;
        f.to_micros()
    }
}

/// A full or three-letter English name, case-insensitively; its index.
fn read_name(scan: &mut Scan<'_>, names: &[&str]) -> Option<usize> {
    let rest = &scan.s[scan.pos..];
    for (index, name) in names.iter().enumerate() {
        for candidate in [name.as_bytes(), &name.as_bytes()[..3]] {
            if rest.len() >= candidate.len()
                && rest[..candidate.len()].eq_ignore_ascii_case(candidate)
            {
                scan.pos += candidate.len();
                return Some(index);
            }
        }
    }
    None
}

/// `Z`, or `+HH`, `+HHmm`, `+HH:mm` (and `-`): seconds east of UTC.
fn read_offset(scan: &mut Scan<'_>) -> Option<i64> {
    if scan.eat(b'Z') {
        return Some(0);
    }
    let sign = if scan.eat(b'+') {
        1
    } else if scan.eat(b'-') {
        -1
    } else {
        return None;
    };
    let (hours, _) = scan.digits(2, 2)?;
    let colon = scan.eat(b':');
    let minutes = match scan.digits(2, 2) {
        Some((m, _)) => m,
        None if colon => return None,
        None => 0,
    };
    (hours <= 23 && minutes <= 59).then_some(sign * (hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Microseconds of a UTC date-time.
    fn at(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, micros: i64) -> i64 {
        (days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s)) * 1_000_000
            + micros
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(
            parse_date("2024-2-9"),
            Some(days_from_civil(2024, 2, 9) as i32)
        );
        assert_eq!(parse_date("2024-02-29T10:00:00Z"), Some(19_782));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2023-13-01"), None);
        assert_eq!(parse_date("20230101"), None);
        assert_eq!(parse_date("2023-01-01x"), None);
    }

    #[test]
    fn openx_forms() {
        let noon = at(2017, 2, 4, 12, 15, 11, 0);
        for (text, expected) in [
            ("2017-02-04T12:15:11Z", Some(noon)),
            ("2017-02-04T12:15:11.5Z", Some(noon + 500_000)),
            ("2017-02-04 12:15:11", Some(noon)),
            ("2017-2-4 12:15:11.123456789", Some(noon + 123_456)),
            ("1486210511", Some(noon)),
            ("1486210511000", Some(noon)),
            ("1486210511.25", Some(noon + 250_000)),
            ("2017-02-04T12:15:11", None),
            ("2017-02-04 12:15", None),
            ("2017-02-30 12:15:11", None),
            ("yesterday", None),
            ("", None),
        ] {
            assert_eq!(parse_openx_text(text), expected, "{text}");
        }
        for (text, expected) in [
            ("1486210511.5", Some(noon + 500_000)),
            ("1.486210511e9", Some(noon)),
            // Exact: an f64 holds ~16 digits, this has 17.
            ("1486210511.0000015", Some(noon + 2)),
            ("-0.0000005", Some(-1)),
            ("99999999999999999", None),
            ("1e400", None),
            ("NaN", None),
        ] {
            assert_eq!(parse_openx_text(text), expected, "{text}");
        }
    }

    #[test]
    fn hive_default_and_millis() {
        let t = at(2020, 1, 2, 3, 4, 5, 0);
        assert_eq!(parse_hive_default("2020-01-02 03:04:05"), Some(t));
        assert_eq!(parse_hive_default("2020-1-2 03:04:05.000001"), Some(t + 1));
        assert_eq!(
            parse_hive_default("2020-01-02 03:04:05.123456789"),
            Some(t + 123_456)
        );
        assert_eq!(parse_hive_default("2020-01-02T03:04:05"), None);
        assert_eq!(parse_hive_default("2020-01-02 24:00:00"), None);
        assert_eq!(parse_millis("1577934245000"), Some(t));
        assert_eq!(parse_millis("12.5"), None);
    }

    #[test]
    fn joda_patterns() {
        let check = |pattern: &str, text: &str, expected: Option<i64>| {
            let p = JodaPattern::compile(pattern, 2026).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.parse(text), expected, "{pattern} on {text}");
        };
        let t = at(2021, 3, 7, 14, 5, 9, 0);
        check("yyyy-MM-dd'T'HH:mm:ss", "2021-03-07T14:05:09", Some(t));
        check("yyyyMMddHHmmss", "20210307140509", Some(t));
        check(
            "dd/MM/yyyy HH:mm:ss.SSS",
            "07/03/2021 14:05:09.250",
            Some(t + 250_000),
        );
        check("d/M/yy H:m:s", "7/3/21 14:5:9", Some(t));
        check("dd/MM/yy", "07/03/99", Some(at(1999, 3, 7, 0, 0, 0, 0)));
        check("MMM d, yyyy h:mm:ss a", "Mar 7, 2021 2:05:09 PM", Some(t));
        check(
            "MMMM d yyyy hh:mm a",
            "march 7 2021 12:30 am",
            Some(at(2021, 3, 7, 0, 30, 0, 0)),
        );
        check(
            "EEE, dd MMM yyyy HH:mm:ss Z",
            "Sun, 07 Mar 2021 16:05:09 +0200",
            Some(t),
        );
        check(
            "yyyy-MM-dd'T'HH:mm:ssZZ",
            "2021-03-07T09:05:09-05:00",
            Some(t),
        );
        check("yyyy-MM-dd'T'HH:mm:ssZ", "2021-03-07T14:05:09Z", Some(t));
        check(
            "yyyy-MM-dd'T'HH:mm:ss.SSSSSS",
            "2021-03-07T14:05:09.000123",
            Some(t + 123),
        );
        check("''yyyy''", "'2021'", Some(at(2021, 1, 1, 0, 0, 0, 0)));
        check("yyyy-MM-dd", "2021-03-07 14:05", None);
        check("yyyy-MM-dd", "2021-02-30", None);
        check("h:mm a", "13:00 PM", None);

        let refused = |pattern: &str, needle: &str| {
            let err = JodaPattern::compile(pattern, 2026).unwrap_err();
            assert!(err.contains(needle), "{pattern}: {err}");
        };
        refused("yyyy-DDD", "unsupported Joda pattern letter 'D'");
        refused("xxxx", "unsupported Joda pattern letter 'x'");
        refused("yyyy-MM-dd zzz", "unsupported Joda pattern letter 'z'");
        refused("yyyy ZZZ", "time zone ids");
        refused("'open", "unterminated quoted literal");
        refused("'just text'", "no date or time field");
        refused(
            "yyyyyyyyyyyyyyyyyyyyMM",
            "more than 9 'y' letters (a year has at most 9 digits)",
        );
        refused("yyyyyyyyyy", "more than 9 'y' letters");
        // Nine is the most: a 9-digit year run is read, then refused by the year range.
        check(
            "yyyyyyyyyMM",
            "00000202103",
            Some(at(2021, 3, 1, 0, 0, 0, 0)),
        );
        check("yyyyyyyyyMM", "99999999903", None);
    }

    #[test]
    fn digit_runs_never_overflow() {
        let long = "9".repeat(40);
        for max in [18, 19, 20, 40] {
            let mut scan = Scan::new(&long);
            let expected = (max <= 18).then(|| (long[..max].parse().unwrap(), max));
            assert_eq!(scan.digits(1, max), expected, "max {max}");
        }
        let mut scan = Scan::new("9223372036854775807");
        assert_eq!(scan.digits(1, 19), Some((i64::MAX, 19)));
    }
}
