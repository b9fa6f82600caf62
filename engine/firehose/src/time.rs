//! Calendar fields of a time in milliseconds since the epoch, for prefixes
//! and object names, and the time zone they are in (`CustomTimeZone`: IANA
//! names from the time-zone database built into the binary).

use riffle_protocol::Error;

/// A destination's `CustomTimeZone`: UTC, or an IANA zone.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    /// As configured (empty: UTC).
    pub name: String,
    tz: Option<jiff::tz::TimeZone>,
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        self.name == other.name
    }
}

impl Eq for Zone {}

impl Zone {
    /// The zone AWS's `CustomTimeZone` names (`UTC` and empty: UTC).
    pub fn named(name: &str) -> Result<Zone, Error> {
        if matches!(name, "" | "UTC" | "Etc/UTC") {
            return Ok(Zone {
                name: name.to_string(),
                tz: None,
            });
        }
        let tz = jiff::tz::TimeZone::get(name).map_err(|_| {
            Error::invalid(format!(
                "CustomTimeZone {name} is not a time zone of the IANA database (e.g. America/New_York)."
            ))
        })?;
        Ok(Zone {
            name: name.to_string(),
            tz: Some(tz),
        })
    }

    /// `utc_ms` moved by the zone's offset at that instant: what
    /// [`civil_of_ms`] turns into the zone's wall-clock fields.
    pub fn local_ms(&self, utc_ms: i64) -> i64 {
        let Some(tz) = &self.tz else {
            return utc_ms;
        };
        match jiff::Timestamp::from_millisecond(utc_ms) {
            Ok(t) => utc_ms + i64::from(tz.to_offset(t).seconds()) * 1000,
            Err(_) => utc_ms,
        }
    }
}

/// A date and time (UTC, or a zone's wall clock).
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

#[cfg(test)]
mod zone_tests {
    use super::*;

    #[test]
    fn zones_give_their_wall_clock() {
        // 2018-08-27 10:30 UTC.
        let t = 1_535_365_800_000;
        let utc = Zone::named("UTC").unwrap();
        assert_eq!(civil_of_ms(utc.local_ms(t)).hour, 10);
        // New York in summer: UTC-4; in winter (2019-01-15 10:30 UTC): UTC-5.
        let ny = Zone::named("America/New_York").unwrap();
        assert_eq!(civil_of_ms(ny.local_ms(t)).hour, 6);
        assert_eq!(civil_of_ms(ny.local_ms(1_547_548_200_000)).hour, 5);
        let tokyo = Zone::named("Asia/Tokyo").unwrap();
        let c = civil_of_ms(tokyo.local_ms(t));
        assert_eq!((c.day, c.hour), (27, 19));
        assert!(
            Zone::named("Mars/Olympus")
                .unwrap_err()
                .message
                .contains("Mars/Olympus")
        );
    }
}
