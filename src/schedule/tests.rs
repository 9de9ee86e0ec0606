use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};

use super::*;
use crate::calendar::{CalendarConfig, Calendars};

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn schedule(expr: &str, tz: &str) -> Schedule {
    Schedule::parse(expr, tz).unwrap_or_else(|e| panic!("{e}"))
}

/// The first `n` ticks after `from`.
fn ticks(schedule: &Schedule, from: &str, n: usize) -> Vec<DateTime<Utc>> {
    let mut at = utc(from);
    let mut found = Vec::new();
    for _ in 0..n {
        at = schedule.next_after(at).unwrap();
        found.push(at);
    }
    found
}

/// Every tick in `[from, to)`, rendered.
fn ticks_between(schedule: &Schedule, from: &str, to: &str) -> Vec<String> {
    let (mut at, to) = (utc(from) - chrono::Duration::seconds(1), utc(to));
    let mut found = Vec::new();
    while let Some(t) = schedule.next_after(at).filter(|t| *t < to) {
        found.push(t.to_rfc3339());
        at = t;
    }
    found
}

fn de() -> Arc<Calendar> {
    Calendars::builtin().get_shared("DE").unwrap()
}

#[test]
fn weekday_numbers_mean_what_crontab_means() {
    // 2026-11-16 is a Monday.
    let s = schedule("0 9 * * 1-5", "UTC");
    let days: Vec<Weekday> = ticks(&s, "2026-11-16T00:00:00Z", 10)
        .iter()
        .map(|t| {
            assert_eq!((t.hour(), t.minute(), t.second()), (9, 0, 0));
            t.weekday()
        })
        .collect();
    use Weekday::*;
    assert_eq!(days, [Mon, Tue, Wed, Thu, Fri, Mon, Tue, Wed, Thu, Fri]);
    assert_eq!(
        ticks(
            &schedule("0 9 * * MON-fri", "UTC"),
            "2026-11-16T00:00:00Z",
            10
        ),
        ticks(&s, "2026-11-16T00:00:00Z", 10)
    );
    for sunday in ["0 0 * * 0", "0 0 * * 7", "0 0 * * sun", "0 0 * * Sunday"] {
        for t in ticks(&schedule(sunday, "UTC"), "2026-11-16T00:00:00Z", 3) {
            assert_eq!(t.weekday(), Sun, "{sunday}");
        }
    }
    let every_minute_of_sunday = schedule("* * * * 7", "UTC");
    let t = ticks(&every_minute_of_sunday, "2026-11-20T10:00:00Z", 2);
    assert_eq!(
        t,
        [utc("2026-11-22T00:00:00Z"), utc("2026-11-22T00:01:00Z")]
    );
    // Sunday closing a range is day 7.
    let weekend = schedule("0 12 * * sat-sun", "UTC");
    let days: Vec<Weekday> = ticks(&weekend, "2026-11-16T00:00:00Z", 4)
        .iter()
        .map(|t| t.weekday())
        .collect();
    assert_eq!(days, [Sat, Sun, Sat, Sun]);
}

#[test]
fn day_of_month_and_day_of_week_are_ored_when_both_are_restricted() {
    // The 1st of the month, and every Monday.
    let s = schedule("0 0 1 * mon", "UTC");
    assert_eq!(
        ticks(&s, "2026-11-25T00:00:00Z", 4),
        [
            utc("2026-11-30T00:00:00Z"), // Monday
            utc("2026-12-01T00:00:00Z"), // the 1st, a Tuesday
            utc("2026-12-07T00:00:00Z"),
            utc("2026-12-14T00:00:00Z"),
        ]
    );
    // A field starting with * is unrestricted: odd days that are Mondays (both must match).
    for t in ticks(&schedule("0 0 */2 * mon", "UTC"), "2026-11-01T00:00:00Z", 6) {
        assert_eq!(t.weekday(), Weekday::Mon, "{t}");
        assert_eq!(t.day() % 2, 1, "{t}");
    }
    // Only day-of-month restricted: the 15th, whatever the weekday.
    assert_eq!(
        ticks(&schedule("30 2 15 * *", "UTC"), "2026-11-20T00:00:00Z", 2),
        [utc("2026-12-15T02:30:00Z"), utc("2027-01-15T02:30:00Z")]
    );
}

#[test]
fn fields_steps_lists_names_and_shortcuts() {
    assert_eq!(
        ticks(&schedule("*/15 * * * *", "UTC"), "2026-11-20T10:07:00Z", 3),
        [
            utc("2026-11-20T10:15:00Z"),
            utc("2026-11-20T10:30:00Z"),
            utc("2026-11-20T10:45:00Z"),
        ]
    );
    assert_eq!(
        ticks(
            &schedule("5,35 8-9 * jan,DEC *", "UTC"),
            "2026-11-20T00:00:00Z",
            5
        ),
        [
            utc("2026-12-01T08:05:00Z"),
            utc("2026-12-01T08:35:00Z"),
            utc("2026-12-01T09:05:00Z"),
            utc("2026-12-01T09:35:00Z"),
            utc("2026-12-02T08:05:00Z"),
        ]
    );
    assert_eq!(
        ticks(
            &schedule("10-40/15 0 * * *", "UTC"),
            "2026-11-20T00:00:00Z",
            3
        ),
        [
            utc("2026-11-20T00:10:00Z"),
            utc("2026-11-20T00:25:00Z"),
            utc("2026-11-20T00:40:00Z"),
        ]
    );
    let after = "2026-11-20T10:07:00Z";
    for (shortcut, expected) in [
        ("@hourly", "2026-11-20T11:00:00Z"),
        ("@daily", "2026-11-21T00:00:00Z"),
        ("@midnight", "2026-11-21T00:00:00Z"),
        ("@weekly", "2026-11-22T00:00:00Z"),
        ("@monthly", "2026-12-01T00:00:00Z"),
        ("@yearly", "2027-01-01T00:00:00Z"),
        ("@ANNUALLY", "2027-01-01T00:00:00Z"),
    ] {
        assert_eq!(
            ticks(&schedule(shortcut, "UTC"), after, 1),
            [utc(expected)],
            "{shortcut}"
        );
    }
    // Strictly after: a tick at `after` itself is not the next one.
    assert_eq!(
        ticks(&schedule("0 * * * *", "UTC"), "2026-11-20T11:00:00Z", 1),
        [utc("2026-11-20T12:00:00Z")]
    );
    assert_eq!(
        ticks(&schedule("0 * * * *", "UTC"), "2026-11-20T10:59:59.999Z", 1),
        [utc("2026-11-20T11:00:00Z")]
    );
}

#[test]
fn six_and_seven_fields_have_seconds_and_years() {
    assert_eq!(
        ticks(
            &schedule("30 0 8 * * mon-fri", "UTC"),
            "2026-11-20T09:00:00Z",
            2
        ),
        [utc("2026-11-23T08:00:30Z"), utc("2026-11-24T08:00:30Z")]
    );
    assert_eq!(
        ticks(
            &schedule("*/20 * * * * *", "UTC"),
            "2026-11-20T09:00:00Z",
            3
        ),
        [
            utc("2026-11-20T09:00:20Z"),
            utc("2026-11-20T09:00:40Z"),
            utc("2026-11-20T09:01:00Z"),
        ]
    );
    let once = schedule("0 0 9 1 jan * 2030", "UTC");
    assert_eq!(
        once.next_after(utc("2026-11-20T00:00:00Z")),
        Some(utc("2030-01-01T09:00:00Z"))
    );
    assert_eq!(once.next_after(utc("2030-01-01T09:00:00Z")), None);
    assert_eq!(
        Schedule::parse("0 0 8 * * 1-5", "UTC").unwrap_err(),
        "'0 0 8 * * 1-5' is not a schedule: day-of-week '1-5': in a schedule with seconds write days as names (mon-fri), as cron dialects number them differently"
    );
}

/// Six and seven fields go to the `cron` crate as written: there a day must match both day
/// fields, a weekday range must not wrap, and the crate's own errors are sentences too.
#[test]
fn six_and_seven_fields_are_the_cron_crates_form() {
    // The 1st when it is a Monday (five fields would mean the 1st and every Monday).
    assert_eq!(
        ticks(&schedule("0 0 0 1 * mon", "UTC"), "2026-11-20T00:00:00Z", 3),
        [
            utc("2027-02-01T00:00:00Z"),
            utc("2027-03-01T00:00:00Z"),
            utc("2027-11-01T00:00:00Z"),
        ]
    );
    assert_eq!(
        Schedule::parse("0 0 12 * * sat-sun", "UTC").unwrap_err(),
        "'0 0 12 * * sat-sun' is not a schedule: the cron crate does not read it: Invalid named range for Days of Week: sat-sun"
    );
    assert_eq!(
        ticks(
            &schedule("0 0 12 * * sat,sun", "UTC"),
            "2026-11-20T00:00:00Z",
            2
        ),
        [utc("2026-11-21T12:00:00Z"), utc("2026-11-22T12:00:00Z")]
    );
    assert!(
        Schedule::parse("*/60 * * * * *", "UTC")
            .unwrap_err()
            .starts_with("'*/60 * * * * *' is not a schedule: the cron crate does not read it: ")
    );
    assert_eq!(
        Schedule::parse("0 0 0 1 1 * 2101", "UTC").unwrap_err(),
        "'0 0 0 1 1 * 2101' is not a schedule: year '2101': 2101 is out of range (1970-2100)"
    );
    assert_eq!(
        Schedule::parse("0 0 0 31 2 mon", "UTC").unwrap_err(),
        "'0 0 0 31 2 mon' is not a schedule: it never runs: none of its months has a day 31"
    );
    // The crate computes 1970 to 2100.
    let yearly = schedule("@yearly", "UTC");
    assert_eq!(
        yearly.next_after(utc("2099-06-01T00:00:00Z")),
        Some(utc("2100-01-01T00:00:00Z"))
    );
    assert_eq!(yearly.next_after(utc("2100-01-01T00:00:00Z")), None);
    assert_eq!(
        yearly.latest_between(DateTime::<Utc>::MIN_UTC, utc("2300-01-01T00:00:00Z")),
        Some(utc("2100-01-01T00:00:00Z"))
    );
    assert_eq!(
        yearly.next_after(DateTime::<Utc>::MIN_UTC),
        Some(utc("1970-01-01T00:00:00Z"))
    );
    assert_eq!(
        yearly.latest_between(DateTime::<Utc>::MIN_UTC, utc("1969-12-31T00:00:00Z")),
        None
    );
}

/// Five-field lines tick at exactly the minutes crontab(5) says, checked minute by minute.
#[test]
fn five_fields_tick_where_crontab_says() {
    type Rule = fn(DateTime<Utc>) -> bool;
    let cases: [(&str, Rule); 9] = [
        ("*/15 9-17 * * mon-fri", |t| {
            t.minute() % 15 == 0
                && (9..=17).contains(&t.hour())
                && t.weekday().num_days_from_monday() < 5
        }),
        ("0 0 1,15 * 5", |t| {
            t.hour() == 0
                && t.minute() == 0
                && ([1, 15].contains(&t.day()) || t.weekday() == Weekday::Fri)
        }),
        ("30 6 */10 * *", |t| {
            (t.hour(), t.minute()) == (6, 30) && t.day() % 10 == 1
        }),
        ("30 6 */10 * fri-sun", |t| {
            (t.hour(), t.minute()) == (6, 30)
                && t.day() % 10 == 1
                && t.weekday().num_days_from_monday() >= 4
        }),
        ("0 */2 * * */2", |t| {
            t.minute() == 0 && t.hour() % 2 == 0 && t.weekday().num_days_from_sunday() % 2 == 0
        }),
        ("59 23 ? * 0,7", |t| {
            (t.hour(), t.minute()) == (23, 59) && t.weekday() == Weekday::Sun
        }),
        ("5/20 1-3 2-9/3 * *", |t| {
            t.minute() % 20 == 5 && (1..=3).contains(&t.hour()) && [2, 5, 8].contains(&t.day())
        }),
        ("*/4294967295 */30 * * *", |t| {
            t.minute() == 0 && t.hour() % 30 == 0
        }),
        ("0 12 31 * tue", |t| {
            (t.hour(), t.minute()) == (12, 0) && (t.day() == 31 || t.weekday() == Weekday::Tue)
        }),
    ];
    let (from, to) = ("2026-12-20T00:00:00Z", "2027-02-05T00:00:00Z");
    for (expr, rule) in cases {
        let mut expected = Vec::new();
        let (mut t, end) = (utc(from), utc(to));
        while t < end {
            if rule(t) {
                expected.push(t.to_rfc3339());
            }
            t += chrono::Duration::minutes(1);
        }
        assert!(!expected.is_empty(), "{expr}");
        assert_eq!(
            ticks_between(&schedule(expr, "UTC"), from, to),
            expected,
            "{expr}"
        );
    }
}

#[test]
fn bad_expressions_and_zones_are_sentences() {
    for (expr, error) in [
        (
            "0 8 * *",
            "'0 8 * *' is not a schedule: write 5 crontab fields (minute hour day-of-month month day-of-week), e.g. '0 8 * * mon-fri'",
        ),
        (
            "",
            "'' is not a schedule: write 5 crontab fields (minute hour day-of-month month day-of-week), e.g. '0 8 * * mon-fri'",
        ),
        (
            "0 0 0 0 0 0 0 0",
            "'0 0 0 0 0 0 0 0' is not a schedule: write 5 crontab fields (minute hour day-of-month month day-of-week), e.g. '0 8 * * mon-fri'",
        ),
        (
            "0 8 * * mon-fry",
            "'0 8 * * mon-fry' is not a schedule: day-of-week 'mon-fry': 'fry' is not a day of the week (sun..sat, or 0-7 where 0 and 7 are Sunday)",
        ),
        (
            "61 * * * *",
            "'61 * * * *' is not a schedule: minute '61': 61 is out of range (0-59)",
        ),
        (
            "0 24 * * *",
            "'0 24 * * *' is not a schedule: hour '24': 24 is out of range (0-23)",
        ),
        (
            "*/0 * * * *",
            "'*/0 * * * *' is not a schedule: minute '*/0': the step after / must be at least 1",
        ),
        (
            "0 0 5-1 * *",
            "'0 0 5-1 * *' is not a schedule: day-of-month '5-1' runs backwards (write the lower value first)",
        ),
        (
            "0 0 31 2,4 *",
            "'0 0 31 2,4 *' is not a schedule: it never runs: none of its months has a day 31",
        ),
        (
            "0 0 * foo *",
            "'0 0 * foo *' is not a schedule: month 'foo': 'foo' is not a month (jan..dec, or 1-12)",
        ),
        (
            "0 0 L * *",
            "'0 0 L * *' is not a schedule: day-of-month 'L': 'L' is not a day of the month (1-31)",
        ),
        (
            "0 0 0 1 1 * 2201",
            "'0 0 0 1 1 * 2201' is not a schedule: year '2201': 2201 is out of range (1970-2100)",
        ),
        (
            "@reboot",
            "'@reboot' is not a schedule: the shortcuts are @hourly, @daily, @weekly, @monthly and @yearly",
        ),
        (
            "1,,2 * * * *",
            "'1,,2 * * * *' is not a schedule: minute '': '' is not a minute (0-59)",
        ),
    ] {
        assert_eq!(Schedule::parse(expr, "UTC").unwrap_err(), error, "{expr}");
    }
    assert_eq!(
        Schedule::parse("0 8 * * *", "Europe/Berln").unwrap_err(),
        "'Europe/Berln' is not a time zone (e.g. Europe/Berlin); did you mean 'Europe/Berlin'?"
    );
    let long = "1,".repeat(200) + "2 * * * *";
    assert!(
        Schedule::parse(&long, "UTC")
            .unwrap_err()
            .ends_with("…' is not a schedule: it is longer than 256 characters")
    );
}

#[test]
fn a_daily_tick_runs_once_on_the_spring_forward_day() {
    // 2027-03-28, Europe/Berlin: 02:00 CET becomes 03:00 CEST; 02:30 does not happen.
    let s = schedule("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        ticks_between(&s, "2027-03-26T00:00:00Z", "2027-03-30T00:00:00Z"),
        [
            "2027-03-26T01:30:00+00:00", // 02:30 CET
            "2027-03-27T01:30:00+00:00",
            "2027-03-28T01:00:00+00:00", // 03:00 CEST, right after the gap: once
            "2027-03-29T00:30:00+00:00", // 02:30 CEST
        ]
    );
    // Every 15 minutes: the skipped hour's ticks are one, at 03:00.
    let quarter = schedule("*/15 * * * *", "Europe/Berlin");
    assert_eq!(
        ticks_between(&quarter, "2027-03-28T00:40:00Z", "2027-03-28T01:20:00Z"),
        [
            "2027-03-28T00:45:00+00:00", // 01:45 CET
            "2027-03-28T01:00:00+00:00", // 03:00 CEST
            "2027-03-28T01:15:00+00:00",
        ]
    );
}

#[test]
fn a_daily_tick_runs_once_on_the_fall_back_day() {
    // 2026-10-25, Europe/Berlin: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    let s = schedule("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        ticks_between(&s, "2026-10-23T00:00:00Z", "2026-10-27T00:00:00Z"),
        [
            "2026-10-23T00:30:00+00:00", // 02:30 CEST
            "2026-10-24T00:30:00+00:00",
            "2026-10-25T00:30:00+00:00", // the first 02:30 (CEST) only
            "2026-10-26T01:30:00+00:00", // 02:30 CET
        ]
    );
    // Asked during the repeated hour (02:10 CET, 01:10Z), the next tick is tomorrow's.
    assert_eq!(
        s.next_after(utc("2026-10-25T01:10:00Z")),
        Some(utc("2026-10-26T01:30:00Z"))
    );
    // And the latest tick, seen from 02:40 CET, is the one of 00:30Z.
    assert_eq!(
        s.latest_between(utc("2026-10-24T12:00:00Z"), utc("2026-10-25T01:40:00Z")),
        Some(utc("2026-10-25T00:30:00Z"))
    );
    let quarter = schedule("*/15 * * * *", "Europe/Berlin");
    assert_eq!(
        ticks_between(&quarter, "2026-10-25T00:40:00Z", "2026-10-25T02:20:00Z"),
        [
            "2026-10-25T00:45:00+00:00", // 02:45 CEST
            "2026-10-25T02:00:00+00:00", // 03:00 CET (02:00-02:45 CET already ran)
            "2026-10-25T02:15:00+00:00",
        ]
    );
}

#[test]
fn business_days_skip_weekends_and_holidays() {
    let s = schedule("0 8 * * *", "Europe/Berlin").with_calendar(de());
    assert_eq!(
        ticks_between(&s, "2026-12-23T12:00:00Z", "2026-12-30T00:00:00Z"),
        [
            "2026-12-24T07:00:00+00:00", // Thursday, 08:00 CET
            // 25th and 26th holidays, 27th a Sunday
            "2026-12-28T07:00:00+00:00", // Monday
            "2026-12-29T07:00:00+00:00",
        ]
    );
    assert_eq!(
        s.describe(),
        "0 8 * * * in Europe/Berlin, business days of DE"
    );
    assert_eq!(
        schedule("0   8 * *  mon-fri", "Europe/Berlin").describe(),
        "0 8 * * mon-fri in Europe/Berlin"
    );
    // The local date counts: 00:30 in Berlin on Friday the 25th is still the 24th in UTC.
    let late = schedule("30 0 * * *", "Europe/Berlin").with_calendar(de());
    assert_eq!(
        late.next_after(utc("2026-12-24T00:00:00Z")),
        Some(utc("2026-12-27T23:30:00Z")) // Monday the 28th, 00:30 CET
    );
}

#[test]
fn due_runs_one_tick_after_downtime() {
    let daily = schedule("0 8 * * *", "UTC");
    let yesterday = utc("2026-11-19T08:00:00Z");
    let just_after = utc("2026-11-20T08:00:20Z");
    let minute = Duration::from_secs(60);
    assert_eq!(
        daily.due(yesterday, just_after, Missed::Skip, minute),
        Some(utc("2026-11-20T08:00:00Z"))
    );
    // Found after the grace: Skip runs none, Latest runs it.
    let late = utc("2026-11-20T09:30:00Z");
    assert_eq!(daily.due(yesterday, late, Missed::Skip, minute), None);
    assert_eq!(
        daily.due(yesterday, late, Missed::Latest, minute),
        Some(utc("2026-11-20T08:00:00Z"))
    );
    // Nothing new since the last tick that ran.
    let ran = utc("2026-11-20T08:00:00Z");
    assert_eq!(daily.due(ran, late, Missed::Latest, minute), None);
    assert_eq!(daily.due(ran, ran, Missed::Latest, minute), None);
    assert_eq!(
        daily.due(late, ran, Missed::Latest, minute),
        None,
        "now before the last"
    );
    // A week down: Latest runs the latest once, not seven times.
    assert_eq!(
        daily.due(utc("2026-11-13T08:00:00Z"), late, Missed::Latest, minute),
        Some(ran)
    );
    assert_eq!(Missed::default(), Missed::Skip);
    let missed: Missed = serde_yaml::from_str("latest").unwrap();
    assert_eq!(missed, Missed::Latest);
}

#[test]
fn due_after_a_year_down_with_an_every_minute_schedule_is_quick() {
    let every_minute = schedule("* * * * *", "Europe/Berlin");
    let started = Instant::now();
    let last = utc("2025-11-20T00:00:00Z");
    let now = utc("2026-11-20T12:00:30Z");
    assert_eq!(
        every_minute.due(last, now, Missed::Latest, Duration::ZERO),
        Some(utc("2026-11-20T12:00:00Z"))
    );
    assert_eq!(
        every_minute.due(last, now, Missed::Skip, Duration::from_secs(60)),
        Some(utc("2026-11-20T12:00:00Z"))
    );
    assert_eq!(
        every_minute.due(last, now, Missed::Skip, Duration::from_secs(10)),
        None
    );
    assert_eq!(
        every_minute.due(DateTime::<Utc>::MIN_UTC, now, Missed::Latest, Duration::MAX),
        Some(utc("2026-11-20T12:00:00Z"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn schedules_that_never_run_give_up_quickly() {
    let never: CalendarConfig =
        serde_yaml::from_str("{ weekend: [mon, tue, wed, thu, fri, sat, sun] }").unwrap();
    let calendars = Calendars::from_config(&[("never".to_owned(), never)].into()).unwrap();
    let started = Instant::now();
    let s = schedule("* * * * *", "Europe/Berlin")
        .with_calendar(calendars.get_shared("never").unwrap());
    assert_eq!(s.next_after(utc("2026-11-20T00:00:00Z")), None);
    assert_eq!(
        s.due(
            DateTime::<Utc>::MIN_UTC,
            utc("2026-11-20T00:00:00Z"),
            Missed::Latest,
            Duration::MAX
        ),
        None
    );
    // February 29 in a year that has none; the next leap day.
    let no_leap_day = schedule("0 0 0 29 feb * 2100", "UTC");
    assert_eq!(no_leap_day.next_after(utc("2026-11-20T00:00:00Z")), None);
    let leap_day = schedule("0 0 29 2 *", "UTC");
    assert_eq!(
        leap_day.next_after(utc("2026-11-20T00:00:00Z")),
        Some(utc("2028-02-29T00:00:00Z"))
    );
    assert_eq!(
        leap_day.latest_between(DateTime::<Utc>::MIN_UTC, utc("2026-11-20T00:00:00Z")),
        Some(utc("2024-02-29T00:00:00Z"))
    );
    // The ends of time.
    let daily = schedule("0 0 * * *", "Pacific/Kiritimati");
    assert_eq!(daily.next_after(DateTime::<Utc>::MAX_UTC), None);
    let _ = daily.next_after(DateTime::<Utc>::MIN_UTC);
    assert!(
        schedule("0 0 * * *", "UTC")
            .next_after(DateTime::<Utc>::MIN_UTC)
            .is_some()
    );
    assert_eq!(
        daily.latest_between(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MIN_UTC),
        None
    );
    let _ = daily.due(
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        Missed::Latest,
        Duration::MAX,
    );
    let huge_step = schedule("*/4294967295 * * * *", "UTC");
    assert_eq!(
        huge_step.next_after(utc("2026-11-20T00:00:30Z")),
        Some(utc("2026-11-20T01:00:00Z"))
    );
    assert!(Schedule::parse("99999999999 * * * *", "UTC").is_err());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// Forward and backward searches agree around both clock changes: from any instant, the next
/// tick is the latest tick at or before itself, and there is none in between.
#[test]
fn next_and_latest_agree_across_clock_changes() {
    for expr in [
        "30 2 * * *",
        "*/15 * * * *",
        "0 * * * *",
        "0 3 * * *",
        "15,45 2 * * *",
    ] {
        let s = schedule(expr, "Europe/Berlin");
        for day in ["2026-10-24T22:00:00Z", "2027-03-27T22:00:00Z"] {
            let mut t = utc(day);
            for _ in 0..(6 * 60 / 7) {
                let next = s.next_after(t).unwrap();
                assert!(next > t, "{expr} at {t}");
                let since = t - chrono::Duration::days(2);
                assert_eq!(s.latest_between(since, next), Some(next), "{expr} at {t}");
                let before = s.latest_between(since, next - chrono::Duration::seconds(1));
                assert!(
                    before.is_none_or(|b| b <= t),
                    "{expr} at {t}: {before:?} before {next}"
                );
                t += chrono::Duration::minutes(7);
            }
        }
    }
}
