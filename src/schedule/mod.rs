//! Cron schedules for scheduled rules: a crontab line with crontab's meaning, in a time zone,
//! optionally on business days only; the next tick, and which tick is due after downtime.
//! Pure: callers pass the times (the scheduler owns the clock and what it has run).
//!
//! What a schedule means:
//!
//! - Five fields, `minute hour day-of-month month day-of-week`, as in crontab(5): numbers,
//!   names (`jan`..`dec`, `sun`..`sat`, any case), `*`, ranges `1-5`, lists `1,15`, steps
//!   `*/15`, `10-40/10`; day-of-week 0 and 7 are Sunday. When both day-of-month and
//!   day-of-week are restricted (neither starts with `*`), a day matches either (crontab's
//!   OR: `0 0 1 * mon` runs on the 1st and on every Monday); otherwise it must match both.
//!   Shortcuts: `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`, `@yearly`
//!   (`@annually`).
//! - Six fields put seconds first; seven add a year (1970-2100) last: the `cron` crate's own
//!   form, given to it as written once checked. Days of the week must be names there (the
//!   crate counts 1 = Sunday, and a number would be read wrong), a range of them must not wrap
//!   (`sat,sun`, not `sat-sun`), and a day must match both day-of-month and day-of-week (the
//!   crate's rule; crontab's OR is for five fields).
//! - The `cron` crate computes the ticks: a five-field line is translated into its form
//!   (seconds 0, each field as the values crontab reads in it, weekdays as names; for
//!   crontab's OR, two schedules whose ticks are merged). It computes the years 1970-2100:
//!   there are no ticks after 2100.
//! - Ticks are local wall-clock times in the schedule's time zone (default UTC). Where the
//!   clocks change, a tick is resolved as [`crate::calendar::local_to_utc`] resolves any local
//!   time: a skipped time (02:30 on a spring-forward night) runs at the first instant after
//!   the gap (03:00), a repeated one (02:30 on a fall-back night) runs once, the first time.
//!   Ticks that land on the same instant run once. So a daily 02:30 runs exactly once on both
//!   nights; an every-15-minutes schedule runs once at 03:00 for the skipped hour and does not
//!   run again in the repeated hour.
//! - With a calendar ([`Schedule::with_calendar`]), a tick runs only if its local date is a
//!   business day of that calendar.

mod crontab;

use std::sync::Arc;

use chrono::{DateTime, Duration, LocalResult, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::calendar::{Calendar, local_time, local_to_utc, time_zone};
use crontab::Spec;

/// Longest expression accepted (characters).
const MAX_LEN: usize = 256;

/// Candidate local times the searches step over where the clocks go back (ticks that resolve
/// to an instant already passed): more than a repeated hour of every-second ticks.
const MAX_SKIPPED: usize = 100_000;

/// What to do with ticks that came due while nothing ran (downtime, a paused scheduler).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Run none of them; only a tick that has just come due (within the grace) runs.
    #[default]
    Skip,
    /// Run the latest of them once, however old.
    Latest,
}

/// A parsed schedule in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// As written, with runs of white space made one space.
    expr: String,
    tz: Tz,
    spec: Spec,
    calendar: Option<Arc<Calendar>>,
}

impl Schedule {
    /// A crontab line (see the module documentation) in the IANA time zone `timezone`
    /// (`UTC`, `Europe/Berlin`). Errors are sentences naming the expression or zone.
    pub fn parse(expr: &str, timezone: &str) -> Result<Self, String> {
        let tz = time_zone(timezone)?;
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let written = fields.join(" ");
        let not_a_schedule = |what: &str| {
            let shown: String = written.chars().take(80).collect();
            let cut = if shown.len() < written.len() {
                "…"
            } else {
                ""
            };
            format!("'{shown}{cut}' is not a schedule: {what}")
        };
        if expr.len() > MAX_LEN {
            return Err(not_a_schedule(&format!(
                "it is longer than {MAX_LEN} characters"
            )));
        }
        let spec = match fields.as_slice() {
            [one] if one.starts_with('@') => {
                let line = crontab::shortcut(one).ok_or_else(|| {
                    not_a_schedule(
                        "the shortcuts are @hourly, @daily, @weekly, @monthly and @yearly",
                    )
                })?;
                let fields: Vec<&str> = line.split(' ').collect();
                Spec::parse(&fields).map_err(|e| not_a_schedule(&e))?
            }
            fields if (5..=7).contains(&fields.len()) => {
                Spec::parse(fields).map_err(|e| not_a_schedule(&e))?
            }
            _ => {
                return Err(not_a_schedule(
                    "write 5 crontab fields (minute hour day-of-month month day-of-week), e.g. '0 8 * * mon-fri'",
                ));
            }
        };
        Ok(Self {
            expr: written,
            tz,
            spec,
            calendar: None,
        })
    }

    /// The same schedule, running only on business days of `calendar` (the tick's local date
    /// is what counts).
    pub fn with_calendar(mut self, calendar: Arc<Calendar>) -> Self {
        self.calendar = Some(calendar);
        self
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    pub fn calendar(&self) -> Option<&Calendar> {
        self.calendar.as_deref()
    }

    /// The expression as written (white space tidied).
    pub fn expression(&self) -> &str {
        &self.expr
    }

    /// Short text for listings: `0 8 * * mon-fri in Europe/Berlin, business days of DE`.
    pub fn describe(&self) -> String {
        match &self.calendar {
            Some(c) => format!(
                "{} in {}, business days of {}",
                self.expr,
                self.tz.name(),
                c.name()
            ),
            None => format!("{} in {}", self.expr, self.tz.name()),
        }
    }

    fn date_ok(&self, date: chrono::NaiveDate) -> bool {
        self.calendar
            .as_ref()
            .is_none_or(|c| c.is_business_day(date))
    }

    /// The first tick strictly after `after`; `None` when there is none before the end of 2100
    /// (the last year the `cron` crate computes).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut from = local_time(after, self.tz)?;
        for _ in 0..MAX_SKIPPED {
            let local = self.spec.next_after(from, |d| self.date_ok(d))?;
            let tick = local_to_utc(local, self.tz);
            if tick > after {
                return Some(tick);
            }
            // A repeated local time already run in its first pass.
            from = local;
        }
        None
    }

    /// The last tick at or before `now`, looking back no further than `since` (exclusive);
    /// found directly (backwards), not by stepping through the ticks in between.
    pub fn latest_between(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if now <= since {
            return None;
        }
        let local_now = local_time(now, self.tz)?;
        // In the second pass of a repeated hour, local times up to an hour (the repeat) past
        // `local_now` resolve to their first pass, before `now`.
        let repeat = match self.tz.from_local_datetime(&local_now) {
            LocalResult::Ambiguous(first, second) if second.with_timezone(&Utc) == now => {
                second - first
            }
            _ => Duration::zero(),
        };
        let mut until = local_now.checked_add_signed(repeat)?;
        // A day before `since`'s local date: offsets never differ by more.
        let floor = local_time(since, self.tz)
            .and_then(|l| l.date().pred_opt())
            .unwrap_or(chrono::NaiveDate::MIN);
        for _ in 0..MAX_SKIPPED {
            let local = self
                .spec
                .last_at_or_before(until, floor, |d| self.date_ok(d))?;
            let tick = local_to_utc(local, self.tz);
            if tick <= now {
                return (tick > since).then_some(tick);
            }
            until = local.checked_sub_signed(Duration::seconds(1))?;
        }
        None
    }

    /// Which single tick to run now, given the last tick that ran (or when the schedule began
    /// counting): of the ticks in `(last_tick, now]`, the latest, if `missed` lets it run.
    /// `Latest` runs it however old; `Skip` runs it only when it came due within `grace` of
    /// `now`, and otherwise none (the caller then records the latest tick, or `now`, as seen).
    /// The work is bounded whatever the gap: the latest tick is found directly.
    pub fn due(
        &self,
        last_tick: DateTime<Utc>,
        now: DateTime<Utc>,
        missed: Missed,
        grace: std::time::Duration,
    ) -> Option<DateTime<Utc>> {
        let latest = self.latest_between(last_tick, now)?;
        match missed {
            Missed::Latest => Some(latest),
            Missed::Skip => {
                let grace = Duration::from_std(grace).unwrap_or(Duration::MAX);
                (now.signed_duration_since(latest) <= grace).then_some(latest)
            }
        }
    }
}

#[cfg(test)]
mod tests;
