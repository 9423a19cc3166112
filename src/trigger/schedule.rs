//! Cron schedules in a time zone: parsing and the next fire time.
//!
//! Five fields, as in crontab(5): minute (0-59), hour (0-23), day of month
//! (1-31), month (1-12 or `jan`-`dec`), day of week (0-7, 0 and 7 are
//! Sunday, or `sun`-`sat`). Each field is `*`, a value, a range `a-b`, a
//! step `*/n` or `a-b/n`, or a comma-separated list of those. When both
//! day fields are restricted, a day matches if either does (as cron does).
//!
//! Times are wall-clock times in the schedule's IANA time zone (the tz
//! database is built in, so a machine without one behaves the same). When
//! a daylight-saving change skips a matching time, the schedule fires at
//! the first instant after the gap; when a time repeats, it fires once, at
//! the first.
//!
//! ```
//! use narakim::trigger::schedule::Schedule;
//!
//! let nightly = Schedule::parse("30 3 * * mon-fri", "Europe/Berlin").unwrap();
//! // 2026-12-04 (a Friday) 12:00 UTC: next is Monday 03:30 in Berlin.
//! let next = nightly.next_after(1_796_385_600_000).unwrap();
//! assert_eq!(next, 1_796_610_600_000); // 2026-12-07T02:30:00Z
//! ```

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

/// A parsed cron expression and its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Whether each day field was `*` (cron's rule for combining them).
    any_day: bool,
    any_weekday: bool,
    tz: TimeZone,
}

/// How far ahead [`Schedule::next_after`] looks: past this, an expression
/// such as `0 0 30 2 *` (February 30th) never fires.
const HORIZON_DAYS: u32 = 366 * 5;

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Schedule {
    /// Parses `cron` in the IANA time zone `timezone` ("UTC",
    /// "Europe/Berlin"). The message says which field is wrong and why.
    pub fn parse(cron: &str, timezone: &str) -> Result<Schedule, String> {
        let fields: Vec<&str> = cron.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "cron must have 5 fields (minute hour day-of-month month day-of-week), such as \"0 9 * * mon-fri\"; it has {}",
                fields.len()
            ));
        }
        let tz = TimeZone::get(timezone).map_err(|_| {
            format!(
                "timezone {:?} is not an IANA time zone name; use one such as \"UTC\" or \"Europe/Berlin\"",
                crate::redact::printable(timezone)
            )
        })?;
        let minutes = field(fields[0], "minute", 0, 59, &[])?;
        let hours = field(fields[1], "hour", 0, 23, &[])?;
        let days = field(fields[2], "day of month", 1, 31, &[])?;
        let months = field(fields[3], "month", 1, 12, &MONTHS)?;
        let mut weekdays = field(fields[4], "day of week", 0, 7, &WEEKDAYS)?;
        // 7 is Sunday too.
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        let schedule = Schedule {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: (weekdays & 0x7f) as u8,
            any_day: fields[2] == "*",
            any_weekday: fields[4] == "*",
            tz,
        };
        Ok(schedule)
    }

    /// The first fire time strictly after `after_ms` (Unix milliseconds),
    /// or `None` when none comes within five years.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let after = Timestamp::from_millisecond(after_ms).ok()?;
        let start = self.tz.to_datetime(after);
        let mut date = start.date();
        for day in 0..HORIZON_DAYS {
            if self.day_matches(date) {
                for hour in 0..24i8 {
                    if self.hours & (1 << hour) == 0 {
                        continue;
                    }
                    for minute in 0..60i8 {
                        if self.minutes & (1 << minute) == 0 {
                            continue;
                        }
                        let Ok(civil) = DateTime::new(
                            date.year(),
                            date.month(),
                            date.day(),
                            hour,
                            minute,
                            0,
                            0,
                        ) else {
                            continue;
                        };
                        if day == 0 && civil <= start {
                            continue;
                        }
                        let Ok(at) = self.tz.to_ambiguous_timestamp(civil).compatible() else {
                            continue;
                        };
                        let at = at.as_millisecond();
                        if at > after_ms {
                            return Some(at);
                        }
                    }
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    fn day_matches(&self, date: Date) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let by_day = self.days & (1 << date.day()) != 0;
        let by_weekday = self.weekdays & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (true, false) => by_weekday,
            (false, true) => by_day,
            (false, false) => by_day || by_weekday,
        }
    }
}

/// One field as a bitset of the values it allows.
fn field(text: &str, what: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let bad = |why: String| {
        format!(
            "cron {what} field {:?}: {why}",
            crate::redact::printable(text)
        )
    };
    let value = |s: &str| -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            return Ok(i as u32 + min);
        }
        let n: u32 = s
            .parse()
            .map_err(|_| bad(format!("{s:?} is not a number from {min} to {max}")))?;
        if !(min..=max).contains(&n) {
            return Err(bad(format!("{n} is outside {min}-{max}")));
        }
        Ok(n)
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| bad(format!("step {step:?} must be a positive number")))?;
                (range, step)
            }
            None => (part, 1),
        };
        let (from, to) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            // `5/10` means from 5 to the end, every 10.
            (v, if step > 1 { max } else { v })
        };
        if from > to {
            return Err(bad(format!("the range {from}-{to} runs backwards")));
        }
        let mut v = from;
        while v <= to {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn next(cron: &str, tz: &str, after: &str) -> String {
        let s = Schedule::parse(cron, tz).unwrap();
        Timestamp::from_millisecond(s.next_after(at(after)).unwrap())
            .unwrap()
            .to_string()
    }

    #[test]
    fn fields_lists_ranges_steps_and_names() {
        assert_eq!(
            next("* * * * *", "UTC", "2026-01-01T00:00:00Z"),
            "2026-01-01T00:01:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "UTC", "2026-01-01T00:14:59Z"),
            "2026-01-01T00:15:00Z"
        );
        assert_eq!(
            next("5,35 9-10 * * *", "UTC", "2026-01-01T10:35:00Z"),
            "2026-01-02T09:05:00Z"
        );
        assert_eq!(
            next("0 0 1 jan,jul *", "UTC", "2026-01-01T00:00:00Z"),
            "2026-07-01T00:00:00Z"
        );
        // Sunday as 0 and as 7; 2026-01-04 is a Sunday.
        assert_eq!(
            next("0 12 * * 7", "UTC", "2026-01-01T00:00:00Z"),
            "2026-01-04T12:00:00Z"
        );
        assert_eq!(
            next("0 12 * * sun", "UTC", "2026-01-01T00:00:00Z"),
            "2026-01-04T12:00:00Z"
        );
        // Both day fields restricted: either matches (the 2nd, a Friday).
        assert_eq!(
            next("0 0 2 * mon", "UTC", "2026-01-01T00:00:00Z"),
            "2026-01-02T00:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
    }

    #[test]
    fn wall_clock_times_in_the_zone_across_daylight_saving() {
        // 09:00 in Berlin is 08:00Z in winter and 07:00Z in summer.
        assert_eq!(
            next("0 9 * * *", "Europe/Berlin", "2026-01-10T12:00:00Z"),
            "2026-01-11T08:00:00Z"
        );
        assert_eq!(
            next("0 9 * * *", "Europe/Berlin", "2026-07-10T12:00:00Z"),
            "2026-07-11T07:00:00Z"
        );
        // 02:30 does not exist on 2026-03-29 in Berlin: fired after the gap.
        assert_eq!(
            next("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z"),
            "2026-03-29T01:30:00Z"
        );
        // 02:30 happens twice on 2026-10-25: fired once, at the first.
        assert_eq!(
            next("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z"),
            "2026-10-25T00:30:00Z"
        );
        assert_eq!(
            next("30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z"),
            "2026-10-26T01:30:00Z"
        );
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        let e = |cron: &str| Schedule::parse(cron, "UTC").unwrap_err();
        assert!(e("* * * *").contains("5 fields"));
        assert!(e("60 * * * *").contains("minute field \"60\": 60 is outside 0-59"));
        assert!(e("* * * foo *").contains("month field"));
        assert!(e("*/0 * * * *").contains("step"));
        assert!(e("5-1 * * * *").contains("backwards"));
        let tz = Schedule::parse("* * * * *", "Mars/Olympus").unwrap_err();
        assert!(tz.contains("not an IANA time zone"), "{tz}");
        assert!(
            Schedule::parse("0 0 30 2 *", "UTC")
                .unwrap()
                .next_after(0)
                .is_none()
        );
    }
}
