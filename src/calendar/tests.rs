use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc, Weekday};
use chrono_tz::Tz;

use super::*;

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn local(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
}

const BERLIN: Tz = chrono_tz::Europe::Berlin;

fn builtin(name: &str) -> Calendar {
    Calendars::builtin().get(name).unwrap().clone()
}

/// The holidays of `calendar` in `year`, as ISO dates.
fn holidays_of(calendar: &Calendar, year: i32) -> Vec<String> {
    let mut day = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
    let mut found = Vec::new();
    while day.year() == year {
        if calendar.is_holiday(day) {
            found.push(day.to_string());
        }
        day = day.succ_opt().unwrap();
    }
    found
}

fn config(yaml: &str) -> Result<Calendars, Vec<String>> {
    let configs: BTreeMap<String, CalendarConfig> = serde_yaml::from_str(yaml).unwrap();
    Calendars::from_config(&configs)
}

#[test]
fn easter_of_known_years() {
    for (year, expected) in [
        (2000, "2000-04-23"),
        (2008, "2008-03-23"),
        (2019, "2019-04-21"),
        (2024, "2024-03-31"),
        (2025, "2025-04-20"),
        (2026, "2026-04-05"),
        (2027, "2027-03-28"),
        (2038, "2038-04-25"),
    ] {
        assert_eq!(easter(year), Some(date(expected)), "{year}");
        assert_eq!(date(expected).weekday(), Weekday::Sun);
    }
    for year in 1900..=2200 {
        let e = easter(year).unwrap();
        assert_eq!(e.weekday(), Weekday::Sun, "{year}");
        assert!(date(&format!("{year}-03-22")) <= e && e <= date(&format!("{year}-04-25")));
    }
}

#[test]
fn german_holidays_of_2026() {
    assert_eq!(
        holidays_of(&builtin("DE"), 2026),
        [
            "2026-01-01", // New Year
            "2026-04-03", // Good Friday
            "2026-04-06", // Easter Monday
            "2026-05-01",
            "2026-05-14", // Ascension, Easter + 39
            "2026-05-25", // Whit Monday, Easter + 50
            "2026-10-03",
            "2026-12-25",
            "2026-12-26",
        ]
    );
}

#[test]
fn spanish_holidays_of_2026() {
    assert_eq!(
        holidays_of(&builtin("ES"), 2026),
        [
            "2026-01-01",
            "2026-01-06",
            "2026-04-03", // Good Friday
            "2026-05-01",
            "2026-08-15",
            "2026-10-12",
            "2026-11-01",
            "2026-12-06",
            "2026-12-08",
            "2026-12-25",
        ]
    );
}

#[test]
fn chilean_holidays_of_2026_and_2027_with_the_monday_moves() {
    // 2026: June 29 and October 12 are Mondays and stay.
    assert_eq!(date("2026-06-29").weekday(), Weekday::Mon);
    assert_eq!(date("2026-10-12").weekday(), Weekday::Mon);
    assert_eq!(
        holidays_of(&builtin("CL"), 2026),
        [
            "2026-01-01",
            "2026-04-03", // Good Friday
            "2026-04-04", // Holy Saturday
            "2026-05-01",
            "2026-05-21",
            "2026-06-29",
            "2026-07-16",
            "2026-08-15",
            "2026-09-18",
            "2026-09-19",
            "2026-10-12",
            "2026-11-01",
            "2026-12-08",
            "2026-12-25",
        ]
    );
    // 2027: both fall on a Tuesday and move to the Monday before.
    assert_eq!(date("2027-06-29").weekday(), Weekday::Tue);
    assert_eq!(date("2027-10-12").weekday(), Weekday::Tue);
    let cl = builtin("CL");
    let of_2027 = holidays_of(&cl, 2027);
    assert!(of_2027.contains(&"2027-06-28".to_owned()), "{of_2027:?}");
    assert!(of_2027.contains(&"2027-10-11".to_owned()), "{of_2027:?}");
    assert!(!cl.is_holiday(date("2027-06-29")) && !cl.is_holiday(date("2027-10-12")));
    assert!(
        of_2027.contains(&"2027-03-26".to_owned()) && of_2027.contains(&"2027-03-27".to_owned())
    );
}

#[test]
fn chilean_moves_follow_ley_19668_for_every_weekday() {
    let cl = builtin("CL");
    // (holiday as dated, its weekday, where it is kept)
    for (dated, weekday, kept) in [
        ("2022-06-29", Weekday::Wed, "2022-06-27"),
        ("2023-06-29", Weekday::Thu, "2023-06-26"),
        ("2023-10-12", Weekday::Thu, "2023-10-09"),
        ("2018-10-12", Weekday::Fri, "2018-10-15"),
        ("2024-06-29", Weekday::Sat, "2024-06-29"),
        ("2025-10-12", Weekday::Sun, "2025-10-12"),
    ] {
        assert_eq!(date(dated).weekday(), weekday, "{dated}");
        assert!(cl.is_holiday(date(kept)), "{dated} is kept on {kept}");
        assert_eq!(cl.is_holiday(date(dated)), dated == kept, "{dated}");
    }
}

#[test]
fn business_days_skip_weekends_and_holidays() {
    let de = builtin("DE");
    // Wed 23, Thu 24 (a business day: not a nationwide holiday), Fri 25 and Sat 26
    // holidays, Sun 27, Mon 28.
    assert_eq!(date("2026-12-23").weekday(), Weekday::Wed);
    assert!(de.is_business_day(date("2026-12-24")));
    assert_eq!(
        de.add_business_days(date("2026-12-23"), 1),
        Some(date("2026-12-24"))
    );
    assert_eq!(
        de.add_business_days(date("2026-12-23"), 2),
        Some(date("2026-12-28"))
    );
    assert_eq!(
        de.add_business_days(date("2026-12-28"), -2),
        Some(date("2026-12-23"))
    );
    // From a weekend day, +1 is the first business day after it; 0 rolls forward.
    assert_eq!(
        de.add_business_days(date("2026-11-21"), 1),
        Some(date("2026-11-23"))
    );
    assert_eq!(
        de.add_business_days(date("2026-11-21"), 0),
        Some(date("2026-11-23"))
    );
    assert_eq!(
        de.add_business_days(date("2026-11-20"), 0),
        Some(date("2026-11-20"))
    );
    assert_eq!(
        de.next_business_day(date("2026-04-02")),
        Some(date("2026-04-07"))
    );
    let weekdays = builtin("weekdays");
    assert_eq!(
        weekdays.add_business_days(date("2026-12-23"), 2),
        Some(date("2026-12-25"))
    );
    assert_eq!(
        weekdays.add_business_days(date("2026-01-01"), 261),
        Some(date("2027-01-01"))
    );
}

#[test]
fn hostile_extremes_do_not_loop_or_panic() {
    let none = config("never: { weekend: [mon, tue, wed, thu, fri, sat, sun] }").unwrap();
    let never = none.get("never").unwrap();
    assert!(!never.is_business_day(date("2026-11-20")));
    assert_eq!(never.add_business_days(date("2026-11-20"), 1), None);
    assert_eq!(never.add_business_days(date("2026-11-20"), 0), None);
    let de = builtin("DE");
    assert_eq!(de.add_business_days(date("2026-11-20"), i64::MAX), None);
    assert_eq!(de.add_business_days(date("2026-11-20"), i64::MIN), None);
    assert_eq!(de.add_business_days(NaiveDate::MAX, 1), None);
    assert_eq!(de.add_business_days(NaiveDate::MIN, -1), None);
    assert!(de.add_business_days(date("2026-11-20"), 200_000).is_some());
    assert_eq!(easter(i32::MAX), None);
    assert_eq!(easter(i32::MIN), None);
    let _ = de.is_business_day(NaiveDate::MAX) || de.is_business_day(NaiveDate::MIN);
    let _ = local_to_utc(NaiveDateTime::MAX, BERLIN);
    let _ = local_to_utc(NaiveDateTime::MIN, BERLIN);
    let t = DateTime::<Utc>::MAX_UTC;
    assert_eq!(Offset::BusinessDays(1).apply(t, BERLIN, &de), None);
    assert_eq!(Offset::parse("1h").unwrap().apply(t, BERLIN, &de), None);
    let _ = QuietHours::default().end_after(t, BERLIN);
    let _ = QuietHours::default().end_after(DateTime::<Utc>::MIN_UTC, BERLIN);
}

#[test]
fn configured_calendars_extend_and_amend() {
    let calendars = config(
        r#"
acme: { extends: DE, holidays: ["2026-12-24", "2026-12-31"], not_holidays: ["2026-10-03"] }
acme_gulf: { extends: acme, weekend: [FRI, Saturday] }
DE: { extends: DE, holidays: ["2026-11-11"] }
plain: {}
"#,
    )
    .unwrap();
    assert_eq!(
        calendars.names().collect::<Vec<_>>(),
        ["CL", "DE", "ES", "acme", "acme_gulf", "plain", "weekdays"]
    );
    // A calendar extending its own name amends the built-in; others see the amended one.
    let de = calendars.get("DE").unwrap();
    assert!(de.is_holiday(date("2026-11-11")) && de.is_holiday(date("2026-12-25")));
    let acme = calendars.get("acme").unwrap();
    assert!(
        acme.is_holiday(date("2026-11-11")),
        "acme extends the configured DE"
    );
    assert!(acme.is_holiday(date("2026-12-24")) && acme.is_holiday(date("2026-12-31")));
    assert!(!acme.is_holiday(date("2026-10-03")));
    assert!(
        acme.is_holiday(date("2027-10-03")),
        "only the date named is removed"
    );
    assert_eq!(
        acme.add_business_days(date("2026-12-23"), 2),
        Some(date("2026-12-29"))
    );
    let gulf = calendars.get("acme_gulf").unwrap();
    assert_eq!(gulf.weekend_days(), [Weekday::Fri, Weekday::Sat]);
    assert!(gulf.is_business_day(date("2026-11-22")), "Sunday works");
    assert!(
        !gulf.is_business_day(date("2026-12-24")),
        "inherited holiday"
    );
    let plain = calendars.get("plain").unwrap();
    assert!(plain.is_business_day(date("2026-12-25")));
    assert!(
        !plain.is_business_day(date("2026-12-26")),
        "Saturday by default"
    );
    // The built-ins are untouched by a configured registry.
    assert!(
        !Calendars::builtin()
            .get("DE")
            .unwrap()
            .is_holiday(date("2026-11-11"))
    );
    assert!(calendars.get("XX").is_none());
}

#[test]
fn config_errors_are_sentences_for_operators() {
    let errors = config(
        r#"
acme: { extends: XX, holidays: ["2026-13-01", "2026-12-24"], weekend: [sat, sunday, sonntag] }
loop_a: { extends: loop_b }
loop_b: { extends: loop_a }
mine: { extends: mine }
both: { holidays: ["2026-12-24"], not_holidays: ["2026-12-24"] }
"#,
    )
    .unwrap_err();
    assert_eq!(
        errors,
        [
            "calendars.acme: extends 'XX', which is not a calendar (known: CL, DE, ES, acme, both, loop_a, loop_b, mine, weekdays)",
            "calendars.acme.weekend: 'sonntag' is not a day of the week (mon, tue, wed, thu, fri, sat, sun)",
            "calendars.acme.holidays: '2026-13-01' is not a date (YYYY-MM-DD)",
            "calendars.both: 2026-12-24 is in both holidays and not_holidays",
            "calendars.loop_b: extends 'loop_a', which leads back to it ('loop_a' extends 'loop_b' extends 'loop_a')",
            "calendars.mine: extends itself ('mine' is not a built-in calendar: CL, DE, ES, weekdays)",
        ]
    );
    let errors = config("acme: { extends: de }").unwrap_err();
    assert_eq!(
        errors,
        [
            "calendars.acme: extends 'de', which is not a calendar (known: CL, DE, ES, acme, weekdays); did you mean 'DE'?"
        ]
    );
    let unknown_field: Result<BTreeMap<String, CalendarConfig>, _> =
        serde_yaml::from_str("acme: { extend: DE }");
    assert!(unknown_field.is_err());
}

#[test]
fn unknown_calendars_are_named_with_a_hint() {
    let calendars = Calendars::builtin();
    assert_eq!(
        calendars.find("DX").unwrap_err(),
        "'DX' is not a calendar (known: CL, DE, ES, weekdays); did you mean 'DE'?"
    );
    assert_eq!(
        calendars.find("weekday").unwrap_err(),
        "'weekday' is not a calendar (known: CL, DE, ES, weekdays); did you mean 'weekdays'?"
    );
    assert_eq!(
        calendars.find("XX").unwrap_err(),
        "'XX' is not a calendar (known: CL, DE, ES, weekdays)"
    );
    assert_eq!(calendars.find("ES").unwrap().name(), "ES");
}

#[test]
fn time_zones_are_named_with_a_hint() {
    assert_eq!(time_zone("Europe/Berlin"), Ok(BERLIN));
    assert_eq!(time_zone("UTC"), Ok(chrono_tz::UTC));
    assert_eq!(
        time_zone("Europe/Berln").unwrap_err(),
        "'Europe/Berln' is not a time zone (e.g. Europe/Berlin); did you mean 'Europe/Berlin'?"
    );
    assert_eq!(
        time_zone("europe/madrid").unwrap_err(),
        "'europe/madrid' is not a time zone (e.g. Europe/Berlin); did you mean 'Europe/Madrid'?"
    );
    assert_eq!(
        time_zone("").unwrap_err(),
        "'' is not a time zone (e.g. Europe/Berlin)"
    );
}

#[test]
fn local_times_resolve_the_clock_changes() {
    // Spring forward, 2027-03-28: 02:00 CET becomes 03:00 CEST (01:00Z); 02:30 never happens
    // and stands for the first instant after the gap.
    assert_eq!(
        local_to_utc(local("2027-03-28 02:30"), BERLIN),
        utc("2027-03-28T01:00:00Z")
    );
    assert_eq!(
        local_to_utc(local("2027-03-28 02:00"), BERLIN),
        utc("2027-03-28T01:00:00Z")
    );
    assert_eq!(
        local_to_utc(local("2027-03-28 01:59"), BERLIN),
        utc("2027-03-28T00:59:00Z")
    );
    assert_eq!(
        local_to_utc(local("2027-03-28 03:00"), BERLIN),
        utc("2027-03-28T01:00:00Z")
    );
    // Fall back, 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00Z); 02:30 happens twice and
    // stands for the first (00:30Z, not 01:30Z).
    assert_eq!(
        local_to_utc(local("2026-10-25 02:30"), BERLIN),
        utc("2026-10-25T00:30:00Z")
    );
    assert_eq!(
        local_to_utc(local("2026-10-25 03:00"), BERLIN),
        utc("2026-10-25T02:00:00Z")
    );
    // Far from Europe: Chile's spring forward at midnight (2026-09-06 00:00 becomes 01:00).
    let santiago = chrono_tz::America::Santiago;
    assert_eq!(
        local_to_utc(local("2026-09-06 00:30"), santiago),
        utc("2026-09-06T04:00:00Z")
    );
}

#[test]
fn quiet_hours_wrap_midnight() {
    let quiet = QuietHours::default();
    // 21:30 in Berlin (CET, +1): quiet until 08:00 the next morning.
    let evening = utc("2026-11-20T20:30:00Z");
    assert!(quiet.contains(evening, BERLIN));
    assert_eq!(
        quiet.end_after(evening, BERLIN),
        utc("2026-11-21T07:00:00Z")
    );
    // 07:00 local: quiet until 08:00 the same day.
    let early = utc("2026-11-20T06:00:00Z");
    assert!(quiet.contains(early, BERLIN));
    assert_eq!(quiet.end_after(early, BERLIN), utc("2026-11-20T07:00:00Z"));
    // 08:00 and 20:59 local are not quiet.
    for t in [
        "2026-11-20T07:00:00Z",
        "2026-11-20T19:59:00Z",
        "2026-11-20T12:00:00Z",
    ] {
        assert!(!quiet.contains(utc(t), BERLIN), "{t}");
        assert_eq!(quiet.end_after(utc(t), BERLIN), utc(t));
    }
    // The same instant is quiet in one time zone and not in another.
    assert!(!quiet.contains(evening, chrono_tz::America::Santiago));
    let lunch = QuietHours::from_config(&QuietHoursConfig {
        start: "12:00".into(),
        end: "14:00".into(),
    })
    .unwrap();
    assert!(lunch.contains(utc("2026-11-20T12:30:00Z"), chrono_tz::UTC));
    assert!(!lunch.contains(utc("2026-11-20T14:00:00Z"), chrono_tz::UTC));
    let none = QuietHours::new(lunch.start(), lunch.start());
    assert!(!none.contains(utc("2026-11-20T12:00:00Z"), chrono_tz::UTC));
    let errors = QuietHours::from_config(&QuietHoursConfig {
        start: "25:00".into(),
        end: "8am".into(),
    })
    .unwrap_err();
    assert_eq!(
        errors,
        [
            "quiet_hours.start: '25:00' is not a time of day (HH:MM, e.g. 09:00)",
            "quiet_hours.end: '8am' is not a time of day (HH:MM, e.g. 09:00)",
        ]
    );
    let from_yaml: QuietHoursConfig = serde_yaml::from_str("start: '22:00'").unwrap();
    assert_eq!(from_yaml.end, "08:00");
}

#[test]
fn quiet_hours_end_on_the_clock_changes() {
    // Quiet until 02:30 on the fall-back night: at 02:10 of the second pass (CET, 01:10Z)
    // they end at 02:30 CET (01:30Z), not at the 02:30 already gone.
    let quiet = QuietHours::new(time_of_day("21:00").unwrap(), time_of_day("02:30").unwrap());
    assert_eq!(
        quiet.end_after(utc("2026-10-25T01:10:00Z"), BERLIN),
        utc("2026-10-25T01:30:00Z")
    );
    assert_eq!(
        quiet.end_after(utc("2026-10-25T00:10:00Z"), BERLIN),
        utc("2026-10-25T00:30:00Z")
    );
    // On the spring-forward night 02:30 is skipped: they end at 03:00 CEST.
    assert_eq!(
        quiet.end_after(utc("2027-03-27T23:00:00Z"), BERLIN),
        utc("2027-03-28T01:00:00Z")
    );
}

#[test]
fn offsets_parse_durations_and_business_days() {
    assert_eq!(
        Offset::parse("3 business days"),
        Ok(Offset::BusinessDays(3))
    );
    assert_eq!(
        Offset::parse(" 1 Business Day "),
        Ok(Offset::BusinessDays(1))
    );
    assert_eq!(
        Offset::parse("0 business days"),
        Ok(Offset::BusinessDays(0))
    );
    assert_eq!(
        Offset::parse("2h"),
        Ok(Offset::Duration(chrono::Duration::hours(2)))
    );
    assert_eq!(
        Offset::parse("30m"),
        Ok(Offset::Duration(chrono::Duration::minutes(30)))
    );
    for week in ["7d", "7 days", "7days", "1 day 6d"] {
        assert_eq!(
            Offset::parse(week),
            Ok(Offset::Duration(chrono::Duration::days(7))),
            "{week}"
        );
    }
    assert_eq!(
        Offset::parse("1h 30m"),
        Ok(Offset::Duration(chrono::Duration::minutes(90)))
    );
    assert_eq!(
        Offset::parse("3 business days").unwrap().to_string(),
        "3 business days"
    );
    assert_eq!(
        Offset::parse("1 business day").unwrap().to_string(),
        "1 business day"
    );
    assert_eq!(Offset::parse("90m").unwrap().to_string(), "1h 30m");
    for bad in [
        "3 bussiness days",
        "3 business weeks",
        "business days",
        "-2h",
        "",
        "soon",
        "2 fortnights",
        "h2",
    ] {
        assert_eq!(
            Offset::parse(bad).unwrap_err(),
            format!(
                "'{bad}' is not a delay: write a duration such as 2h, 30m, 7d, or N business days"
            )
        );
    }
    assert_eq!(
        Offset::parse("1000000 business days").unwrap_err(),
        "'1000000 business days' is not a delay: the number of business days must be 0 to 100000"
    );
    assert_eq!(
        Offset::parse("-1 business days").unwrap_err(),
        "'-1 business days' is not a delay: the number of business days must be 0 to 100000"
    );
    assert!(Offset::parse("99999999999999999999h").is_err());
}

#[test]
fn offsets_apply_on_local_dates() {
    let de = builtin("DE");
    // Friday 09:00 in Berlin + 1 business day: Monday 09:00.
    let friday = utc("2026-11-20T08:00:00Z");
    let one = Offset::parse("1 business day").unwrap();
    assert_eq!(
        one.apply(friday, BERLIN, &de),
        Some(utc("2026-11-23T08:00:00Z"))
    );
    // Across the fall-back weekend the local time of day stays (09:00 CEST, then CET).
    let before = utc("2026-10-23T07:00:00Z");
    assert_eq!(
        one.apply(before, BERLIN, &de),
        Some(utc("2026-10-26T08:00:00Z"))
    );
    // A plain duration is exact.
    let week = Offset::parse("7d").unwrap();
    assert_eq!(
        week.apply(before, BERLIN, &de),
        Some(utc("2026-10-30T07:00:00Z"))
    );
    // The local date counts: 23:30 on Wednesday in UTC is already Thursday 00:30 in Berlin,
    // and the next business day there is Monday the 28th (00:30 local).
    let late = utc("2026-12-23T23:30:00Z");
    assert_eq!(
        Offset::BusinessDays(1).apply(late, BERLIN, &de),
        Some(utc("2026-12-27T23:30:00Z"))
    );
    assert_eq!(
        Offset::BusinessDays(1).apply(late, chrono_tz::UTC, &de),
        Some(utc("2026-12-24T23:30:00Z"))
    );
    // Onto a skipped local time: the first instant after the gap.
    let friday_0230 = local_to_utc(local("2027-03-26 02:30"), BERLIN);
    assert_eq!(
        Offset::BusinessDays(0).apply(friday_0230, BERLIN, &builtin("weekdays")),
        Some(friday_0230)
    );
    let sunday = config("all: { weekend: [] }").unwrap();
    assert_eq!(
        Offset::BusinessDays(2).apply(friday_0230, BERLIN, sunday.get("all").unwrap()),
        Some(utc("2027-03-28T01:00:00Z"))
    );
}
