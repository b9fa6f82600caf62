//! Exact reading of decimal number text (a JSON number's source, or a numeric string):
//! `decimal(p,s)` values as unscaled i128 and integer column values as i64, digit by
//! digit, never through an f64. Pure functions.

/// A number's text split into its parts: `[+-]digits[.digits][(e|E)[+-]digits]`.
struct DecimalText<'a> {
    negative: bool,
    int_part: &'a [u8],
    frac_part: &'a [u8],
    /// Where the decimal point falls among all the digits, after the exponent.
    point: i64,
}

impl<'a> DecimalText<'a> {
    fn parse(text: &'a str) -> Option<DecimalText<'a>> {
        let text = text.trim();
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], exponent(&rest[i + 1..])?),
            None => (rest, 0),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit());
        if int_part.is_empty() && frac_part.is_empty() || !all_digits {
            return None;
        }
        Some(DecimalText {
            negative,
            int_part: int_part.as_bytes(),
            frac_part: frac_part.as_bytes(),
            point: int_part.len() as i64 + exponent,
        })
    }

    fn digit_count(&self) -> usize {
        self.int_part.len() + self.frac_part.len()
    }

    /// Digit `i` of all the digits (0 past the end or before the start).
    fn digit(&self, i: i64) -> u8 {
        let Ok(i) = usize::try_from(i) else {
            return 0;
        };
        let b = if i < self.int_part.len() {
            self.int_part[i]
        } else {
            match self.frac_part.get(i - self.int_part.len()) {
                Some(&b) => b,
                None => return 0,
            }
        };
        b - b'0'
    }

    /// The magnitude of the digits before position `end`, or None once it would
    /// exceed `limit`.
    fn leading(&self, end: i64, limit: i128) -> Option<i128> {
        let mut value: i128 = 0;
        for i in 0..end.max(0) {
            if value == 0 && usize::try_from(i).map_or(true, |i| i >= self.digit_count()) {
                break; // only zeros are left: `0e999999999` stays 0 without looping
            }
            value = value
                .checked_mul(10)?
                .checked_add(i128::from(self.digit(i)))?;
            if value > limit {
                return None;
            }
        }
        Some(value)
    }

    /// Whether a digit other than 0 sits at or after position `from`.
    fn nonzero_from(&self, from: i64) -> bool {
        let skip = usize::try_from(from.max(0)).unwrap_or(usize::MAX);
        self.int_part
            .iter()
            .chain(self.frac_part)
            .skip(skip)
            .any(|&b| b != b'0')
    }
}

/// An exponent's text (`+12`, `-3`, `7`); one past ±2^40 is clamped there, which
/// still reads as 0 or as too large for any column (the digits before it are fewer
/// than 2^25, a record's size bound).
fn exponent(text: &str) -> Option<i64> {
    const EXPONENT_MAX: i64 = 1 << 40;
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits
        .parse::<i64>()
        .map_or(EXPONENT_MAX, |e| e.min(EXPONENT_MAX));
    Some(if negative { -magnitude } else { magnitude })
}

/// A decimal's text (`-12.345`, `1e3`, `+.5`) as an unscaled i128 at `scale`,
/// rounded half-up (away from zero); refused with more than `precision - scale`
/// integer digits.
pub(crate) fn decimal(text: &str, precision: u8, scale: u8) -> Result<i128, String> {
    let parts = DecimalText::parse(text).ok_or_else(|| "is not a decimal number".to_owned())?;
    let too_big = || {
        format!(
            "does not fit decimal({precision},{scale}): more than {} digits before the point",
            precision - scale
        )
    };
    // Keep digits up to `scale` places after the point; the next decides rounding.
    let keep = parts.point + i64::from(scale);
    let max = 10i128.pow(u32::from(precision)) - 1;
    let mut unscaled = parts.leading(keep, max).ok_or_else(too_big)?;
    if keep >= 0 && parts.digit(keep) >= 5 {
        unscaled += 1;
        if unscaled > max {
            return Err(too_big());
        }
    }
    Ok(if parts.negative { -unscaled } else { unscaled })
}

/// Why a number is not an `i64`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NotInteger {
    /// Not a number's text at all.
    Malformed,
    /// It has a fraction other than zero (`1.5`; `3.0` and `1e3` are integers).
    Fraction,
    /// Beyond `i64`.
    OutOfRange,
}

/// A number's text as an exact `i64`: `12`, `-7`, `3.0`, `1.5e1`.
pub(crate) fn integer(text: &str) -> Result<i64, NotInteger> {
    let parts = DecimalText::parse(text).ok_or(NotInteger::Malformed)?;
    if parts.nonzero_from(parts.point) {
        return Err(NotInteger::Fraction);
    }
    let magnitude = parts
        .leading(parts.point, i128::from(i64::MAX) + 1)
        .ok_or(NotInteger::OutOfRange)?;
    let value = if parts.negative {
        -magnitude
    } else {
        magnitude
    };
    i64::try_from(value).map_err(|_| NotInteger::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        for (text, p, s, expected) in [
            ("12.345", 10, 2, Ok(1235)),
            ("-12.344", 10, 2, Ok(-1234)),
            ("-12.345", 10, 2, Ok(-1235)),
            ("1e3", 6, 2, Ok(100_000)),
            ("1.5E-1", 5, 2, Ok(15)),
            (".5", 3, 0, Ok(1)),
            ("0.004", 3, 2, Ok(0)),
            (
                "99999999999999999999999999999999999999",
                38,
                0,
                Ok(99_999_999_999_999_999_999_999_999_999_999_999_999),
            ),
            (
                "999999999999999999999999999999999999999",
                38,
                0,
                Err("does not fit decimal(38,0): more than 38 digits before the point"),
            ),
            ("1234567890.123456789", 19, 9, Ok(1_234_567_890_123_456_789)),
            (
                "123456789012345678901",
                38,
                0,
                Ok(123_456_789_012_345_678_901),
            ),
            (
                "999.995",
                5,
                2,
                Err("does not fit decimal(5,2): more than 3 digits before the point"),
            ),
            (
                "1000",
                5,
                2,
                Err("does not fit decimal(5,2): more than 3 digits before the point"),
            ),
            ("1e-50", 5, 2, Ok(0)),
            ("0e2000000000", 5, 2, Ok(0)),
            (
                "1e2000000000",
                5,
                2,
                Err("does not fit decimal(5,2): more than 3 digits before the point"),
            ),
            ("abc", 5, 2, Err("is not a decimal number")),
            ("1.2.3", 5, 2, Err("is not a decimal number")),
            ("", 5, 2, Err("is not a decimal number")),
            ("-", 5, 2, Err("is not a decimal number")),
            ("1e", 5, 2, Err("is not a decimal number")),
            ("1e+", 5, 2, Err("is not a decimal number")),
            ("1e-99999999999999999999999", 5, 2, Ok(0)),
            (
                "1e99999999999999999999999",
                5,
                2,
                Err("does not fit decimal(5,2): more than 3 digits before the point"),
            ),
        ] {
            assert_eq!(
                decimal(text, p, s),
                expected.map_err(str::to_owned),
                "{text} as ({p},{s})"
            );
        }
    }

    #[test]
    fn integers() {
        use NotInteger::*;
        for (text, expected) in [
            ("0", Ok(0)),
            ("-0", Ok(0)),
            ("42", Ok(42)),
            ("3.0", Ok(3)),
            ("1.5e1", Ok(15)),
            ("1E3", Ok(1000)),
            ("120e-1", Ok(12)),
            ("9007199254740993", Ok(9_007_199_254_740_993)),
            ("9007199254740993.0", Ok(9_007_199_254_740_993)),
            ("9223372036854775807", Ok(i64::MAX)),
            ("-9223372036854775808", Ok(i64::MIN)),
            ("9223372036854775808", Err(OutOfRange)),
            ("-9223372036854775809", Err(OutOfRange)),
            ("123456789012345678901234567890", Err(OutOfRange)),
            ("1e19", Err(OutOfRange)),
            ("1e999999999", Err(OutOfRange)),
            ("1e99999999999999999999999", Err(OutOfRange)),
            ("0e-99999999999999999999999", Ok(0)),
            ("5e-99999999999999999999999", Err(Fraction)),
            ("0e999999999", Ok(0)),
            ("1.5", Err(Fraction)),
            ("9223372036854775807.5", Err(Fraction)),
            ("1e-1", Err(Fraction)),
            ("1.0000000000000000000001", Err(Fraction)),
            ("x", Err(Malformed)),
        ] {
            assert_eq!(integer(text), expected, "{text}");
        }
    }
}
