//! Crontab lines for the `cron` crate: each field checked, so that a mistake gets a sentence
//! naming the field; a five-field line translated into the crate's form (which has seconds
//! first, counts weekdays from 1 = Sunday and always ANDs day-of-month with day-of-week); and
//! the crate's schedules searched on the local wall clock (time zones are the caller's
//! business).

use std::ops::RangeInclusive;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use cron::TimeUnitSpec;

/// The years the `cron` crate computes: a 7-field schedule may name only these, and no
/// schedule has ticks after them.
const YEARS: RangeInclusive<i32> = 1970..=2100;

/// Days refused by the caller's date filter (a calendar's holidays and weekends) that the
/// searches step over before giving up: more than all the days of [`YEARS`].
const MAX_DAYS: u32 = 131 * 366;

/// A parsed schedule: the `cron` crate's schedules whose ticks it has.
#[derive(Debug, Clone)]
pub(super) struct Spec {
    /// One; or, where crontab ORs the day fields, two: the days of the month (any weekday)
    /// and the days of the week (any day of the month). A tick of either is a tick.
    schedules: Vec<cron::Schedule>,
}

/// One field's values, and whether it starts with `*` or `?` (crontab's test for
/// "unrestricted").
struct Values {
    values: Vec<u32>,
    star: bool,
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
    what: "a year (1970-2100)",
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
    ///
    /// Five fields are translated for the crate, each field as the list of values crontab
    /// reads in it (`*` for all of them), weekdays as names; six or seven are the crate's own
    /// form and go to it as written, once checked (weekdays must be names there).
    pub(super) fn parse(fields: &[&str]) -> Result<Self, String> {
        let with_seconds = fields.len() >= 6;
        let rest = if with_seconds {
            parse_field(fields[0], &SECOND, false)?;
            &fields[1..]
        } else {
            fields
        };
        let [minute, hour, day, month, weekday, year @ ..] = rest else {
            return Err("too few fields".into());
        };
        let minutes = parse_field(minute, &MINUTE, false)?;
        let hours = parse_field(hour, &HOUR, false)?;
        let days = parse_field(day, &DAY, false)?;
        let months = parse_field(month, &MONTH, false)?;
        // The crate numbers weekdays from 1 = Sunday: in its form, names only, so that no
        // schedule means another day than its author thought.
        let weekdays = parse_field(weekday, &WEEKDAY, with_seconds)?;
        match year {
            [] => {}
            [year] => {
                parse_field(year, &YEAR, false)?;
            }
            _ => return Err("too many fields".into()),
        }
        // Crontab's rule: when both day fields are restricted (neither starts with `*`), a day
        // matches either; otherwise (and always in the crate's form) it must match both.
        let days_or = !with_seconds && !days.star && !weekdays.star;
        if !days_or && !some_month_has(&months.values, &days.values) {
            return Err(format!("it never runs: none of its months has a day {day}"));
        }
        let schedules = if with_seconds {
            vec![crate_schedule(&fields.join(" "))?]
        } else {
            let (minute, hour) = (list(&minutes, &MINUTE), list(&hours, &HOUR));
            let (day, month) = (list(&days, &DAY), list(&months, &MONTH));
            let weekday = weekday_names(&weekdays.values);
            if days_or {
                vec![
                    crate_schedule(&format!("0 {minute} {hour} {day} {month} *"))?,
                    crate_schedule(&format!("0 {minute} {hour} * {month} {weekday}"))?,
                ]
            } else {
                vec![crate_schedule(&format!(
                    "0 {minute} {hour} {day} {month} {weekday}"
                ))?]
            }
        };
        Ok(Self { schedules })
    }

    /// The first matching local time strictly after `after` whose date passes `date_ok`.
    pub(super) fn next_after(
        &self,
        after: NaiveDateTime,
        date_ok: impl Fn(NaiveDate) -> bool,
    ) -> Option<NaiveDateTime> {
        let mut from = after;
        for _ in 0..MAX_DAYS {
            let tick = self.first_after(from)?;
            if date_ok(tick.date()) {
                return Some(tick);
            }
            from = tick.date().and_time(last_second_of_day());
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
        let mut until = until;
        for _ in 0..MAX_DAYS {
            let tick = self.last_until(until)?;
            if tick.date() < floor {
                return None;
            }
            if date_ok(tick.date()) {
                return Some(tick);
            }
            until = tick
                .date()
                .and_time(NaiveTime::MIN)
                .checked_sub_signed(Duration::seconds(1))?;
        }
        None
    }

    /// The crate's first tick strictly after `after`, of any of the schedules. The crate
    /// computes on a time zone's clock: UTC, which has no gaps or repeats, stands for the
    /// local wall clock.
    fn first_after(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        let after = after.with_nanosecond(0)?;
        if after >= crate_end() {
            return None;
        }
        // The crate starts counting in 1970 (and would read an earlier year wrong).
        let after = after.max(crate_start().checked_sub_signed(Duration::seconds(1))?);
        self.schedules
            .iter()
            .filter_map(|s| s.after(&after.and_utc()).next())
            .map(|t| t.naive_utc())
            .min()
    }

    /// The crate's last tick at or before `until`, of any of the schedules.
    fn last_until(&self, until: NaiveDateTime) -> Option<NaiveDateTime> {
        let until = until.with_nanosecond(0)?;
        if until < crate_start() {
            return None;
        }
        let until = until.min(crate_end());
        self.schedules
            .iter()
            .filter_map(|s| {
                // Searching back from a year it does not have, the crate 0.17 keeps the month
                // it started in for the years before: start from the end of the year before.
                let until = if s.years().includes(until.year() as u32) {
                    until
                } else {
                    NaiveDate::from_ymd_opt(until.year() - 1, 12, 31)?
                        .and_time(last_second_of_day())
                };
                // The crate looks strictly before the time it is given.
                let before = until.checked_add_signed(Duration::seconds(1))?;
                s.after(&before.and_utc()).next_back()
            })
            .map(|t| t.naive_utc())
            .max()
    }
}

/// The first second the crate computes.
fn crate_start() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(*YEARS.start(), 1, 1)
        .unwrap_or(NaiveDate::MIN)
        .and_time(NaiveTime::MIN)
}

/// The last second the crate computes.
fn crate_end() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(*YEARS.end(), 12, 31)
        .unwrap_or(NaiveDate::MAX)
        .and_time(last_second_of_day())
}

fn last_second_of_day() -> NaiveTime {
    NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN)
}

/// The crate's schedule for a line in its form.
fn crate_schedule(line: &str) -> Result<cron::Schedule, String> {
    line.parse().map_err(|e: cron::error::Error| {
        // The crate's message repeats the line and marks a place (`^`) before saying why.
        let text = e.to_string();
        let why = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        format!("the cron crate does not read it: {}", why.trim())
    })
}

/// A field for the crate: `*` when it has every value, else the values crontab reads in it
/// (so steps, `?` and mixed ranges mean what they mean here, whatever the crate makes of
/// them).
fn list(values: &Values, field: &Field) -> String {
    let all = (field.min..=field.max).all(|v| values.values.contains(&v));
    if all {
        return "*".into();
    }
    let shown: Vec<String> = values.values.iter().map(u32::to_string).collect();
    shown.join(",")
}

/// Days of the week (0-7, 0 and 7 Sunday) as the crate's names: its numbers count from
/// 1 = Sunday, names mean the same to both.
fn weekday_names(values: &[u32]) -> String {
    const NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    let days: Vec<&str> = (0..7)
        .filter(|d| values.iter().any(|v| v % 7 == *d))
        .map(|d| NAMES[d as usize])
        .collect();
    if days.len() == 7 {
        "*".into()
    } else {
        days.join(",")
    }
}

/// True when some month of the schedule has one of its days of the month (February 29
/// counts: leap years come).
fn some_month_has(months: &[u32], days: &[u32]) -> bool {
    months.iter().any(|&m| {
        let longest = match m {
            2 => 29,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        days.iter().any(|&d| d <= longest)
    })
}

/// One field: `*`, `?`, `5`, `mon`, `1-5`, `mon-fri`, `*/15`, `10-40/10`, `5/15`, and lists of
/// these (`1,15,30`).
fn parse_field(text: &str, field: &Field, names_only: bool) -> Result<Values, String> {
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
    Ok(Values { values, star })
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
