//! Crontab lines: the fields parsed into sets of allowed values, and the next or previous
//! local wall-clock time that matches (time zones are the caller's business).

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// Years a 7-field schedule may name.
const YEARS: std::ops::RangeInclusive<i32> = 1970..=2200;

/// Days the searches look through before giving up: a whole Gregorian cycle (400 years), in
/// which every pattern of dates repeats, so a schedule that has not matched by then never will.
const MAX_DAYS: u32 = 400 * 366 + 7;

/// A parsed schedule: a bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Spec {
    seconds: u64,
    minutes: u64,
    hours: u64,
    /// Bits 1..=31.
    days: u64,
    /// Bits 1..=12.
    months: u64,
    /// Bits 0..=6, 0 = Sunday.
    weekdays: u64,
    /// Bits `year - 1970`; `None`: every year.
    years: Option<[u64; 4]>,
    /// Crontab's rule: when both day-of-month and day-of-week are restricted (neither starts
    /// with `*`), a day matches either; otherwise it must match both.
    days_or: bool,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names and their values (matched case-insensitively).
    names: &'static [(&'static str, u32)],
    /// What a value of this field is, for the error: "a day (sun..sat, or 0-7)".
    what: &'static str,
}

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
    what: "a second (0-59)",
};
const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    what: "a minute (0-59)",
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    what: "an hour (0-23)",
};
const DAY: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    what: "a day of the month (1-31)",
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
        ("january", 1),
        ("february", 2),
        ("march", 3),
        ("april", 4),
        ("june", 6),
        ("july", 7),
        ("august", 8),
        ("september", 9),
        ("october", 10),
        ("november", 11),
        ("december", 12),
    ],
    what: "a month (jan..dec, or 1-12)",
};
const WEEKDAY: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
        ("sunday", 0),
        ("monday", 1),
        ("tuesday", 2),
        ("wednesday", 3),
        ("thursday", 4),
        ("friday", 5),
        ("saturday", 6),
    ],
    what: "a day of the week (sun..sat, or 0-7 where 0 and 7 are Sunday)",
};
const YEAR: Field = Field {
    name: "year",
    min: *YEARS.start() as u32,
    max: *YEARS.end() as u32,
    names: &[],
    what: "a year (1970-2200)",
};

/// The crontab line a shortcut stands for.
pub(super) fn shortcut(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    })
}

impl Spec {
    /// Five crontab fields, or six (seconds first) or seven (and a year last). The error says
    /// what is wrong, without the expression (the caller adds it).
    pub(super) fn parse(fields: &[&str]) -> Result<Self, String> {
        let with_seconds = fields.len() >= 6;
        let (seconds, rest) = if with_seconds {
            (
                mask(&parse_field(fields[0], &SECOND, false)?.0),
                &fields[1..],
            )
        } else {
            (1, fields)
        };
        let [minute, hour, day, month, weekday, year @ ..] = rest else {
            return Err("too few fields".into());
        };
        let minutes = mask(&parse_field(minute, &MINUTE, false)?.0);
        let hours = mask(&parse_field(hour, &HOUR, false)?.0);
        let (days, day_star) = parse_field(day, &DAY, false)?;
        let days = mask(&days);
        let months = mask(&parse_field(month, &MONTH, false)?.0);
        // Dialects with seconds number weekdays from 1 = Sunday: names only, so that no
        // schedule means another day than its author thought.
        let (weekdays, weekday_star) = parse_field(weekday, &WEEKDAY, with_seconds)?;
        // Sunday written as 7 is day 0.
        let weekdays = mask(&weekdays);
        let weekdays = (weekdays | weekdays >> 7) & 0x7f;
        let years = match year {
            [] => None,
            [year] => {
                let mut set = [0_u64; 4];
                for y in parse_field(year, &YEAR, false)?.0 {
                    let i = (y - YEAR.min) as usize;
                    set[i / 64] |= 1 << (i % 64);
                }
                Some(set)
            }
            _ => return Err("too many fields".into()),
        };
        let spec = Self {
            seconds,
            minutes,
            hours,
            days,
            months,
            weekdays,
            years,
            days_or: !day_star && !weekday_star,
        };
        if !spec.days_or && weekday_star && !spec.some_month_has_its_days() {
            return Err(format!("it never runs: none of its months has a day {day}"));
        }
        Ok(spec)
    }

    /// True when some month of the schedule has one of its days of the month (February 29
    /// counts: leap years come).
    fn some_month_has_its_days(&self) -> bool {
        (1..=12).any(|m| {
            let longest = match m {
                2 => 29,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            bit(self.months, m) && (1..=longest).any(|d| bit(self.days, d))
        })
    }

    fn year_ok(&self, year: i32) -> bool {
        self.years.is_none_or(|set| {
            YEARS.contains(&year) && {
                let i = (year - YEARS.start()) as usize;
                set[i / 64] >> (i % 64) & 1 == 1
            }
        })
    }

    fn date_matches(&self, date: NaiveDate) -> bool {
        let day = bit(self.days, date.day());
        let weekday = bit(self.weekdays, date.weekday().num_days_from_sunday());
        if self.days_or {
            day || weekday
        } else {
            day && weekday
        }
    }

    /// The first matching local time strictly after `after` whose date passes `date_ok`.
    pub(super) fn next_after(
        &self,
        after: NaiveDateTime,
        date_ok: impl Fn(NaiveDate) -> bool,
    ) -> Option<NaiveDateTime> {
        let start = after
            .with_nanosecond(0)?
            .checked_add_signed(chrono::Duration::seconds(1))?;
        let mut date = start.date();
        let mut from = start.time();
        for _ in 0..MAX_DAYS {
            if !self.year_ok(date.year()) {
                let next = (date.year() + 1..=*YEARS.end()).find(|&y| self.year_ok(y))?;
                date = NaiveDate::from_ymd_opt(next, 1, 1)?;
                from = NaiveTime::MIN;
                continue;
            }
            if !bit(self.months, date.month()) {
                date = first_of_next_month(date)?;
                from = NaiveTime::MIN;
                continue;
            }
            if self.date_matches(date)
                && date_ok(date)
                && let Some(time) = self.first_time_from(from)
            {
                return Some(date.and_time(time));
            }
            date = date.succ_opt()?;
            from = NaiveTime::MIN;
        }
        None
    }

    /// The last matching local time at or before `until` whose date passes `date_ok`, looking
    /// no further back than `floor` (a date).
    pub(super) fn last_at_or_before(
        &self,
        until: NaiveDateTime,
        floor: NaiveDate,
        date_ok: impl Fn(NaiveDate) -> bool,
    ) -> Option<NaiveDateTime> {
        let end_of_day = NaiveTime::from_hms_opt(23, 59, 59)?;
        let start = until.with_nanosecond(0)?;
        let mut date = start.date();
        let mut to = start.time();
        for _ in 0..MAX_DAYS {
            if date < floor {
                return None;
            }
            if !self.year_ok(date.year()) {
                let previous = (*YEARS.start()..date.year())
                    .rev()
                    .find(|&y| self.year_ok(y))?;
                date = NaiveDate::from_ymd_opt(previous, 12, 31)?;
                to = end_of_day;
                continue;
            }
            if !bit(self.months, date.month()) {
                date = date.with_day(1)?.pred_opt()?;
                to = end_of_day;
                continue;
            }
            if self.date_matches(date)
                && date_ok(date)
                && let Some(time) = self.last_time_until(to)
            {
                return Some(date.and_time(time));
            }
            date = date.pred_opt()?;
            to = end_of_day;
        }
        None
    }

    /// The first matching time of day at or after `from`.
    fn first_time_from(&self, from: NaiveTime) -> Option<NaiveTime> {
        let (h0, m0, s0) = (from.hour(), from.minute(), from.second());
        let mut hour = next_bit(self.hours, h0)?;
        loop {
            let same_hour = hour == h0;
            let mut minute = next_bit(self.minutes, if same_hour { m0 } else { 0 });
            while let Some(m) = minute {
                let same_minute = same_hour && m == m0;
                if let Some(s) = next_bit(self.seconds, if same_minute { s0 } else { 0 }) {
                    return NaiveTime::from_hms_opt(hour, m, s);
                }
                minute = next_bit(self.minutes, m + 1);
            }
            hour = next_bit(self.hours, hour + 1)?;
        }
    }

    /// The last matching time of day at or before `to`.
    fn last_time_until(&self, to: NaiveTime) -> Option<NaiveTime> {
        let (h0, m0, s0) = (to.hour(), to.minute(), to.second());
        let mut hour = previous_bit(self.hours, h0)?;
        loop {
            let same_hour = hour == h0;
            let mut minute = previous_bit(self.minutes, if same_hour { m0 } else { 59 });
            while let Some(m) = minute {
                let same_minute = same_hour && m == m0;
                if let Some(s) = previous_bit(self.seconds, if same_minute { s0 } else { 59 }) {
                    return NaiveTime::from_hms_opt(hour, m, s);
                }
                minute = m.checked_sub(1).and_then(|m| previous_bit(self.minutes, m));
            }
            hour = previous_bit(self.hours, hour.checked_sub(1)?)?;
        }
    }
}

fn bit(set: u64, value: u32) -> bool {
    value < 64 && set >> value & 1 == 1
}

/// The lowest value in `set` at or above `from`.
fn next_bit(set: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let above = set >> from;
    (above != 0).then(|| from + above.trailing_zeros())
}

/// The highest value in `set` at or below `to`.
fn previous_bit(set: u64, to: u32) -> Option<u32> {
    let below = if to >= 63 {
        set
    } else {
        set & ((1 << (to + 1)) - 1)
    };
    (below != 0).then(|| 63 - below.leading_zeros())
}

fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    if date.month() == 12 {
        NaiveDate::from_ymd_opt(date.year().checked_add(1)?, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
    }
}

/// One field: `*`, `?`, `5`, `mon`, `1-5`, `mon-fri`, `*/15`, `10-40/10`, `5/15`, and lists of
/// these (`1,15,30`). The values, and whether the field starts with `*` or `?` (crontab's test
/// for "unrestricted").
fn parse_field(text: &str, field: &Field, names_only: bool) -> Result<(Vec<u32>, bool), String> {
    let star = text.starts_with('*') || text.starts_with('?');
    let name = field.name;
    let mut values = Vec::new();
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().map_err(|_| {
                    format!("{name} '{item}': the step after / must be a whole number")
                })?;
                if step == 0 {
                    return Err(format!(
                        "{name} '{item}': the step after / must be at least 1"
                    ));
                }
                (range, Some(step))
            }
            None => (item, None),
        };
        let (low, high) = if range == "*" || range == "?" {
            let high = if field.max == 7 { 6 } else { field.max };
            (field.min, high)
        } else if let Some((low, high)) = range.split_once('-') {
            let low = value(low, field, names_only, item)?;
            let mut high = value(high, field, names_only, item)?;
            // `fri-sun`: Sunday closing a range is day 7.
            if field.max == 7 && high == 0 && low > 0 {
                high = 7;
            }
            if low > high {
                return Err(format!(
                    "{name} '{item}' runs backwards (write the lower value first)"
                ));
            }
            (low, high)
        } else {
            let low = value(range, field, names_only, item)?;
            // `5/15`: from 5 to the end, every 15.
            (low, if step.is_some() { field.max } else { low })
        };
        let step = step.unwrap_or(1);
        let mut v = low;
        while v <= high {
            values.push(v);
            match v.checked_add(step) {
                Some(next) => v = next,
                None => break,
            }
        }
    }
    Ok((values, star))
}

/// The values as bits (each value below 64).
fn mask(values: &[u32]) -> u64 {
    values.iter().fold(0, |set, &v| set | 1 << v)
}

/// One value of a field, by number or name.
fn value(text: &str, field: &Field, names_only: bool, item: &str) -> Result<u32, String> {
    let name = field.name;
    if let Ok(n) = text.parse::<u32>() {
        if names_only {
            return Err(format!(
                "{name} '{item}': in a schedule with seconds write days as names (mon-fri), as cron dialects number them differently"
            ));
        }
        if !(field.min..=field.max).contains(&n) {
            return Err(format!(
                "{name} '{item}': {n} is out of range ({}-{})",
                field.min, field.max
            ));
        }
        return Ok(n);
    }
    let lower = text.to_ascii_lowercase();
    field
        .names
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|&(_, v)| v)
        .ok_or_else(|| format!("{name} '{item}': '{text}' is not {}", field.what))
}
