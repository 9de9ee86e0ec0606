use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;

fn event() -> Dynamic {
    let event: crate::normalize::Event = serde_json::from_value(json!({
        "id": "evt_1", "source": "receeve", "source_event_id": "m-1", "type": "promise_to_pay.expired",
        "occurred_at": "2026-11-20T08:00:00Z", "received_at": "2026-11-20T08:00:01Z",
        "subject": {"claim": "C-1"}, "amount": {"value": "1234.5", "currency": "EUR"},
        "data": {"dueDate": "2026-11-10", "attempts": 3}, "payload": {"secret": "not for scripts"}
    }))
    .unwrap();
    event_value(&event).unwrap()
}

fn now() -> DateTime<Utc> {
    "2026-11-22T12:00:00Z".parse().unwrap()
}

fn eval_with(source: &str, facts: Facts) -> Result<bool, ScriptError> {
    Condition::compile(source)?.holds(&event(), &Session::new(now(), Arc::new(facts)))
}

fn eval(source: &str) -> Result<bool, ScriptError> {
    eval_with(source, Facts::default())
}

fn run(source: &str) -> (Result<BlockOutcome, ScriptError>, Vec<String>) {
    let session = Session::new(now(), Arc::default());
    let outcome = Block::compile(source).and_then(|block| block.run(&event(), &session));
    (outcome, session.take_logs())
}

#[test]
fn conditions_read_the_event() {
    assert!(eval(r#"event.source == "receeve" && event.subject.claim == "C-1""#).unwrap());
    assert!(eval("event.data.attempts >= 3").unwrap());
    assert!(
        eval("event.subject.debtor == ()").unwrap(),
        "absent references are ()"
    );
    assert!(
        eval("event.payload == ()").unwrap(),
        "the raw payload is not given to scripts"
    );
    assert!(eval(r#"event.subject.debtor ?? "none" == "none""#).unwrap());
}

#[test]
fn helpers_for_time_and_money() {
    assert!(eval("days_between(event.data.dueDate, now()) == 12").unwrap());
    assert!(eval(r#"add_days("2026-11-20", 3) == "2026-11-23T00:00:00Z""#).unwrap());
    assert!(eval(r#"format_time(event.occurred_at, "%d.%m.%Y %H:%M", "Europe/Berlin") == "20.11.2026 09:00""#).unwrap());
    assert!(eval(r#"weekday(event.occurred_at, "Europe/Berlin") == "Fri""#).unwrap());
    assert!(eval("minor_units(event.amount) == 123450").unwrap());
    assert!(eval(r#"minor_units("5000", "JPY") == 5000"#).unwrap());
    assert!(eval(r#"format_money(event.amount) == "1,234.50 EUR""#).unwrap());
    assert!(eval(r#"format_money(-1234567.891, "KWD") == "-1,234,567.891 KWD""#).unwrap());
    assert!(
        eval(r#"matches(event.type, "promise_to_pay.*") && !matches(event.type, "sms.*")"#)
            .unwrap()
    );
    assert!(eval(r#"is_blank(event.subject.debtor) && !is_blank(event.subject.claim)"#).unwrap());
}

/// Amounts are exact decimals: compared with whole numbers, decimals and float literals as
/// money; text against a number, or an absent field in an ordering, is an error, not `false`.
#[test]
fn money_compares_as_money_and_mismatches_are_errors() {
    // The event's amount is 1234.5 EUR.
    assert!(eval("event.amount.value > 500").unwrap());
    assert!(!eval("event.amount.value > 5000").unwrap());
    assert!(eval("event.amount.value == 1234.5").unwrap());
    assert!(eval("event.amount.value >= 1234.50 && event.amount.value < 1234.51").unwrap());
    assert!(eval("500 < event.amount.value").unwrap());
    assert!(eval("event.amount.value * 2 > 2000").unwrap());
    assert!(eval("minor_units(event.amount) == 123450").unwrap());
    assert!(eval(r#"event.amount.currency == "EUR""#).unwrap());
    let err = eval(r#"event.data.dueDate > 500"#).unwrap_err();
    assert!(
        err.message
            .contains("cannot compare text with a number using >"),
        "{err}"
    );
    let err = eval(r#"event.data.attempts == "3""#).unwrap_err();
    assert!(
        err.message
            .contains("cannot compare a number with text using =="),
        "{err}"
    );
    let err = eval("event.data.missing > 3").unwrap_err();
    assert!(
        err.message
            .contains("cannot compare nothing (the field is absent) with a number using >")
            && err.message.contains("use `??`"),
        "{err}"
    );
    assert!(eval("(event.data.missing ?? 0) < 3").unwrap());
    assert!(
        eval("event.subject.debtor == ()").unwrap(),
        "absence is still tested with =="
    );
}

/// Rhai's own errors, in the author's words: a method on an absent field, a misspelt helper.
#[test]
fn rhai_errors_are_translated() {
    let err = eval(r#"event.subject.account.starts_with("A")"#).unwrap_err();
    assert!(
        err.message
            .starts_with("`starts_with` was given nothing: a value the event does not have? Give a default with `??`"),
        "{err}"
    );
    let err = eval("days_betwen(event.occurred_at, now()) > 1").unwrap_err();
    assert_eq!(
        err.message,
        "there is no function `days_betwen`; did you mean `days_between`? (see the functions in docs/rules.md)"
    );
    let err = eval("event.subject.account.x == 1").unwrap_err();
    assert!(err.message.contains("of nothing"), "{err}");
}

#[test]
fn helper_errors_say_what_is_wrong() {
    let err = eval(r#"days_between("soon", now()) > 1"#).unwrap_err();
    assert!(err.message.contains("'soon' is not a time"), "{err}");
    let err = eval(r#"format_time(now(), "%H", "Mars/Olympus") == """#).unwrap_err();
    assert!(
        err.message.contains("'Mars/Olympus' is not a time zone"),
        "{err}"
    );
    let err = eval(r#"minor_units("1.234", "EUR") > 0"#).unwrap_err();
    assert!(
        err.message.contains("more decimals than EUR allows"),
        "{err}"
    );
}

/// Every host function, given the extremes an event or a script can hold, answers or fails
/// with a reason; none panics (a panic in one used to stop all processing).
#[test]
fn host_functions_never_panic_on_extreme_input() {
    let huge = "79228162514264337593543950335";
    let cases: &[(&str, &str)] = &[
        (&format!(r#"minor_units("{huge}", "EUR")"#), "is too large"),
        (
            &format!(r#"minor_units(#{{value: "{huge}", currency: "KWD"}})"#),
            "is too large",
        ),
        (&format!(r#"minor_units("-{huge}", "EUR")"#), "is too large"),
        (r#"minor_units("1e400", "EUR")"#, "is not an amount"),
        (r#"minor_units(1.0e300, "EUR")"#, "is not an amount"),
        (r#"minor_units((), "EUR")"#, "no amount"),
        (
            r#"add_days(now(), 9223372036854775807)"#,
            "beyond the calendar",
        ),
        (
            r#"add_days(now(), -9223372036854775808)"#,
            "beyond the calendar",
        ),
        (
            r#"add_days("9999-12-31", 1000000000)"#,
            "beyond the calendar",
        ),
        (
            r#"add_hours(now(), 9223372036854775807)"#,
            "beyond the calendar",
        ),
        (
            r#"add_hours(now(), -9223372036854775807)"#,
            "beyond the calendar",
        ),
        (r#"format_time(now(), "%Q")"#, "is not a time format"),
        (r#"format_time(now(), "%")"#, "is not a time format"),
        (
            r#"format_time(now(), "%-", "Europe/Berlin")"#,
            "is not a time format",
        ),
        (r#"parse_time("99999-01-01T00:00:00Z")"#, "is not a time"),
        (r#"days_between("", "")"#, "is not a time"),
        (r#"weekday(now(), "")"#, "is not a time zone"),
        (r#"hour_of_day("x", "UTC")"#, "is not a time"),
    ];
    for (call, reason) in cases {
        let err = eval(&format!("{call} == ()")).expect_err(call);
        assert!(err.message.contains(reason), "{call}: {err}");
    }
    // The extremes that are valid answer.
    assert!(
        eval(&format!(
            r#"format_money("{huge}", "EUR") == "79,228,162,514,264,337,593,543,950,335 EUR""#
        ))
        .unwrap()
    );
    assert!(
        eval(r#"format_money("-0.0000000000000000000000000001", "EUR") == "0.00 EUR""#).unwrap()
    );
    assert!(eval(r#"days_between("0001-01-01", "9999-12-31") == 3652058"#).unwrap());
    assert!(eval(r#"hours_between("9999-12-31", "0001-01-01") < 0"#).unwrap());
    assert!(eval(r#"add_days("2026-01-01", -738000) == "0005-06-05T00:00:00Z""#).unwrap());
    assert!(
        eval(r#"format_time("9999-12-31T23:59:59Z", "%Y %j %A") == "9999 365 Friday""#).unwrap()
    );
    assert!(eval(r#"matches("", "") && matches("aa", "a*a") && !matches("a", "a*a")"#).unwrap());
    assert!(eval(r#"matches("ééé", "é*é") && !matches("é", "*éé*")"#).unwrap());
    assert!(eval(r#"is_blank("   ") && !is_paused(()) && !is_paused(42, "receeve")"#).unwrap());
}

/// A script whose every operation is slow (long strings) stops on the time budget well within
/// its operation limit; one that hoards memory stops on the size limits.
#[test]
fn slow_and_hoarding_scripts_are_stopped() {
    let (outcome, _) = run(
        "let s = \"x\";\ns.pad(60000, \"y\");\nlet n = 0;\nwhile n < 15000 { let t = s.to_upper(); n += 1; }",
    );
    let err = outcome.unwrap_err();
    assert!(
        err.message
            .contains("longer than its time budget of 100 ms"),
        "{err}"
    );
    let (outcome, _) = run(
        "let m = #{};\nlet n = 0;\nwhile n < 20000 { let v = \"x\"; v.pad(60000, \"y\"); m[`k${n}`] = v; n += 1; }",
    );
    let err = outcome.unwrap_err();
    // Rhai does not size a map on `m[k] = v`: the time budget (or the item limit) stops it.
    assert!(err.message.starts_with("stopped: "), "{err}");
    let (outcome, _) = run(
        "let a = [];\nlet n = 0;\nwhile n < 20000 { let v = \"x\"; v.pad(60000, \"y\"); a.push(v); n += 1; }",
    );
    let err = outcome.unwrap_err();
    assert!(err.message.contains("grew beyond its limit"), "{err}");
}

#[test]
fn misspelt_variables_fail_at_compile_time_with_a_position() {
    let err = Condition::compile("evnt.source == \"receeve\"").unwrap_err();
    assert!(err.message.contains("evnt"), "{err}");
    assert_eq!((err.line, err.column), (Some(1), Some(1)));
    let err = Block::compile("let a = 1;\nlet b = a +;\n").unwrap_err();
    assert_eq!(err.line, Some(2));
}

#[test]
fn conditions_must_be_booleans() {
    let err = eval("event.source").unwrap_err();
    assert!(
        err.message.starts_with("when must be true or false"),
        "{err}"
    );
}

#[test]
fn scripts_export_variables_log_and_skip() {
    let (outcome, logs) = run(
        "let days = days_between(event.data.dueDate, now());\nlog(`overdue ${days} days`);\nlet label = if days > 7 { \"late\" } else { \"fresh\" };",
    );
    let BlockOutcome::Proceed(vars) = outcome.unwrap() else {
        panic!("expected proceed")
    };
    assert_eq!(vars["days"], 12);
    assert_eq!(vars["label"], "late");
    assert_eq!(logs, ["overdue 12 days"]);

    let (outcome, _) =
        run("if event.data.attempts > 2 { skip(\"too many attempts\"); }\nlet x = 1;");
    assert_eq!(
        outcome.unwrap(),
        BlockOutcome::Skip("too many attempts".into())
    );
}

#[test]
fn runaway_scripts_are_stopped_and_sandboxed() {
    let (outcome, _) = run("let n = 0;\nloop { n += 1; }");
    let err = outcome.unwrap_err();
    // Whichever bound it meets first: its operations, or on a slow machine its time budget.
    assert!(
        err.message.contains("too many operations")
            || err.message.contains("longer than its time budget"),
        "{err}"
    );
    assert!(
        Block::compile(r#"eval("1 + 1")"#).is_err(),
        "eval is disabled"
    );
    assert!(
        Block::compile(r#"import "file" as f;"#).is_err(),
        "no modules, no files"
    );
    let (outcome, _) = run(r#"let s = "x"; loop { s += s; }"#);
    assert!(outcome.is_err(), "string size is limited");
    let (outcome, _) = run(r#"throw "custom problem";"#);
    assert_eq!(outcome.unwrap_err().message, "script error: custom problem");
}

#[test]
fn globs() {
    use bindings::glob_matches as g;
    assert!(g("sms.*", "sms.delivery_failed"));
    assert!(g("*", "anything"));
    assert!(g("*.failed", "payment.failed"));
    assert!(g("a*b*c", "axxbyyc"));
    assert!(!g("a*b*c", "axxc"));
    assert!(!g("sms.*", "email.delivery_failed"));
    assert!(g("promise_to_pay.expired", "promise_to_pay.expired"));
    assert!(!g("ab*ba", "aba"), "prefix and suffix must not overlap");
}

#[test]
fn is_paused_answers_from_the_strategy_states() {
    let paused = || Facts::with_paused([("receeve".to_owned(), "C-1".to_owned())]);
    assert!(
        eval_with(
            "is_paused(event.subject.claim) && is_paused(event.subject.claim, \"receeve\")",
            paused()
        )
        .unwrap()
    );
    assert!(!eval_with("is_paused(event.subject.claim, \"amili\") || is_paused(\"C-2\") || is_paused(event.subject.debtor)", paused()).unwrap());
    assert!(!eval("is_paused(event.subject.claim)").unwrap());
}

fn eval_in(source: &str, session: &Arc<Session>) -> Result<bool, ScriptError> {
    Condition::compile(source)?.holds(&event(), session)
}

#[test]
fn business_days_quiet_hours_and_local_times() {
    for condition in [
        // Thursday the 24th is a business day in Germany, Christmas is not.
        r#"is_business_day("2026-12-24", "DE") && !is_business_day("2026-12-25", "DE")"#,
        r#"is_business_day("2026-12-25", "weekdays") && !is_business_day("2026-12-26", "weekdays")"#,
        // 23:30 UTC on the 24th is already Christmas in Berlin.
        r#"is_business_day("2026-12-24T23:30:00Z", "DE")"#,
        r#"!is_business_day("2026-12-24T23:30:00Z", "DE", "Europe/Berlin")"#,
        // Bare dates are that local date, in any zone.
        r#"!is_business_day("2026-12-25", "DE", "America/Santiago")"#,
        r#"add_business_days("2026-12-23", 2, "DE") == "2026-12-28T00:00:00Z""#,
        r#"add_business_days("2026-12-28", -2, "DE") == "2026-12-23T00:00:00Z""#,
        r#"add_business_days("2026-11-21", 0, "DE") == "2026-11-23T00:00:00Z""#,
        r#"add_business_days("2026-12-23T08:00:00Z", 1, "DE", "Europe/Berlin") == "2026-12-24T08:00:00Z""#,
        // The local time of day stays across the clock change (09:00 CEST, then 09:00 CET).
        r#"add_business_days("2026-10-23T07:00:00Z", 1, "DE", "Europe/Berlin") == "2026-10-26T08:00:00Z""#,
        // Quiet hours, by default 21:00 to 08:00 local.
        r#"is_quiet_hours("2026-11-20T20:30:00Z", "Europe/Berlin")"#,
        r#"!is_quiet_hours("2026-11-20T20:30:00Z", "America/Santiago")"#,
        r#"end_of_quiet_hours("2026-11-20T20:30:00Z", "Europe/Berlin") == "2026-11-21T07:00:00Z""#,
        r#"end_of_quiet_hours("2026-11-20T12:00:00Z", "Europe/Berlin") == "2026-11-20T12:00:00Z""#,
        // A promise's due date at 09:00 in the debtor's time zone.
        r#"at_local("2026-11-20", "09:00", "Europe/Berlin") == "2026-11-20T08:00:00Z""#,
        r#"at_local("2026-11-20", "09:00", "America/Santiago") == "2026-11-20T12:00:00Z""#,
        r#"at_local("2026-11-20T23:30:00Z", "09:00", "Europe/Berlin") == "2026-11-21T08:00:00Z""#,
        r#"at_local(event.data.dueDate, "18:30:15", "UTC") == "2026-11-10T18:30:15Z""#,
        // Skipped: the first instant after the gap; repeated: the first of the two.
        r#"at_local("2027-03-28", "02:30", "Europe/Berlin") == "2027-03-28T01:00:00Z""#,
        r#"at_local("2026-10-25", "02:30", "Europe/Berlin") == "2026-10-25T00:30:00Z""#,
    ] {
        assert!(
            eval(condition).unwrap_or_else(|e| panic!("{condition}: {e}")),
            "{condition}"
        );
    }
}

#[test]
fn configured_calendars_and_quiet_hours_reach_scripts() {
    let configs: std::collections::BTreeMap<String, crate::calendar::CalendarConfig> =
        serde_yaml::from_str(
            "acme: { extends: DE, holidays: ['2026-12-24'] }\nnever: { weekend: [mon, tue, wed, thu, fri, sat, sun] }",
        )
        .unwrap();
    let calendars = Arc::new(crate::calendar::Calendars::from_config(&configs).unwrap());
    let quiet = crate::calendar::QuietHours::from_config(&crate::calendar::QuietHoursConfig {
        start: "22:00".into(),
        end: "07:00".into(),
    })
    .unwrap();
    let session = Session::with_time(now(), Arc::default(), calendars, quiet);
    assert!(eval_in(r#"!is_business_day("2026-12-24", "acme")"#, &session).unwrap());
    assert!(eval_in(r#"is_business_day("2026-12-24", "DE")"#, &session).unwrap());
    assert!(
        eval_in(
            r#"!is_quiet_hours("2026-11-20T20:30:00Z", "Europe/Berlin") && end_of_quiet_hours("2026-11-20T21:30:00Z", "Europe/Berlin") == "2026-11-21T06:00:00Z""#,
            &session
        )
        .unwrap()
    );
    let err = eval_in(r#"add_business_days(now(), 1, "never") == ()"#, &session).unwrap_err();
    assert!(
        err.message
            .contains("calendar 'never' has no business days (every day is its weekend)"),
        "{err}"
    );
    let err = eval_in(r#"is_business_day(now(), "acm")"#, &session).unwrap_err();
    assert!(
        err.message.contains(
            "'acm' is not a calendar (known: CL, DE, ES, acme, never, weekdays); did you mean 'acme'?"
        ),
        "{err}"
    );
}

#[test]
fn calendar_functions_name_the_bad_value_and_never_panic() {
    let cases: &[(&str, &str)] = &[
        (
            r#"is_business_day(now(), "DX")"#,
            "'DX' is not a calendar (known: CL, DE, ES, weekdays); did you mean 'DE'?",
        ),
        (
            r#"add_business_days(now(), 1, "DE", "Europe/Berln")"#,
            "'Europe/Berln' is not a time zone (e.g. Europe/Berlin); did you mean 'Europe/Berlin'?",
        ),
        (
            r#"weekday(now(), "Europe/Berln")"#,
            "did you mean 'Europe/Berlin'?",
        ),
        (
            r#"at_local("2026-11-20", "9am", "UTC")"#,
            "'9am' is not a time of day (HH:MM, e.g. 09:00)",
        ),
        (
            r#"at_local("soon", "09:00", "UTC")"#,
            "'soon' is not a time",
        ),
        (r#"is_quiet_hours("", "UTC")"#, "'' is not a time"),
        (
            r#"add_business_days(now(), 9223372036854775807, "DE")"#,
            "business days from 2026-11-22T12:00:00Z is beyond the calendar",
        ),
        (
            r#"add_business_days(now(), -9223372036854775808, "DE", "Asia/Tokyo")"#,
            "is beyond the calendar",
        ),
        (
            r#"add_business_days("9999-12-31", 1000000, "ES")"#,
            "is beyond the calendar",
        ),
    ];
    for (call, reason) in cases {
        let err = eval(&format!("{call} == ()")).expect_err(call);
        assert!(err.message.contains(reason), "{call}: {err}");
    }
    // The valid extremes answer.
    for call in [
        r#"add_business_days("9999-12-31T23:59:59Z", 200000, "CL", "Pacific/Kiritimati")"#,
        r#"add_business_days("0000-01-01T00:00:00Z", -200000, "DE", "America/Santiago")"#,
        r#"end_of_quiet_hours("9999-12-31T23:59:59Z", "Pacific/Kiritimati")"#,
        r#"at_local("9999-12-31T23:59:59Z", "23:59", "Pacific/Kiritimati")"#,
        r#"is_quiet_hours("0000-01-01T00:00:00Z", "Pacific/Pago_Pago")"#,
    ] {
        assert!(eval(&format!("{call} != ()")).unwrap_or_else(|e| panic!("{call}: {e}")));
    }
}
