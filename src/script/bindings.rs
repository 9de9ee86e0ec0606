//! Host functions for rule authors: time, money, text, logging, skipping. All pure.
//!
//! Times are RFC 3339 strings (as in the event: `event.occurred_at`) or bare dates
//! (`2026-11-20`); functions that return a time return RFC 3339 in UTC.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rhai::{Dynamic, Engine, EvalAltResult, ImmutableString, Map, NativeCallContext, Position};
use rust_decimal::Decimal;

use super::Session;
use crate::calendar;
use crate::normalize::fields::minor_unit_digits;

type Fallible<T> = Result<T, Box<EvalAltResult>>;

const SKIP_MARK: &str = "\u{0}skip\u{0}";

fn fail<T>(message: String) -> Fallible<T> {
    Err(Box::new(EvalAltResult::ErrorRuntime(
        message.into(),
        Position::NONE,
    )))
}

/// The reason given to `skip(...)`, if `e` is a skip rather than an error.
pub fn skip_reason(e: &EvalAltResult) -> Option<String> {
    match e {
        EvalAltResult::ErrorRuntime(value, _) => value
            .clone()
            .into_string()
            .ok()?
            .strip_prefix(SKIP_MARK)
            .map(str::to_owned),
        _ => None,
    }
}

pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()?
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
}

fn time(text: &str) -> Fallible<DateTime<Utc>> {
    parse_time(text).map_or_else(|| fail(format!("'{text}' is not a time (RFC 3339 such as 2026-11-20T08:00:00Z, or a date 2026-11-20)")), Ok)
}

/// `t` moved by `by` (`n` `unit`), or an error when that leaves the calendar.
fn shift(t: DateTime<Utc>, by: Option<Duration>, n: i64, unit: &str) -> Fallible<String> {
    by.and_then(|by| t.checked_add_signed(by)).map_or_else(
        || {
            fail(format!(
                "{n} {unit} from {} is beyond the calendar",
                render(t)
            ))
        },
        |t| Ok(render(t)),
    )
}

/// `t` written with a strftime `format` (`%Y-%m-%d %H:%M`), or an error naming a bad format
/// (chrono's `to_string` would panic on it).
fn format_time<Tz: chrono::TimeZone>(t: &DateTime<Tz>, format: &str) -> Fallible<String>
where
    Tz::Offset: std::fmt::Display,
{
    use std::fmt::Write;
    let items = chrono::format::StrftimeItems::new(format);
    let mut out = String::new();
    match write!(out, "{}", t.format_with_items(items)) {
        Ok(()) => Ok(out),
        Err(_) => fail(format!(
            "'{format}' is not a time format (strftime, e.g. %Y-%m-%d %H:%M)"
        )),
    }
}

fn render(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn tz(name: &str) -> Fallible<chrono_tz::Tz> {
    calendar::time_zone(name).map_or_else(fail, Ok)
}

/// `t` as a local wall-clock time in `zone`: a bare date (`2026-11-20`) is that date at 00:00
/// local (not the UTC midnight other functions read, which is another day west of UTC).
fn local(t: &str, zone: chrono_tz::Tz) -> Fallible<chrono::NaiveDateTime> {
    if let Ok(date) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN));
    }
    calendar::local_time(time(t)?, zone)
        .map_or_else(|| fail(format!("'{t}' is beyond the calendar")), Ok)
}

/// The instant `t` stands for in `zone` (a bare date: its local midnight).
fn instant(t: &str, zone: chrono_tz::Tz) -> Fallible<DateTime<Utc>> {
    if NaiveDate::parse_from_str(t, "%Y-%m-%d").is_ok() {
        return Ok(calendar::local_to_utc(local(t, zone)?, zone));
    }
    time(t)
}

/// `t` moved by `n` business days of the calendar named `name`, keeping the local time of day
/// in `zone`.
fn add_business_days(
    session: &Session,
    t: &str,
    n: i64,
    name: &str,
    zone: chrono_tz::Tz,
) -> Fallible<String> {
    let calendar = session.calendars().find(name).map_or_else(fail, Ok)?;
    let start = local(t, zone)?;
    match calendar.add_business_days(start.date(), n) {
        Some(date) => Ok(render(calendar::local_to_utc(
            date.and_time(start.time()),
            zone,
        ))),
        None if calendar.weekend_days().len() == 7 => fail(format!(
            "calendar '{name}' has no business days (every day is its weekend)"
        )),
        None => fail(format!("{n} business days from {t} is beyond the calendar")),
    }
}

fn is_business_day(session: &Session, t: &str, name: &str, zone: chrono_tz::Tz) -> Fallible<bool> {
    let calendar = session.calendars().find(name).map_or_else(fail, Ok)?;
    Ok(calendar.is_business_day(local(t, zone)?.date()))
}

/// The instant of wall-clock `time_of_day` (`09:00`) in `zone` on the local date of `t`
/// (a bare date: that date); a skipped or repeated local time resolved as
/// [`calendar::local_to_utc`] says.
fn at_local(t: &str, time_of_day: &str, zone: chrono_tz::Tz) -> Fallible<String> {
    let date = local(t, zone)?.date();
    let at = calendar::time_of_day(time_of_day).map_or_else(fail, Ok)?;
    Ok(render(calendar::local_to_utc(date.and_time(at), zone)))
}

/// An amount: the event's `amount` map (`#{value: "192.38", currency: "EUR"}`), or a number or
/// decimal string with `currency` given apart.
fn decimal(value: &Dynamic) -> Fallible<Decimal> {
    if let Some(map) = value.read_lock::<Map>() {
        return match map.get("value") {
            Some(v) => decimal(v),
            None => fail("an amount map needs a 'value'".into()),
        };
    }
    if let Ok(d) = value.as_decimal() {
        return Ok(d);
    }
    if let Ok(i) = value.as_int() {
        return Ok(Decimal::from(i));
    }
    if let Ok(f) = value.as_float() {
        return Decimal::try_from(f).map_or_else(|_| fail(format!("{f} is not an amount")), Ok);
    }
    if let Some(s) = value.read_lock::<ImmutableString>() {
        return s
            .trim()
            .parse()
            .map_or_else(|_| fail(format!("'{}' is not an amount", s.as_str())), Ok);
    }
    if value.is_unit() {
        return fail("no amount (the event has none?)".into());
    }
    fail(format!("a {} is not an amount", value.type_name()))
}

fn currency_of(value: &Dynamic) -> Option<String> {
    value
        .read_lock::<Map>()?
        .get("currency")?
        .clone()
        .into_string()
        .ok()
}

fn minor_units(value: &Dynamic, currency: Option<&str>) -> Fallible<i64> {
    let amount = decimal(value)?;
    let too_large = || fail(format!("{amount} is too large"));
    let Some(scaled) = amount.checked_mul(Decimal::from(10_i64.pow(minor_unit_digits(currency))))
    else {
        return too_large();
    };
    if !scaled.fract().is_zero() {
        return fail(format!(
            "{amount} has more decimals than {} allows",
            currency.unwrap_or("the currency")
        ));
    }
    i64::try_from(scaled).map_or_else(|_| too_large(), Ok)
}

fn format_money(value: &Dynamic, currency: Option<&str>) -> Fallible<String> {
    Ok(money_text(decimal(value)?, currency))
}

/// `1,234.50 EUR`: grouped thousands, the currency's minor-unit decimals, the code after.
pub fn money_text(mut amount: Decimal, currency: Option<&str>) -> String {
    let digits = minor_unit_digits(currency);
    amount.rescale(digits);
    let text = amount.abs().to_string();
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if amount.is_sign_negative() && !amount.is_zero() {
        "-"
    } else {
        ""
    };
    let number = if fraction.is_empty() {
        grouped
    } else {
        format!("{grouped}.{fraction}")
    };
    match currency {
        Some(c) => format!("{sign}{number} {c}"),
        None => format!("{sign}{number}"),
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first)
        || !text[first.len()..].ends_with(last)
        || text.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// What a value is, in an author's words.
fn kind_of(value: &Dynamic) -> &'static str {
    if value.is_unit() {
        "nothing (the field is absent)"
    } else if value.is_string() {
        "text"
    } else if value.is_int() || value.is_float() || value.is_decimal() {
        "a number"
    } else if value.is_bool() {
        "true/false"
    } else {
        "a value of another kind"
    }
}

/// Comparing text with a number, or ordering nothing (an absent field) against a value, would
/// silently be false in Rhai: here it is an error that says what was compared.
fn mismatched(op: &str, a: &Dynamic, b: &Dynamic) -> Fallible<bool> {
    let hint = if a.is_unit() || b.is_unit() {
        " (use `??` to give a default, e.g. `(event.data.n ?? 0) > 3`, or check `!= ()` first)"
    } else if a.is_string() || b.is_string() {
        " (text is not a number: convert it with parse_int(...) or parse_decimal(...))"
    } else {
        ""
    };
    fail(format!(
        "cannot compare {} with {} using {op}{hint}",
        kind_of(a),
        kind_of(b)
    ))
}

/// Registers `op` for the pairs of kinds whose comparison Rhai would answer `false` silently.
fn register_mismatches(engine: &mut Engine) {
    use rhai::{FLOAT, INT};
    macro_rules! refuse {
        ($op:literal, $($a:ty, $b:ty);* $(;)?) => {
            $(
                engine.register_fn($op, |a: $a, b: $b| mismatched($op, &Dynamic::from(a), &Dynamic::from(b)));
            )*
        };
    }
    for_each_comparison!(refuse);
}

/// Applies `$m!(op, pairs)` to every comparison operator with the pairs it refuses.
macro_rules! for_each_comparison {
    ($m:ident) => {
        $m!("==", ImmutableString, INT; INT, ImmutableString; ImmutableString, FLOAT; FLOAT, ImmutableString; ImmutableString, Decimal; Decimal, ImmutableString);
        $m!("!=", ImmutableString, INT; INT, ImmutableString; ImmutableString, FLOAT; FLOAT, ImmutableString; ImmutableString, Decimal; Decimal, ImmutableString);
        $m!(">", ImmutableString, INT; INT, ImmutableString; ImmutableString, FLOAT; FLOAT, ImmutableString; ImmutableString, Decimal; Decimal, ImmutableString; (), INT; INT, (); (), FLOAT; FLOAT, (); (), Decimal; Decimal, (); (), ImmutableString; ImmutableString, ());
        $m!(">=", ImmutableString, INT; INT, ImmutableString; ImmutableString, FLOAT; FLOAT, ImmutableString; ImmutableString, Decimal; Decimal, ImmutableString; (), INT; INT, (); (), FLOAT; FLOAT, (); (), Decimal; Decimal, (); (), ImmutableString; ImmutableString, ());
        $m!("<", ImmutableString, INT; INT, ImmutableString; ImmutableString, FLOAT; FLOAT, ImmutableString; ImmutableString, Decimal; Decimal, ImmutableString; (), INT; INT, (); (), FLOAT; FLOAT, (); (), Decimal; Decimal, (); (), ImmutableString; ImmutableString, ());
        $m!("<=", ImmutableString, INT; INT, ImmutableString; ImmutableString, FLOAT; FLOAT, ImmutableString; ImmutableString, Decimal; Decimal, ImmutableString; (), INT; INT, (); (), FLOAT; FLOAT, (); (), Decimal; Decimal, (); (), ImmutableString; ImmutableString, ());
    };
}
use for_each_comparison;

/// Money compared with a float literal (`event.amount.value > 500.5`): as decimals.
fn register_decimal_float(engine: &mut Engine) {
    use rhai::FLOAT;
    fn exact(f: FLOAT) -> Fallible<Decimal> {
        Decimal::try_from(f).map_or_else(|_| fail(format!("{f} is not an amount")), Ok)
    }
    engine.register_fn(">", |a: Decimal, b: FLOAT| {
        Ok::<_, Box<EvalAltResult>>(a > exact(b)?)
    });
    engine.register_fn(">=", |a: Decimal, b: FLOAT| {
        Ok::<_, Box<EvalAltResult>>(a >= exact(b)?)
    });
    engine.register_fn("<", |a: Decimal, b: FLOAT| {
        Ok::<_, Box<EvalAltResult>>(a < exact(b)?)
    });
    engine.register_fn("<=", |a: Decimal, b: FLOAT| {
        Ok::<_, Box<EvalAltResult>>(a <= exact(b)?)
    });
    engine.register_fn("==", |a: Decimal, b: FLOAT| {
        Ok::<_, Box<EvalAltResult>>(a == exact(b)?)
    });
    engine.register_fn("!=", |a: Decimal, b: FLOAT| {
        Ok::<_, Box<EvalAltResult>>(a != exact(b)?)
    });
    engine.register_fn(">", |a: FLOAT, b: Decimal| {
        Ok::<_, Box<EvalAltResult>>(exact(a)? > b)
    });
    engine.register_fn(">=", |a: FLOAT, b: Decimal| {
        Ok::<_, Box<EvalAltResult>>(exact(a)? >= b)
    });
    engine.register_fn("<", |a: FLOAT, b: Decimal| {
        Ok::<_, Box<EvalAltResult>>(exact(a)? < b)
    });
    engine.register_fn("<=", |a: FLOAT, b: Decimal| {
        Ok::<_, Box<EvalAltResult>>(exact(a)? <= b)
    });
    engine.register_fn("==", |a: FLOAT, b: Decimal| {
        Ok::<_, Box<EvalAltResult>>(exact(a)? == b)
    });
    engine.register_fn("!=", |a: FLOAT, b: Decimal| {
        Ok::<_, Box<EvalAltResult>>(exact(a)? != b)
    });
}

/// `state(name)`: the entry's value, or `()`.
fn state_get(ctx: &NativeCallContext, name: &str) -> Fallible<Dynamic> {
    let session = Session::of(ctx)?;
    let value = session.with_state(|scope| scope.entries.get(name).cloned());
    match value {
        Some(v) => rhai::serde::to_dynamic(v),
        None => Ok(Dynamic::UNIT),
    }
}

/// `set_state(name, value[, expiry])` and `clear_state(name)` (`value` `None`).
fn state_set(
    ctx: &NativeCallContext,
    name: &str,
    value: Option<Dynamic>,
    expiry: Option<&str>,
) -> Fallible<()> {
    use super::{MAX_STATE_ENTRIES, MAX_STATE_NAME, MAX_STATE_VALUE};
    let session = Session::of(ctx)?;
    if name.is_empty() || name.chars().count() > MAX_STATE_NAME {
        return fail(format!("a state name has 1 to {MAX_STATE_NAME} characters"));
    }
    let value: Option<serde_json::Value> = match value {
        Some(v) => {
            let json: serde_json::Value = rhai::serde::from_dynamic(&v)
                .map_err(|e| format!("set_state('{name}'): the value cannot be kept: {e}"))?;
            let size = json.to_string().len();
            if size > MAX_STATE_VALUE {
                return fail(format!(
                    "set_state('{name}'): the value is {size} bytes as JSON; state keeps at most {MAX_STATE_VALUE}"
                ));
            }
            Some(json)
        }
        None => None,
    };
    let expiry = match expiry {
        Some(text) => {
            let d = humantime::parse_duration(text).map_err(|e| {
                format!("set_state('{name}'): '{text}' is not a duration such as 30d or 12h: {e}")
            })?;
            if d > super::MAX_STATE_EXPIRY {
                return fail(format!(
                    "set_state('{name}'): '{text}' is longer than state is kept ({} days at most)",
                    super::MAX_STATE_EXPIRY.as_secs() / 86_400
                ));
            }
            Some(d)
        }
        None => None,
    };
    session.with_state(|scope| {
        if scope.subject.is_none() {
            return match scope.key {
                None => fail(
                    "this rule keeps no state: add `state: claim` (or account, debtor) to it"
                        .into(),
                ),
                Some(key) => fail(format!("the event has no {key} to keep state for")),
            };
        }
        match &value {
            Some(v) => {
                if !scope.entries.contains_key(name) && scope.entries.len() >= MAX_STATE_ENTRIES {
                    return fail(format!(
                        "a subject keeps at most {MAX_STATE_ENTRIES} state entries"
                    ));
                }
                scope.entries.insert(name.to_owned(), v.clone());
            }
            None => {
                scope.entries.remove(name);
            }
        }
        let expiry = value
            .as_ref()
            .map(|_| expiry.unwrap_or(super::DEFAULT_STATE_EXPIRY));
        scope.writes.push((name.to_owned(), value, expiry));
        Ok(())
    })
}

pub fn register(engine: &mut Engine) {
    engine.register_fn("state", |ctx: NativeCallContext, name: &str| {
        state_get(&ctx, name)
    });
    engine.register_fn(
        "set_state",
        |ctx: NativeCallContext, name: &str, value: Dynamic| {
            state_set(&ctx, name, Some(value), None)
        },
    );
    engine.register_fn(
        "set_state",
        |ctx: NativeCallContext, name: &str, value: Dynamic, expiry: &str| {
            state_set(&ctx, name, Some(value), Some(expiry))
        },
    );
    engine.register_fn("clear_state", |ctx: NativeCallContext, name: &str| {
        state_set(&ctx, name, None, None)
    });
    register_mismatches(engine);
    register_decimal_float(engine);
    // Time
    engine.register_fn("now", |ctx: NativeCallContext| {
        Ok::<_, Box<EvalAltResult>>(render(Session::of(&ctx)?.now()))
    });
    engine.register_fn("parse_time", |t: &str| time(t).map(render));
    engine.register_fn("days_between", |a: &str, b: &str| {
        Ok::<_, Box<EvalAltResult>>((time(b)? - time(a)?).num_days())
    });
    engine.register_fn("hours_between", |a: &str, b: &str| {
        Ok::<_, Box<EvalAltResult>>((time(b)? - time(a)?).num_hours())
    });
    engine.register_fn("add_days", |t: &str, n: i64| {
        shift(time(t)?, Duration::try_days(n), n, "days")
    });
    engine.register_fn("add_hours", |t: &str, n: i64| {
        shift(time(t)?, Duration::try_hours(n), n, "hours")
    });
    engine.register_fn("is_before", |a: &str, b: &str| {
        Ok::<_, Box<EvalAltResult>>(time(a)? < time(b)?)
    });
    engine.register_fn("format_time", |t: &str, format: &str| {
        format_time(&time(t)?, format)
    });
    engine.register_fn("format_time", |t: &str, format: &str, zone: &str| {
        format_time(&time(t)?.with_timezone(&tz(zone)?), format)
    });
    engine.register_fn("weekday", |t: &str, zone: &str| {
        Ok::<_, Box<EvalAltResult>>(time(t)?.with_timezone(&tz(zone)?).format("%a").to_string())
    });
    engine.register_fn("hour_of_day", |t: &str, zone: &str| {
        Ok::<_, Box<EvalAltResult>>(i64::from(chrono::Timelike::hour(
            &time(t)?.with_timezone(&tz(zone)?),
        )))
    });
    // Business days and quiet hours (the calendars and quiet hours of the service config)
    engine.register_fn(
        "is_business_day",
        |ctx: NativeCallContext, t: &str, calendar: &str| {
            is_business_day(&*Session::of(&ctx)?, t, calendar, chrono_tz::UTC)
        },
    );
    engine.register_fn(
        "is_business_day",
        |ctx: NativeCallContext, t: &str, calendar: &str, zone: &str| {
            is_business_day(&*Session::of(&ctx)?, t, calendar, tz(zone)?)
        },
    );
    engine.register_fn(
        "add_business_days",
        |ctx: NativeCallContext, t: &str, n: i64, calendar: &str| {
            add_business_days(&*Session::of(&ctx)?, t, n, calendar, chrono_tz::UTC)
        },
    );
    engine.register_fn(
        "add_business_days",
        |ctx: NativeCallContext, t: &str, n: i64, calendar: &str, zone: &str| {
            add_business_days(&*Session::of(&ctx)?, t, n, calendar, tz(zone)?)
        },
    );
    engine.register_fn(
        "is_quiet_hours",
        |ctx: NativeCallContext, t: &str, zone: &str| {
            let zone = tz(zone)?;
            Ok::<_, Box<EvalAltResult>>(
                Session::of(&ctx)?
                    .quiet_hours()
                    .contains(instant(t, zone)?, zone),
            )
        },
    );
    engine.register_fn(
        "end_of_quiet_hours",
        |ctx: NativeCallContext, t: &str, zone: &str| {
            let zone = tz(zone)?;
            let quiet = Session::of(&ctx)?.quiet_hours();
            Ok::<_, Box<EvalAltResult>>(render(quiet.end_after(instant(t, zone)?, zone)))
        },
    );
    engine.register_fn("at_local", |t: &str, time_of_day: &str, zone: &str| {
        at_local(t, time_of_day, tz(zone)?)
    });
    // Money
    engine.register_fn("minor_units", |amount: Dynamic| {
        let currency = currency_of(&amount);
        minor_units(&amount, currency.as_deref())
    });
    engine.register_fn("minor_units", |value: Dynamic, currency: &str| {
        minor_units(&value, Some(currency))
    });
    engine.register_fn("format_money", |amount: Dynamic| {
        let currency = currency_of(&amount);
        format_money(&amount, currency.as_deref())
    });
    engine.register_fn("format_money", |value: Dynamic, currency: &str| {
        format_money(&value, Some(currency))
    });
    // Text
    engine.register_fn("matches", |text: &str, pattern: &str| {
        glob_matches(pattern, text)
    });
    engine.register_fn("is_blank", |value: Dynamic| {
        value.is_unit()
            || value
                .read_lock::<ImmutableString>()
                .is_some_and(|s| s.trim().is_empty())
    });
    // Strategy state: whether Signalbox holds the claim's collection strategy paused
    engine.register_fn("is_paused", |ctx: NativeCallContext, claim: Dynamic| {
        let session = Session::of(&ctx)?;
        Ok::<_, Box<EvalAltResult>>(
            claim
                .into_string()
                .is_ok_and(|c| session.is_paused(&c, None)),
        )
    });
    engine.register_fn(
        "is_paused",
        |ctx: NativeCallContext, claim: Dynamic, platform: &str| {
            let session = Session::of(&ctx)?;
            Ok::<_, Box<EvalAltResult>>(
                claim
                    .into_string()
                    .is_ok_and(|c| session.is_paused(&c, Some(platform))),
            )
        },
    );
    // Logging into the evaluation record, and deciding not to fire
    engine.register_fn("log", |ctx: NativeCallContext, message: Dynamic| {
        Session::of(&ctx)?.log(message.to_string());
        Ok::<_, Box<EvalAltResult>>(())
    });
    engine.register_fn("skip", |reason: &str| -> Fallible<()> {
        fail(format!("{SKIP_MARK}{reason}"))
    });
}
