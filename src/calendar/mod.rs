//! Business-day calendars, quiet hours, local wall-clock times and the delays rule authors
//! write (`3 business days`, `2h`). Pure: no store, no IO, no clock (callers pass `now`).
//!
//! Owns the `calendars:` and `quiet_hours:` sections of the service config (the raw
//! [`CalendarConfig`] and [`QuietHoursConfig`]) and turns them into what the engine runs:
//! [`Calendars`] (the built-ins plus the configured ones, shared behind an `Arc`), [`Calendar`],
//! [`QuietHours`] and [`Offset`]. Scripts (`is_business_day`, `add_business_days`, ...) and
//! schedules (business days only) read them.
//!
//! Built-in calendars, today's rules applied to every year (they are meant for 1900..=2200;
//! earlier years had other holidays):
//!
//! - `DE`: Germany's nationwide holidays (no state's): January 1, Good Friday, Easter Monday,
//!   May 1, Ascension, Whit Monday, October 3, December 25 and 26.
//! - `ES`: Spain's national holidays (no region's): January 1 and 6, Good Friday, May 1,
//!   August 15, October 12, November 1, December 6, 8 and 25.
//! - `CL`: Chile: January 1, Good Friday, Holy Saturday, May 1 and 21, July 16, August 15,
//!   September 18 and 19, November 1, December 8 and 25, and June 29 and October 12 moved to a
//!   Monday by Ley 19.668 (from a Tuesday, Wednesday or Thursday to the Monday before, from a
//!   Friday to the Monday after). Chile's holidays that vary from year to year are not built
//!   in and belong in the config's `holidays:` (`calendars: { CL: { extends: CL, holidays:
//!   [...] } }`): the National Day of Indigenous Peoples (the winter solstice, June 20 or 21),
//!   the Day of the Evangelical Churches (October 31, itself moved in some years), and the
//!   days that laws add around September 18 or after a Sunday January 1.
//! - `weekdays`: Monday to Friday, no holidays.
//!
//! Easter is computed by the anonymous Gregorian algorithm. Easter-based holidays are the
//! Western churches' (Orthodox Easter is not used).

mod holidays;
mod time;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::Deserialize;

use holidays::Nation;
pub use holidays::easter;
pub use time::{
    Offset, QuietHours, QuietHoursConfig, local_date, local_time, local_to_utc, time_of_day,
    time_zone,
};

/// A calendar as written in the service config, under `calendars:` (a map from the name rules
/// use to its definition):
///
/// ```yaml
/// calendars:
///   acme: { extends: DE, holidays: ["2026-12-24", "2026-12-31"] }
///   DE: { extends: DE, not_holidays: ["2026-10-03"] }   # a built-in, amended
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// The calendar this one starts from: a built-in (`DE`, `ES`, `CL`, `weekdays`) or another
    /// configured calendar. Its weekend and holidays are inherited. A calendar that extends its
    /// own name amends the built-in of that name. Without it, the calendar starts from no
    /// holidays and a Saturday and Sunday weekend.
    #[serde(default)]
    pub extends: Option<String>,
    /// The days that are never business days: `mon`..`sun` (or full names), any case.
    /// Default: the extended calendar's weekend, else `[sat, sun]`. `[]` means none.
    #[serde(default)]
    pub weekend: Option<Vec<String>>,
    /// Extra holidays, as ISO dates (`"2026-12-24"`).
    #[serde(default)]
    pub holidays: Vec<String>,
    /// Dates that are not holidays even though the extended calendar has them (ISO dates).
    #[serde(default)]
    pub not_holidays: Vec<String>,
}

/// The longest stretch [`Calendar::add_business_days`] looks through: about 1000 years.
const MAX_DAYS: u64 = 1000 * 366;

/// A calendar of business days: a weekend, national holidays by rule (built-ins), dates added
/// and dates removed.
#[derive(Clone, PartialEq, Eq)]
pub struct Calendar {
    name: String,
    /// Indexed by `Weekday::num_days_from_monday`.
    weekend: [bool; 7],
    nation: Option<Nation>,
    added: BTreeSet<NaiveDate>,
    removed: BTreeSet<NaiveDate>,
}

impl fmt::Debug for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Calendar")
            .field("name", &self.name)
            .field("weekend", &self.weekend_days())
            .field("nation", &self.nation)
            .field("added", &self.added.len())
            .field("removed", &self.removed.len())
            .finish()
    }
}

const WEEK: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

impl Calendar {
    fn new(name: &str, weekend: &[Weekday], nation: Option<Nation>) -> Self {
        let mut days = [false; 7];
        for day in weekend {
            days[day.num_days_from_monday() as usize] = true;
        }
        Self {
            name: name.to_owned(),
            weekend: days,
            nation,
            added: BTreeSet::new(),
            removed: BTreeSet::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The weekend days, Monday first.
    pub fn weekend_days(&self) -> Vec<Weekday> {
        WEEK.into_iter()
            .filter(|d| self.weekend[d.num_days_from_monday() as usize])
            .collect()
    }

    /// True on a holiday of this calendar (whether or not it falls on a weekend).
    pub fn is_holiday(&self, date: NaiveDate) -> bool {
        !self.removed.contains(&date)
            && (self.added.contains(&date) || self.nation.is_some_and(|n| n.is_holiday(date)))
    }

    /// True when `date` is neither a weekend day nor a holiday.
    pub fn is_business_day(&self, date: NaiveDate) -> bool {
        !self.weekend[date.weekday().num_days_from_monday() as usize] && !self.is_holiday(date)
    }

    /// `date` moved by `n` business days:
    ///
    /// - `n > 0`: forward; the n-th business day after `date` (Saturday + 1 = Monday).
    /// - `n < 0`: backward; the n-th business day before `date`.
    /// - `n == 0`: `date` itself if it is a business day, else the next one.
    ///
    /// `None` when the answer lies beyond about 1000 years, outside chrono's dates, or the
    /// calendar has no business days at all (a seven-day weekend).
    pub fn add_business_days(&self, date: NaiveDate, n: i64) -> Option<NaiveDate> {
        if self.weekend.iter().all(|&w| w) || n.unsigned_abs() > MAX_DAYS {
            return None;
        }
        if n == 0 {
            return if self.is_business_day(date) {
                Some(date)
            } else {
                self.add_business_days(date, 1)
            };
        }
        let mut left = n.unsigned_abs();
        let mut day = date;
        for _ in 0..MAX_DAYS {
            day = if n > 0 {
                day.checked_add_days(Days::new(1))?
            } else {
                day.checked_sub_days(Days::new(1))?
            };
            if self.is_business_day(day) {
                left -= 1;
                if left == 0 {
                    return Some(day);
                }
            }
        }
        None
    }

    /// The first business day after `date` (`date` + 1 business day).
    pub fn next_business_day(&self, date: NaiveDate) -> Option<NaiveDate> {
        self.add_business_days(date, 1)
    }
}

/// The calendars rules and schedules may name: the built-ins, then the configured ones (which
/// may replace a built-in of the same name). Cheap to share: hold it in an `Arc`.
#[derive(Debug, Clone)]
pub struct Calendars {
    by_name: BTreeMap<String, Arc<Calendar>>,
    /// The quiet hours scripts ask about (`is_quiet_hours`), kept with the calendars because
    /// both are the deployment's view of working time.
    quiet_hours: QuietHours,
}

impl Default for Calendars {
    /// The built-in calendars.
    fn default() -> Self {
        Self::builtin()
    }
}

impl Calendars {
    /// `DE`, `ES`, `CL` and `weekdays` (see the module documentation).
    pub fn builtin() -> Self {
        let weekend = [Weekday::Sat, Weekday::Sun];
        let by_name = [
            Calendar::new("DE", &weekend, Some(Nation::De)),
            Calendar::new("ES", &weekend, Some(Nation::Es)),
            Calendar::new("CL", &weekend, Some(Nation::Cl)),
            Calendar::new("weekdays", &weekend, None),
        ]
        .into_iter()
        .map(|c| (c.name.clone(), Arc::new(c)))
        .collect();
        Self {
            by_name,
            quiet_hours: QuietHours::default(),
        }
    }

    /// The same calendars with these quiet hours.
    pub fn with_quiet_hours(mut self, quiet_hours: QuietHours) -> Self {
        self.quiet_hours = quiet_hours;
        self
    }

    pub fn quiet_hours(&self) -> QuietHours {
        self.quiet_hours
    }

    /// The built-ins, plus the configured calendars on top (a configured name replaces a
    /// built-in one). Every problem is reported, each a sentence naming its place in the
    /// config (`calendars.acme.holidays: ...`).
    pub fn from_config(configs: &BTreeMap<String, CalendarConfig>) -> Result<Self, Vec<String>> {
        let builtin = Self::builtin();
        let mut known: BTreeSet<&str> = builtin.by_name.keys().map(String::as_str).collect();
        known.extend(configs.keys().map(String::as_str));
        let known: Vec<&str> = known.into_iter().collect();
        let mut resolver = Resolver {
            configs,
            builtin: &builtin,
            known: &known,
            done: BTreeMap::new(),
            errors: Vec::new(),
        };
        for name in configs.keys() {
            resolver.resolve(name, &mut Vec::new());
        }
        let Resolver { done, errors, .. } = resolver;
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut by_name = builtin.by_name;
        for (name, calendar) in done {
            if let Some(calendar) = calendar {
                by_name.insert(name, calendar);
            }
        }
        Ok(Self {
            by_name,
            quiet_hours: QuietHours::default(),
        })
    }

    pub fn get(&self, name: &str) -> Option<&Calendar> {
        self.by_name.get(name).map(|c| &**c)
    }

    /// The calendar, shared (for a schedule that keeps it).
    pub fn get_shared(&self, name: &str) -> Option<Arc<Calendar>> {
        self.by_name.get(name).cloned()
    }

    /// The calendar, or a sentence naming the known ones: "'DX' is not a calendar (known:
    /// CL, DE, ES, weekdays); did you mean 'DE'?".
    pub fn find(&self, name: &str) -> Result<&Calendar, String> {
        self.get(name)
            .ok_or_else(|| not_a_calendar(name, &self.names().collect::<Vec<_>>()))
    }

    /// The names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

/// "'DX' is not a calendar (known: CL, DE, ES, weekdays); did you mean 'DE'?"
fn not_a_calendar(name: &str, known: &[&str]) -> String {
    format!(
        "'{name}' is not a calendar {}",
        known_calendars(name, known)
    )
}

/// "(known: CL, DE, ES, weekdays); did you mean 'DE'?"
fn known_calendars(name: &str, known: &[&str]) -> String {
    let hint = suggest(name, known)
        .map(|s| format!("; did you mean '{s}'?"))
        .unwrap_or_default();
    format!("(known: {}){hint}", known.join(", "))
}

/// The candidate `word` was most likely meant to be: the same but for case, else the closest
/// (Jaro-Winkler above 0.85), else the only one a letter away from a name of at most four
/// letters (`DX` for `DE`).
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_lowercase();
    if let Some(same) = candidates.iter().find(|c| c.to_lowercase() == lower) {
        return Some(same);
    }
    let closest = candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_lowercase()), *c))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((_, c)) = closest {
        return Some(c);
    }
    let mut near = candidates
        .iter()
        .filter(|c| c.chars().count() <= 4 && strsim::levenshtein(&lower, &c.to_lowercase()) == 1);
    match (near.next(), near.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

/// A weekday by name: `mon`..`sun` or `monday`..`sunday`, any case.
pub fn weekday(name: &str) -> Option<Weekday> {
    let lower = name.trim().to_lowercase();
    WEEK.into_iter().find(|d| {
        let full = match d {
            Weekday::Mon => "monday",
            Weekday::Tue => "tuesday",
            Weekday::Wed => "wednesday",
            Weekday::Thu => "thursday",
            Weekday::Fri => "friday",
            Weekday::Sat => "saturday",
            Weekday::Sun => "sunday",
        };
        lower == full || lower == full[..3]
    })
}

/// Resolves configured calendars in dependency order, each once, collecting every error.
struct Resolver<'a> {
    configs: &'a BTreeMap<String, CalendarConfig>,
    builtin: &'a Calendars,
    known: &'a [&'a str],
    /// `None`: resolved with errors (already reported).
    done: BTreeMap<String, Option<Arc<Calendar>>>,
    errors: Vec<String>,
}

impl Resolver<'_> {
    fn resolve(&mut self, name: &str, stack: &mut Vec<String>) -> Option<Arc<Calendar>> {
        if let Some(done) = self.done.get(name) {
            return done.clone();
        }
        let config = self.configs.get(name)?;
        let at = format!("calendars.{name}");
        let mut ok = true;
        if name.trim().is_empty() {
            self.errors
                .push("calendars: a calendar needs a name (got an empty one)".into());
            ok = false;
        }
        stack.push(name.to_owned());
        let base = match config.extends.as_deref() {
            None => Some(Arc::new(Calendar::new(
                name,
                &[Weekday::Sat, Weekday::Sun],
                None,
            ))),
            // Extending one's own name amends the built-in of that name.
            Some(parent) if parent == name => match self.builtin.get_shared(parent) {
                Some(builtin) => Some(builtin),
                None => {
                    self.errors.push(format!(
                        "{at}: extends itself ('{parent}' is not a built-in calendar: {})",
                        self.builtin.names().collect::<Vec<_>>().join(", ")
                    ));
                    None
                }
            },
            Some(parent) if stack.iter().any(|s| s == parent) => {
                let cycle = stack
                    .iter()
                    .skip_while(|s| *s != parent)
                    .map(|s| format!("'{s}'"))
                    .collect::<Vec<_>>()
                    .join(" extends ");
                self.errors.push(format!(
                    "{at}: extends '{parent}', which leads back to it ({cycle} extends '{parent}')"
                ));
                None
            }
            Some(parent) if self.configs.contains_key(parent) => self.resolve(parent, stack),
            Some(parent) => match self.builtin.get_shared(parent) {
                Some(builtin) => Some(builtin),
                None => {
                    self.errors.push(format!(
                        "{at}: extends '{parent}', which is not a calendar {}",
                        known_calendars(parent, self.known)
                    ));
                    None
                }
            },
        };
        stack.pop();
        let mut calendar = Calendar::clone(base.as_deref().unwrap_or(&Calendar::new(
            name,
            &[Weekday::Sat, Weekday::Sun],
            None,
        )));
        ok &= base.is_some();
        calendar.name = name.to_owned();
        if let Some(weekend) = &config.weekend {
            calendar.weekend = [false; 7];
            for day in weekend {
                match weekday(day) {
                    Some(d) => calendar.weekend[d.num_days_from_monday() as usize] = true,
                    None => {
                        self.errors.push(format!(
                            "{at}.weekend: '{day}' is not a day of the week (mon, tue, wed, thu, fri, sat, sun)"
                        ));
                        ok = false;
                    }
                }
            }
        }
        let holidays = self.dates(&format!("{at}.holidays"), &config.holidays, &mut ok);
        let not_holidays = self.dates(&format!("{at}.not_holidays"), &config.not_holidays, &mut ok);
        for both in holidays.intersection(&not_holidays) {
            self.errors
                .push(format!("{at}: {both} is in both holidays and not_holidays"));
            ok = false;
        }
        for date in &not_holidays {
            calendar.added.remove(date);
        }
        for date in &holidays {
            calendar.removed.remove(date);
        }
        calendar.added.extend(holidays);
        calendar.removed.extend(not_holidays);
        let resolved = ok.then(|| Arc::new(calendar));
        self.done.insert(name.to_owned(), resolved.clone());
        resolved
    }

    fn dates(&mut self, at: &str, texts: &[String], ok: &mut bool) -> BTreeSet<NaiveDate> {
        let mut dates = BTreeSet::new();
        for text in texts {
            match NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
                Ok(date) => {
                    dates.insert(date);
                }
                Err(_) => {
                    self.errors
                        .push(format!("{at}: '{text}' is not a date (YYYY-MM-DD)"));
                    *ok = false;
                }
            }
        }
        dates
    }
}

#[cfg(test)]
mod tests;
