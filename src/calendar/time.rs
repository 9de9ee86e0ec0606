//! Local wall-clock times in time zones, quiet hours, and the delays rule authors write.
//!
//! A local time that does not exist or exists twice is resolved one way everywhere (scripts,
//! delays, quiet hours, schedules): see [`local_to_utc`].

use std::fmt;

use chrono::{DateTime, Days, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono::{Offset as _, TimeZone};
use chrono_tz::Tz;
use serde::Deserialize;

use super::{Calendar, suggest};

/// A time zone by its IANA name (`Europe/Berlin`, `America/Santiago`, `UTC`), or a sentence:
/// "'Europe/Berln' is not a time zone (e.g. Europe/Berlin); did you mean 'Europe/Berlin'?".
pub fn time_zone(name: &str) -> Result<Tz, String> {
    if let Ok(tz) = name.trim().parse::<Tz>() {
        return Ok(tz);
    }
    let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
    let hint = suggest(name.trim(), &names)
        .map(|s| format!("; did you mean '{s}'?"))
        .unwrap_or_default();
    Err(format!(
        "'{name}' is not a time zone (e.g. Europe/Berlin){hint}"
    ))
}

/// A time of day, `HH:MM` or `HH:MM:SS` (24-hour clock), or a sentence saying what to write.
pub fn time_of_day(text: &str) -> Result<NaiveTime, String> {
    let t = text.trim();
    NaiveTime::parse_from_str(t, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M:%S"))
        .map_err(|_| format!("'{text}' is not a time of day (HH:MM, e.g. 09:00)"))
}

/// The local wall-clock time of `t` in `tz`; `None` only at the ends of chrono's range (where
/// chrono's own `naive_local` would panic).
pub fn local_time(t: DateTime<Utc>, tz: Tz) -> Option<NaiveDateTime> {
    let offset = tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    t.naive_utc().checked_add_offset(offset)
}

/// The local date of `t` in `tz` (`None` only at the ends of chrono's range).
pub fn local_date(t: DateTime<Utc>, tz: Tz) -> Option<NaiveDate> {
    local_time(t, tz).map(|l| l.date())
}

/// The instant a local wall-clock time in `tz` stands for. Where the clocks change:
///
/// - a local time that is skipped (spring forward: 02:30 on a day that goes from 02:00 to
///   03:00) stands for the first instant after the gap (03:00 local);
/// - a local time that happens twice (fall back: 02:30 on a day that goes from 03:00 back to
///   02:00) stands for the earlier of the two instants (the first 02:30, still summer time).
pub fn local_to_utc(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        LocalResult::None => after_gap(local, tz),
    }
}

/// The first instant whose local time in `tz` is at or after `local` (which falls in a gap):
/// the moment the clocks were put forward. A binary search over the seconds of a window wider
/// than any UTC offset, so bounded (about 18 steps).
fn after_gap(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    const WINDOW: i64 = 30 * 3600;
    let guess = local.and_utc();
    let reads_at_least = |second: i64| {
        DateTime::from_timestamp(second, 0)
            .and_then(|u| local_time(u, tz))
            .is_some_and(|l| l >= local)
    };
    // Invariant: `lo` reads earlier than `local`, `hi` reads at or after it.
    let mut lo = guess.timestamp().saturating_sub(WINDOW);
    let mut hi = guess.timestamp().saturating_add(WINDOW);
    if reads_at_least(lo) || !reads_at_least(hi) {
        return guess;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if reads_at_least(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0).unwrap_or(guess)
}

/// Quiet hours as written in the service config, under `quiet_hours:`: the local wall-clock
/// times (in the debtor's time zone, given by the rule) between which debtors are not to be
/// contacted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuietHoursConfig {
    /// When quiet hours begin, `HH:MM` local time. Default `21:00`.
    pub start: String,
    /// When they end, `HH:MM` local time; earlier than `start` means the next morning.
    /// Default `08:00`. The same as `start`: no quiet hours.
    pub end: String,
}

impl Default for QuietHoursConfig {
    fn default() -> Self {
        Self {
            start: "21:00".into(),
            end: "08:00".into(),
        }
    }
}

/// Quiet hours: from `start` (included) to `end` (excluded), local wall-clock times, wrapping
/// midnight when `end` is earlier than `start`. Empty when they are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    start: NaiveTime,
    end: NaiveTime,
}

impl Default for QuietHours {
    /// 21:00 to 08:00.
    fn default() -> Self {
        Self {
            start: NaiveTime::from_hms_opt(21, 0, 0).expect("21:00 is a time of day"),
            end: NaiveTime::from_hms_opt(8, 0, 0).expect("08:00 is a time of day"),
        }
    }
}

impl QuietHours {
    pub fn new(start: NaiveTime, end: NaiveTime) -> Self {
        Self { start, end }
    }

    /// Each problem a sentence naming its place (`quiet_hours.start: ...`).
    pub fn from_config(config: &QuietHoursConfig) -> Result<Self, Vec<String>> {
        let start = time_of_day(&config.start).map_err(|e| format!("quiet_hours.start: {e}"));
        let end = time_of_day(&config.end).map_err(|e| format!("quiet_hours.end: {e}"));
        match (start, end) {
            (Ok(start), Ok(end)) => Ok(Self { start, end }),
            (start, end) => Err([start.err(), end.err()].into_iter().flatten().collect()),
        }
    }

    pub fn start(&self) -> NaiveTime {
        self.start
    }

    pub fn end(&self) -> NaiveTime {
        self.end
    }

    /// True when the local clock in `tz` reads a time within quiet hours at `t`.
    pub fn contains(&self, t: DateTime<Utc>, tz: Tz) -> bool {
        local_time(t, tz).is_some_and(|l| self.contains_time(l.time()))
    }

    fn contains_time(&self, time: NaiveTime) -> bool {
        if self.start <= self.end {
            self.start <= time && time < self.end
        } else {
            time >= self.start || time < self.end
        }
    }

    /// `t` when it is not within quiet hours, else when they end: the first instant after `t`
    /// at which the local clock reads `end` (after the gap if the clocks skip that time).
    pub fn end_after(&self, t: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let Some(local) = local_time(t, tz).filter(|l| self.contains_time(l.time())) else {
            return t;
        };
        let date = local.date();
        let date = if self.start > self.end && local.time() >= self.start {
            match date.checked_add_days(Days::new(1)) {
                Some(next) => next,
                None => return t,
            }
        } else {
            date
        };
        let end = date.and_time(self.end);
        let at = match tz.from_local_datetime(&end) {
            LocalResult::Single(x) => x.with_timezone(&Utc),
            // The clock reads `end` twice: the first time that is still ahead.
            LocalResult::Ambiguous(a, b) => {
                let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
                if a.min(b) > t { a.min(b) } else { a.max(b) }
            }
            LocalResult::None => after_gap(end, tz),
        };
        at.max(t)
    }
}

/// The longest delay [`Offset::parse`] accepts in business days (about 400 years).
const MAX_BUSINESS_DAYS: i64 = 100_000;

/// A delay or deadline written by a rule author: an exact duration (`2h`, `30m`, `7d`,
/// `7 days`, `1h 30m`) or a number of business days (`3 business days`, `1 business day`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// Added exactly (7d is 168 hours, whatever the clocks do).
    Duration(Duration),
    /// The local date moves by this many business days of the calendar, and the local time of
    /// day stays; 0 means the same day if it is a business day, else the next business day.
    BusinessDays(i64),
}

impl Offset {
    pub fn parse(text: &str) -> Result<Self, String> {
        let not_a_delay = || {
            format!(
                "'{text}' is not a delay: write a duration such as 2h, 30m, 7d, or N business days"
            )
        };
        let lower = text.trim().to_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        if let [n, "business", unit] = words.as_slice() {
            if *unit != "day" && *unit != "days" {
                return Err(not_a_delay());
            }
            let n: i64 = n.parse().map_err(|_| not_a_delay())?;
            if !(0..=MAX_BUSINESS_DAYS).contains(&n) {
                return Err(format!(
                    "'{text}' is not a delay: the number of business days must be 0 to {MAX_BUSINESS_DAYS}"
                ));
            }
            return Ok(Self::BusinessDays(n));
        }
        // humantime wants the unit next to its number ("7days"): join "7 days".
        let mut joined = String::with_capacity(lower.len());
        let mut previous = ' ';
        let mut chars = lower.chars().peekable();
        while let Some(c) = chars.next() {
            let next_is_letter = chars.peek().is_some_and(|n| n.is_alphabetic());
            if !(c.is_whitespace() && previous.is_ascii_digit() && next_is_letter) {
                joined.push(c);
            }
            previous = c;
        }
        if joined.is_empty() || !joined.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(not_a_delay());
        }
        let duration = humantime::parse_duration(&joined).map_err(|_| not_a_delay())?;
        Duration::from_std(duration)
            .map(Self::Duration)
            .map_err(|_| format!("'{text}' is not a delay: it is too long"))
    }

    /// `t` moved by this delay; business days are counted on `calendar` in `tz`, and a local
    /// time that the clocks skip or repeat is resolved as [`local_to_utc`] says. `None` when
    /// the result would be beyond the calendar (or the calendar has no business days).
    pub fn apply(self, t: DateTime<Utc>, tz: Tz, calendar: &Calendar) -> Option<DateTime<Utc>> {
        match self {
            Self::Duration(d) => t.checked_add_signed(d),
            Self::BusinessDays(n) => {
                let local = local_time(t, tz)?;
                let date = calendar.add_business_days(local.date(), n)?;
                Some(local_to_utc(date.and_time(local.time()), tz))
            }
        }
    }
}

impl std::str::FromStr for Offset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BusinessDays(1) => f.write_str("1 business day"),
            Self::BusinessDays(n) => write!(f, "{n} business days"),
            Self::Duration(d) => match d.to_std() {
                Ok(std) => write!(f, "{}", humantime::format_duration(std)),
                Err(_) => write!(f, "{}s", d.num_seconds()),
            },
        }
    }
}
