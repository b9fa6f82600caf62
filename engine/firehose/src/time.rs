//! UTC calendar fields of a time in milliseconds since the epoch, for prefixes
//! and object names (no time-zone database: `CustomTimeZone` is UTC only).

/// A UTC date and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
    /// 1 to 366.
    pub day_of_year: u32,
}

/// The proleptic Gregorian calendar (days to year/month/day: Howard
/// Hinnant's `civil_from_days`).
pub fn civil_of_ms(ms: i64) -> Civil {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let day_of_year = BEFORE[month as usize - 1] + day + u32::from(leap && month > 2);
    Civil {
        year,
        month,
        day,
        hour: (in_day / 3_600_000) as u32,
        minute: (in_day / 60_000 % 60) as u32,
        second: (in_day / 1000 % 60) as u32,
        millis: (in_day % 1000) as u32,
        day_of_year,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        let c = civil_of_ms(1_535_365_800_123);
        assert_eq!(
            (
                c.year,
                c.month,
                c.day,
                c.hour,
                c.minute,
                c.second,
                c.millis,
                c.day_of_year
            ),
            (2018, 8, 27, 10, 30, 0, 123, 239)
        );
        let c = civil_of_ms(0);
        assert_eq!((c.year, c.month, c.day, c.day_of_year), (1970, 1, 1, 1));
        // A leap day and the last day of a leap year.
        let c = civil_of_ms(951_782_400_000);
        assert_eq!((c.year, c.month, c.day, c.day_of_year), (2000, 2, 29, 60));
        let c = civil_of_ms(1_735_603_200_000);
        assert_eq!((c.year, c.month, c.day, c.day_of_year), (2024, 12, 31, 366));
        // Before the epoch.
        let c = civil_of_ms(-1);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.second, c.millis),
            (1969, 12, 31, 23, 59, 999)
        );
    }
}
