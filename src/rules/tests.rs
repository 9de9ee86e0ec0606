use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;
use crate::normalize::Event;

fn set(files: &[(&str, &str)]) -> Result<RuleSet, Vec<String>> {
    let texts: BTreeMap<PathBuf, String> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.to_string()))
        .collect();
    RuleSet::compile(&texts).map_err(|errors| errors.iter().map(ToString::to_string).collect())
}

fn errors(files: &[(&str, &str)]) -> Vec<String> {
    set(files).expect_err("expected the rules to be refused")
}

fn event(kind: &str, extra: Value) -> Event {
    let mut value = json!({
        "id": "evt_1", "source": "receeve", "source_event_id": "m-1", "type": kind, "source_type": "event.x.v1",
        "occurred_at": "2026-11-20T08:00:00Z", "received_at": "2026-11-20T08:00:01Z",
        "subject": {"claim": "C-1", "account": "A-1"}, "amount": {"value": "192.38", "currency": "EUR"}, "data": {}, "payload": {}
    });
    value
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(value).unwrap()
}

fn now() -> DateTime<Utc> {
    "2026-11-22T12:00:00Z".parse().unwrap()
}

const PTP_RULE: &str = r#"version: 1
id: ptp_expired_alert
name: Alert on expired promise
on: [promise_to_pay.expired]
sources: [receeve]
when: event.amount != () && minor_units(event.amount) >= 10000
script: |
  let overdue = days_between(event.occurred_at, now());
  log(`overdue ${overdue} days`);
actions:
  - type: email
    to: agent@example.com
    subject: "Promise to pay expired on claim {{ event.subject.claim }}"
    text: "{{ overdue }} days overdue"
  - type: webhook
    url: "https://crm.example.com/claims/{{ event.subject.claim }}/notes"
    body: { claim: "{{ event.subject.claim }}", kind: ptp_expired }
"#;

#[test]
fn a_rule_fires_with_rendered_actions_and_logs() {
    let rules = set(&[("rules/ptp.yaml", PTP_RULE)]).unwrap();
    let evaluations = rules.evaluate(&event("promise_to_pay.expired", json!({})), now());
    assert_eq!(evaluations.len(), 1);
    let Outcome::Fired {
        actions, throttle, ..
    } = &evaluations[0].outcome
    else {
        panic!("{:?}", evaluations[0])
    };
    let actions = json_of(actions);
    assert_eq!(actions[0]["type"], "email");
    assert_eq!(actions[0]["subject"], "Promise to pay expired on claim C-1");
    assert_eq!(actions[0]["text"], "2 days overdue");
    assert_eq!(
        actions[1]["url"],
        "https://crm.example.com/claims/C-1/notes"
    );
    assert_eq!(
        actions[1]["body"],
        json!({"claim": "C-1", "kind": "ptp_expired"})
    );
    assert_eq!(actions[1]["method"], "POST");
    assert!(throttle.is_none());
    assert_eq!(evaluations[0].logs, ["overdue 2 days"]);
    assert_eq!(evaluations[0].rule_version.len(), 12);
}

#[test]
fn conditions_sources_and_types_filter() {
    let rules = set(&[("rules/ptp.yaml", PTP_RULE)]).unwrap();
    let small = event(
        "promise_to_pay.expired",
        json!({"amount": {"value": "5.00", "currency": "EUR"}}),
    );
    assert!(matches!(
        rules.evaluate(&small, now())[0].outcome,
        Outcome::NotMatched { .. }
    ));
    assert!(
        rules
            .evaluate(&event("promise_to_pay.created", json!({})), now())
            .is_empty(),
        "indexed by type"
    );
    assert!(
        rules
            .evaluate(
                &event("promise_to_pay.expired", json!({"source": "api"})),
                now()
            )
            .is_empty()
    );
    let explained = rules.explain(
        &event("promise_to_pay.expired", json!({"source": "api"})),
        now(),
    );
    assert_eq!(
        explained[0].outcome,
        Outcome::NotMatched {
            reason: "source 'api' is not in sources: [receeve]".into()
        }
    );
}

#[test]
fn globs_and_source_types_match() {
    let rules = set(&[(
        "rules/r.yaml",
        "version: 1\nrules:\n  - id: any_sms\n    on: sms.*\n    actions: [{type: emit, event_type: claim.flagged}]\n  - id: archived\n    source_types: ['event.claim.archived.*']\n    actions: [{type: pause_strategy, reason: archived}]\n  - id: flagged\n    on: [claim.flagged]\n",
    )])
    .unwrap();
    let fired = |e: &Event| {
        rules
            .evaluate(e, now())
            .into_iter()
            .filter(|x| matches!(x.outcome, Outcome::Fired { .. }))
            .map(|x| x.rule_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(fired(&event("sms.delivery_failed", json!({}))), ["any_sms"]);
    assert_eq!(
        fired(&event(
            "unknown",
            json!({"source_type": "event.claim.archived.v2"})
        )),
        ["archived"]
    );
    let pause = &rules.evaluate(
        &event("unknown", json!({"source_type": "event.claim.archived.v2"})),
        now(),
    )[0];
    let Outcome::Fired { actions, .. } = &pause.outcome else {
        panic!()
    };
    assert_eq!(
        json_of(actions)[0],
        json!({"type": "pause_strategy", "claim": "C-1", "platform": "receeve", "reason": "archived"})
    );
}

#[test]
fn a_failing_rule_fails_alone() {
    let rules = set(&[(
        "rules/r.yaml",
        "version: 1\nrules:\n  - id: loops\n    on: [claim.created]\n    script: |\n      let n = 0;\n      loop { n += 1; }\n    actions: [{type: emit, event_type: claim.flagged}]\n  - id: missing_field\n    on: [claim.created]\n    actions: [{type: email, to: a@example.com, subject: 'x {{ event.subject.debtor }}', text: t}]\n  - id: fine\n    on: [claim.created]\n    actions: [{type: emit, event_type: claim.flagged}]\n",
    )])
    .unwrap();
    let evaluations = rules.evaluate(&event("claim.created", json!({})), now());
    let Outcome::Failed { error, line } = &evaluations[0].outcome else {
        panic!("{:?}", evaluations[0])
    };
    // Stopped by whichever bound it meets first: its operations, or on a slow machine (a
    // debug build under load) its time budget.
    assert!(
        error.contains("too many operations") || error.contains("longer than its time budget"),
        "{error}"
    );
    assert_eq!(*line, Some(7), "the loop's line in the file");
    let Outcome::Failed { error, .. } = &evaluations[1].outcome else {
        panic!("{:?}", evaluations[1])
    };
    assert!(
        error.starts_with("actions[0].subject:") && error.contains("undefined"),
        "{error}"
    );
    assert!(matches!(evaluations[2].outcome, Outcome::Fired { .. }));
}

/// Hostile rules and events, each failing its own evaluation with a reason while the rule
/// beside it fires: a runaway template loop, a template writing without end, the documented
/// large-claim condition on an amount at the decimal maximum.
#[test]
fn hostile_templates_and_amounts_fail_their_rule_alone() {
    let rules = set(&[(
        "rules/r.yaml",
        "version: 1\nrules:\n  - id: nested_loops\n    on: [claim.created]\n    actions: [{type: email, to: a@example.com, subject: s, text: '{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}'}]\n  - id: endless_output\n    on: [claim.created]\n    actions: [{type: email, to: a@example.com, subject: s, text: '{% for a in range(10000) %}{{ event.source_event_id ~ \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\" }}{% endfor %}'}]\n  - id: large_claim\n    on: [claim.created]\n    when: event.amount != () && minor_units(event.amount) >= 10000\n    actions: [{type: emit, event_type: claim.flagged}]\n  - id: fine\n    on: [claim.created]\n    actions: [{type: emit, event_type: claim.flagged}]\n",
    )])
    .unwrap();
    let huge = event(
        "claim.created",
        json!({"amount": {"value": "79228162514264337593543950335", "currency": "EUR"}}),
    );
    let evaluations = rules.evaluate(&huge, now());
    let error = |i: usize| match &evaluations[i].outcome {
        Outcome::Failed { error, .. } => error.clone(),
        other => panic!("{}: {other:?}", evaluations[i].rule_id),
    };
    assert!(
        error(0)
            .starts_with("actions[0].text: stopped: the template ran more than 50000 instructions"),
        "{}",
        error(0)
    );
    assert!(
        error(1).starts_with("actions[0].text: the rendered text passed 256 KiB"),
        "{}",
        error(1)
    );
    assert!(
        error(2).contains("79228162514264337593543950335 is too large"),
        "{}",
        error(2)
    );
    assert!(matches!(evaluations[3].outcome, Outcome::Fired { .. }));
}

#[test]
fn amounts_compare_as_money_in_conditions() {
    let rules = set(&[(
        "r.yaml",
        "version: 1\nid: big\non: [claim.created]\nwhen: event.amount.value > 500\nactions: [{type: emit, event_type: claim.flagged}]\n",
    )])
    .unwrap();
    let fires = |value: &str| {
        let event = event(
            "claim.created",
            json!({"amount": {"value": value, "currency": "EUR"}}),
        );
        matches!(
            rules.evaluate(&event, now())[0].outcome,
            Outcome::Fired { .. }
        )
    };
    assert!(fires("600.00"));
    assert!(fires("500.01"));
    assert!(!fires("400"));
    assert!(!fires("500.00"));
}

/// A template name nothing provides fails `check` at the name, with a did-you-mean: a typo'd
/// script variable, an event field that does not exist, a subject reference misspelt.
#[test]
fn templates_may_only_read_what_exists() {
    let text = "version: 1\nid: alert\non: [promise_to_pay.expired]\nscript: |\n  let priority = \"high\";\n  let claim = event.subject.claim ?? \"?\";\nactions:\n  - type: email\n    to: a@example.com\n    subject: \"{{ priorty }} on {{ claim }}\"\n    text: \"{{ event.ocurred_at }} {{ event.subject.claimm }} {{ event.data.anything.goes }} {% for i in range(2) %}{{ loop.index }}{{ i }}{% endfor %}\"\nthrottle: { key: '{{ event.subject.claim }}{{ clam }}', window: 1h }\n";
    let errors = errors(&[("rules/a.yaml", text)]);
    assert_eq!(
        errors,
        [
            "rules/a.yaml:10:18: rule alert: actions[0].subject: 'priorty' is not known: a template reads `event` and the variables its script sets (the script sets: claim, priority); did you mean 'priority'?",
            "rules/a.yaml:11:21: rule alert: actions[0].text: 'event.ocurred_at': the event has no field 'ocurred_at'; did you mean 'occurred_at'? (it has: id, source, source_event_id, type, source_type, occurred_at, received_at, subject, amount, data, chain_depth)",
            "rules/a.yaml:11:52: rule alert: actions[0].text: 'event.subject.claimm': event.subject has no field 'claimm'; did you mean 'claim'? (it has: account, claim, debtor, invoice, case, organization, customer, payment_request, payment, strategy, user)",
            "rules/a.yaml:12:47: rule alert: throttle.key: 'clam' is not known: a template reads `event` and the variables its script sets (the script sets: claim, priority); did you mean 'claim'?",
        ]
    );
}

#[test]
fn a_scripts_top_level_variables_are_found() {
    let names = crate::script::top_level_names(
        "let a = 1;\nconst B = \"let c = 2;\";\nif a > 0 { let inner = 3; }\n// let commented = 4;\nlet d = #{ e: 1 };\nlet brace = '{';\n/* { let hidden = 5; */\nlet f",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["B", "a", "brace", "d", "f"]
    );
}

/// Problems point at what is wrong: an unfinished script at its last line (not at the
/// `actions:` after it), a bad address at the address.
#[test]
fn problems_point_at_the_offending_line() {
    let text = "version: 1\nid: a\non: [claim.created]\nscript: |\n  let x = 1;\n  if x > 0 {\nactions:\n  - type: email\n    to: nobody\n    subject: s\n    text: t\n";
    let errors = errors(&[("rules/a.yaml", text)]);
    assert!(
        errors[0].starts_with("rules/a.yaml:6:"),
        "the unclosed block's line: {errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with(
            "rules/a.yaml:9:9: rule a: actions[0] (email): 'nobody' is not an email address"
        )),
        "{errors:?}"
    );
}

#[test]
fn scripts_can_skip() {
    let rules = set(&[("r.yaml", "version: 1\nid: s\non: [claim.created]\nscript: |\n  if event.subject.claim == \"C-1\" { skip(\"test claim\"); }\nactions: [{type: emit, event_type: claim.flagged}]\n")]).unwrap();
    assert_eq!(
        rules.evaluate(&event("claim.created", json!({})), now())[0].outcome,
        Outcome::Skipped {
            reason: "test claim".into()
        }
    );
}

#[test]
fn throttle_key_is_rendered() {
    let rules = set(&[("r.yaml", "version: 1\nid: t\non: [claim.created]\nthrottle: {key: '{{ event.subject.claim }}', window: 24h}\nactions: [{type: emit, event_type: claim.flagged}]\n")]).unwrap();
    let Outcome::Fired { throttle, .. } =
        &rules.evaluate(&event("claim.created", json!({})), now())[0].outcome
    else {
        panic!()
    };
    assert_eq!(
        throttle.as_ref().unwrap(),
        &("C-1".to_owned(), std::time::Duration::from_secs(86400))
    );
}

#[test]
fn problems_are_reported_with_file_line_column_and_rule() {
    let e = errors(&[(
        "rules/a.yaml",
        "version: 1\nid: a\non: [claim.created]\nwhn: true\n",
    )]);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("rules/a.yaml:4:1: unknown field `whn`, expected one of"),
        "{e:?}"
    );
    assert!(e[0].ends_with("did you mean `when`?"), "{e:?}");

    let e = errors(&[(
        "rules/b.yaml",
        "version: 1\nid: b\non: [claim.created]\nwhen: evnt.source == \"receeve\"\n",
    )]);
    assert!(
        e[0].starts_with("rules/b.yaml:4:7: rule b: when: Undefined variable: evnt"),
        "{e:?}"
    );

    let e = errors(&[(
        "rules/c.yaml",
        "version: 1\nid: c\non: [claim.created]\nscript: |\n  let a = 1;\n  let b = a +;\nactions: []\n",
    )]);
    assert!(
        e[0].starts_with("rules/c.yaml:6:"),
        "script line 2 is file line 6: {e:?}"
    );

    let e = errors(&[(
        "rules/d.yaml",
        "version: 1\nid: d\non: [promise_to_pay.expird, sms.nothing*]\n",
    )]);
    assert_eq!(
        e[0],
        "rules/d.yaml:3:1: rule d: unknown event type 'promise_to_pay.expird'; did you mean 'promise_to_pay.expired'? (see `signalbox events`)"
    );
    assert!(
        e[1].contains("'sms.nothing*' matches no known event type"),
        "{e:?}"
    );

    let e = errors(&[(
        "rules/e.yaml",
        "version: 1\nid: e\non: [claim.created]\nactions:\n  - type: webhook\n    url: not a url\n  - type: email\n    to: [agent-at-example.com]\n    subject: s\n    text: t\n  - type: pause\n",
    )]);
    assert!(
        e[0].contains("unknown variant `pause`") && e[0].contains("did you mean `pause_strategy`?"),
        "{e:?}"
    );
    let e = errors(&[(
        "rules/e.yaml",
        "version: 1\nid: e\non: [claim.created]\nactions:\n  - type: webhook\n    url: not a url\n  - type: email\n    to: [agent-at-example.com]\n    subject: s\n    text: t\n",
    )]);
    assert!(
        e.iter()
            .any(|m| m.contains("actions[0] (webhook): url 'not a url' is not a URL")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m
                .contains("actions[1] (email): 'agent-at-example.com' is not an email address")),
        "{e:?}"
    );

    let e = errors(&[("rules/f.yaml", "id: f\non: [claim.created]\n")]);
    assert_eq!(
        e,
        ["rules/f.yaml:1:1: rule files start with `version: 1` (found no version)"]
    );

    let e = errors(&[
        (
            "rules/g.yaml",
            "version: 1\nid: same\non: [claim.created]\n",
        ),
        (
            "rules/h.yaml",
            "version: 1\nid: same\non: [claim.created]\n",
        ),
    ]);
    assert_eq!(
        e,
        ["rules/h.yaml:2:1: rule same: id is already used by a rule in rules/g.yaml"]
    );

    let e = errors(&[(
        "rules/i.yaml",
        "version: 1\nid: i\non: [claim.created]\nthrottle: {key: '{{ event.subject.claim', window: soon}\n",
    )]);
    assert!(
        e.iter().any(|m| m.contains("throttle.key: template")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.contains("throttle.window: 'soon' is not a duration")),
        "{e:?}"
    );

    let e = errors(&[("rules/j.yaml", "version: 1\nid: j\n")]);
    assert!(e[0].contains("a rule needs a trigger"), "{e:?}");

    let e = errors(&[("rules/k.yaml", "version: 1\nid: k\non: [claim.created\n")]);
    assert!(
        e[0].starts_with("rules/k.yaml:"),
        "YAML syntax errors have a position: {e:?}"
    );
}

#[test]
fn emitted_types_are_valid_triggers() {
    set(&[("a.yaml", "version: 1\nid: a\non: [claim.created]\nactions: [{type: emit, event_type: claim.escalated}]\n"), ("b.yaml", "version: 1\nid: b\non: [claim.escalated]\n")]).unwrap();
}

fn json_of(actions: &[crate::actions::ActionConfig]) -> Vec<serde_json::Value> {
    actions
        .iter()
        .map(|a| serde_json::to_value(a).unwrap())
        .collect()
}

const HOSTILE_VALUES: &[(&str, &str)] = &[
    ("42/delete?x=", "42%2Fdelete%3Fx%3D"),
    ("a b#c", "a%20b%23c"),
    ("../../admin", "..%2F..%2Fadmin"),
    ("%2e%2e", "%252e%252e"),
    ("Müller&Söhne", "M%C3%BCller%26S%C3%B6hne"),
    ("plain-A_1.b~", "plain-A_1.b~"),
];

/// Values rendered into a webhook URL are percent-encoded (all but RFC 3986 unreserved
/// characters), so each stays one path segment or query value; the template's own text is
/// not; `| safe` writes a value as it is; other parameters are not encoded.
#[test]
fn values_in_webhook_urls_are_percent_encoded_unless_marked_safe() {
    let rules = set(&[(
        "rules/r.yaml",
        "version: 1\nid: crm\non: [claim.created]\nactions:\n  - type: webhook\n    url: \"https://crm.example.com/api/accounts/{{ event.subject.account }}/preferences?claim={{ event.subject.claim }}#{{ event.subject.claim }}\"\n    body: { account: \"{{ event.subject.account }}\" }\n    headers: { X-Account: \"{{ event.subject.account }}\" }\n  - type: webhook\n    url: \"https://crm.example.com/raw?v={{ event.subject.account | safe }}\"\n",
    )])
    .unwrap();
    for (value, encoded) in HOSTILE_VALUES {
        let evaluations = rules.evaluate(
            &event(
                "claim.created",
                json!({"subject": {"claim": value, "account": value}}),
            ),
            now(),
        );
        let Outcome::Fired { actions, .. } = &evaluations[0].outcome else {
            panic!("{value}: {:?}", evaluations[0])
        };
        let actions = json_of(actions);
        assert_eq!(
            actions[0]["url"],
            format!(
                "https://crm.example.com/api/accounts/{encoded}/preferences?claim={encoded}#{encoded}"
            ),
            "{value}"
        );
        assert_eq!(
            actions[0]["body"]["account"], *value,
            "bodies are not encoded"
        );
        assert_eq!(actions[0]["headers"]["X-Account"], *value);
        assert_eq!(
            actions[1]["url"],
            format!("https://crm.example.com/raw?v={value}"),
            "| safe"
        );
    }
    // `| safe` writes a value raw, but not a `..` into the path: that would call another path.
    let raw = set(&[(
        "rules/r.yaml",
        "version: 1\nid: raw\non: [claim.created]\nactions:\n  - type: webhook\n    url: \"https://crm.example.com/api/{{ event.subject.account | safe }}/x\"\n",
    )])
    .unwrap();
    for value in ["..", ".", "../admin", "%2e%2e"] {
        let evaluations = raw.evaluate(
            &event("claim.created", json!({"subject": {"account": value}})),
            now(),
        );
        assert!(
            matches!(&evaluations[0].outcome, Outcome::Failed { error, .. } if error.contains("may not be '.' or '..'")),
            "{value}: {:?}",
            evaluations[0]
        );
    }
}

/// A webhook header keeps the rule's `${secret:NAME}` as written (it is resolved only when
/// sending); a value cannot write a secret reference into a header, whole or in pieces.
#[test]
fn secret_references_in_headers_come_from_the_rule_only() {
    let rule = |header: &str| {
        format!(
            "version: 1\nid: crm\non: [claim.created]\nactions:\n  - type: webhook\n    url: https://crm.example.com/x\n    headers: {{ Authorization: \"{header}\" }}\n"
        )
    };
    let fire = |header: &str, account: &str| {
        let rules = set(&[("rules/r.yaml", &rule(header))]).unwrap();
        let event = event(
            "claim.created",
            json!({"subject": {"claim": "C-1", "account": account}}),
        );
        rules.evaluate(&event, now()).remove(0).outcome
    };
    let Outcome::Fired { actions, .. } = fire(
        "Bearer ${secret:CRM_TOKEN} {{ event.subject.claim }}",
        "A-1",
    ) else {
        panic!("the rule's reference fires")
    };
    assert_eq!(
        json_of(&actions)[0]["headers"]["Authorization"],
        "Bearer ${secret:CRM_TOKEN} C-1"
    );
    for (header, account) in [
        ("{{ event.subject.account }}", "${secret:DB_PASSWORD}"),
        (
            "{{ event.subject.account | safe }}",
            "x ${secret:DB_PASSWORD}",
        ),
        (
            "Bearer ${secret:CRM_TOKEN} {{ event.subject.account }}",
            "${secret:CRM_TOKEN}",
        ),
        ("${{ event.subject.account }}", "{secret:DB_PASSWORD}"),
        (
            "{{ event.subject.account[:1] }}{{ event.subject.account[1:] }}",
            "${secret:DB_PASSWORD}",
        ),
    ] {
        match fire(header, account) {
            Outcome::Failed { error, .. } => assert!(
                error.starts_with("actions[0].headers.Authorization: ")
                    && error.contains("a value may not write a secret reference"),
                "{header} with {account}: {error}"
            ),
            other => panic!("{header} with {account}: {other:?}"),
        }
    }
    let problems = errors(&[("rules/r.yaml", &rule("Bearer ${secret:crm token}"))]);
    assert!(
        problems[0]
            .contains("header Authorization: secret reference '${secret:crm token}' is not valid"),
        "{problems:?}"
    );
}

/// The commonest mistakes with time, each refused at load with its position and a sentence
/// that says what to write instead.
#[test]
fn time_mistakes_are_refused_with_what_to_write() {
    let problems = errors(&[(
        "t.yaml",
        r#"version: 1
rules:
  - id: bad_calendar
    on: [sms.delivery_failed]
    calendar: DX
    timezone: Europe/Berln
    actions: [{ type: emit, event_type: x.happened }]
  - id: bad_windows
    on: [promise_to_pay.created]
    history:
      fails: { events: sms.delivery_faild, same: claim, within: 7d }
      later: { events: sms.delivery_failed, same: case, within: a week }
    unless: { event: payment.recieved, same: claim, within: 3 bussiness days }
    actions:
      - type: emit
        event_type: y.happened
        cancel_on: { event: payment.received, same: claim }
  - id: both_triggers
    on: [sms.delivery_failed]
    schedule: { cron: "0 8 * *" }
    actions: [{ type: emit, event_type: z.happened }]
"#,
    )]);
    let all = problems.join("\n");
    for expected in [
        "t.yaml:5:5: rule bad_calendar: 'DX' is not a calendar (known: CL, DE, ES, weekdays)",
        "rule bad_calendar: timezone: 'Europe/Berln' is not a time zone (e.g. Europe/Berlin); did you mean 'Europe/Berlin'?",
        "rule bad_windows: history.fails: unknown event type 'sms.delivery_faild'; did you mean 'sms.delivery_failed'?",
        "rule bad_windows: history.later: 'case' is not a subject to match on: write claim, account or debtor",
        "rule bad_windows: unless.event: unknown event type 'payment.recieved'; did you mean 'payment.received'?",
        "rule bad_windows: actions[0].cancel_on: only a delayed action (with `after` or `at`) can be cancelled by a later event",
        "rule both_triggers: a rule runs on a schedule or on events, not both",
        "rule both_triggers: schedule.cron: '0 8 * *' is not a schedule",
    ] {
        assert!(all.contains(expected), "missing:\n{expected}\nin:\n{all}");
    }
}

/// Runs `rule` on a virtual clock over `events` (`(arrives at, canonical event)`).
fn on_clock(
    rule: &str,
    events: &[(&str, Value)],
    from: &str,
    until: &str,
) -> Result<Vec<simulate::Firing>, String> {
    let set = set(&[("r.yaml", rule)]).map_err(|e| e.join("\n"))?;
    let inputs = events
        .iter()
        .map(|(at, value)| {
            let at: DateTime<Utc> = at.parse().unwrap();
            let event =
                crate::normalize::canonical::parse_value(value.clone(), at).expect("an event");
            (at, event)
        })
        .collect();
    simulate::run(
        &set,
        None,
        inputs,
        from.parse().unwrap(),
        until.parse().unwrap(),
    )
}

const UNKEPT: &str = r#"version: 1
id: unkept
on: [promise_to_pay.created]
timezone: America/Santiago
calendar: CL
unless:
  event: payment.received
  same: claim
  where: next.amount.value >= event.amount.value
  from: "{{ event.data.dueDate }}"
  within: 2 business days
actions: [{ type: emit, event_type: promise.unkept }]
"#;

fn promise(occurred: &str, due: &str) -> Value {
    json!({"type": "promise_to_pay.created", "source_event_id": "p", "occurred_at": occurred,
           "subject": {"claim": "C-1"}, "amount": {"value": "100", "currency": "CLP"},
           "data": {"dueDate": due}})
}

fn paid(id: &str, occurred: &str, amount: Option<&str>) -> Value {
    let mut v = json!({"type": "payment.received", "source_event_id": id, "occurred_at": occurred,
                       "subject": {"claim": "C-1"}});
    if let Some(a) = amount {
        v["amount"] = json!({"value": a, "currency": "CLP"});
    }
    v
}

/// A bare due date is a day where the rule's zone is: Friday 4 December in Santiago + 2
/// business days ends at Tuesday 00:00 Santiago time (03:00 UTC), so a Monday evening payment
/// in Santiago is in time.
#[test]
fn a_bare_date_is_local_midnight_in_the_rules_zone() {
    let fired = on_clock(
        UNKEPT,
        &[
            (
                "2026-12-01T12:00:00Z",
                promise("2026-12-01T12:00:00Z", "2026-12-04"),
            ),
            (
                "2026-12-08T02:00:00Z",
                paid("pay", "2026-12-08T02:00:00Z", Some("100")),
            ),
        ],
        "2026-12-01T00:00:00Z",
        "2026-12-20T00:00:00Z",
    )
    .unwrap();
    assert!(fired.is_empty(), "{fired:?}");
    let fired = on_clock(
        UNKEPT,
        &[(
            "2026-12-01T12:00:00Z",
            promise("2026-12-01T12:00:00Z", "2026-12-04"),
        )],
        "2026-12-01T00:00:00Z",
        "2026-12-20T00:00:00Z",
    )
    .unwrap();
    assert_eq!(fired.len(), 1);
    // Tuesday 8 December is a holiday in Chile: the second business day is Wednesday.
    assert_eq!(fired[0].at.to_rfc3339(), "2026-12-09T03:00:00+00:00");
}

/// A payment that occurred before the promise does not keep it, whether it arrives before or
/// after it; one `where` cannot judge (no amount) does not count either, and the rule still
/// fires at the deadline.
#[test]
fn follow_ups_are_judged_alike_whenever_they_arrive() {
    for arrives in ["2026-12-01T11:00:00Z", "2026-12-01T13:00:00Z"] {
        let mut events = vec![
            (
                "2026-12-01T12:00:00Z",
                promise("2026-12-01T12:00:00Z", "2026-12-04"),
            ),
            (arrives, paid("early", "2026-11-01T12:00:00Z", Some("100"))),
            (arrives, paid("no-amount", "2026-12-02T12:00:00Z", None)),
        ];
        events.sort_by_key(|(at, _)| *at);
        let fired = on_clock(
            UNKEPT,
            &events,
            "2026-12-01T00:00:00Z",
            "2026-12-20T00:00:00Z",
        )
        .unwrap();
        assert_eq!(fired.len(), 1, "arriving at {arrives}: {fired:?}");
    }
}

/// A date far ahead in an event cannot keep a check (or a delayed action) waiting for ever.
#[test]
fn nothing_waits_more_than_a_year() {
    let error = on_clock(
        UNKEPT,
        &[(
            "2026-12-01T12:00:00Z",
            promise("2026-12-01T12:00:00Z", "9999-12-31"),
        )],
        "2026-12-01T00:00:00Z",
        "2026-12-20T00:00:00Z",
    )
    .unwrap_err();
    assert!(error.contains("is more than 366 days away"), "{error}");
    let delayed = r#"version: 1
id: later
on: [claim.created]
actions:
  - { type: emit, event_type: claim.reminded, at: "{{ event.data.when }}" }
"#;
    let error = on_clock(
        delayed,
        &[(
            "2026-12-01T12:00:00Z",
            json!({"type": "claim.created", "source_event_id": "c", "data": {"when": "9999-12-31"}}),
        )],
        "2026-12-01T00:00:00Z",
        "2026-12-20T00:00:00Z",
    )
    .unwrap_err();
    assert!(
        error.contains("actions[0]: it is due 9999-12-31"),
        "{error}"
    );
}

/// `*` reads every type; patterns naming more than 100 types are refused at load; the engine's
/// own types cannot be posted or emitted, and `on: ["*"]` never takes a tick.
#[test]
fn history_of_every_type_and_the_engines_own_types() {
    let every = r#"version: 1
id: busy_claim
on: [sms.delivery_failed]
history:
  all: { events: "*", same: claim, within: 7d }
when: history.all.count >= 2
actions: [{ type: emit, event_type: claim.busy }]
"#;
    let fired = on_clock(
        every,
        &[
            (
                "2026-12-01T09:00:00Z",
                json!({"type": "claim.created", "source_event_id": "a", "subject": {"claim": "C-1"}}),
            ),
            (
                "2026-12-01T10:00:00Z",
                json!({"type": "sms.delivery_failed", "source_event_id": "b", "subject": {"claim": "C-1"}}),
            ),
        ],
        "2026-12-01T00:00:00Z",
        "2026-12-02T00:00:00Z",
    )
    .unwrap();
    assert_eq!(fired.len(), 1, "{fired:?}");
    let problems = errors(&[(
        "r.yaml",
        r#"version: 1
id: too_many
on: [sms.delivery_failed]
history:
  all: { events: "*.*", within: 7d }
actions: [{ type: emit, event_type: claim.busy }]
"#,
    )]);
    assert!(
        problems[0].contains("a history reads at most 100 (or `*`, every type)"),
        "{problems:?}"
    );
    let problems = errors(&[(
        "r.yaml",
        r#"version: 1
id: forger
on: [claim.created]
actions: [{ type: emit, event_type: schedule.tick, data: { rule: x } }]
"#,
    )]);
    assert!(
        problems[0].contains("'schedule.tick' is the engine's own event type"),
        "{problems:?}"
    );
    let posted = crate::normalize::canonical::parse_value(
        json!({"type": "check.deadline", "source": "signalbox", "data": {}}),
        Utc::now(),
    )
    .unwrap_err();
    assert!(
        posted
            .to_string()
            .contains("is the engine's own event type"),
        "{posted}"
    );
    let everything = set(&[(
        "r.yaml",
        "version: 1\nid: everything\non: [\"*\"]\nactions: [{ type: emit, event_type: x.seen }]\n",
    )])
    .unwrap();
    let tick = simulate::tick_event("every_minute", Utc::now());
    assert!(everything.evaluate(&tick, Utc::now()).is_empty());
}

/// A schedule that ticks without end over a long test stops the clock with a sentence, and a
/// scheduled rule's test needs no events.
#[test]
fn the_virtual_clock_is_bounded_and_schedules_need_no_events() {
    let rule = r#"version: 1
id: every_minute
schedule: { cron: "* * * * *" }
actions: [{ type: emit, event_type: x.ticked }]
"#;
    let error = on_clock(rule, &[], "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z").unwrap_err();
    assert!(
        error.contains("the clock stopped after 20000 steps"),
        "{error}"
    );
    let fired = on_clock(rule, &[], "2026-01-01T00:00:00Z", "2026-01-01T00:03:00Z").unwrap();
    assert_eq!(fired.len(), 3);
}

/// A backtest input sees the inputs that arrived before it was processed (as the store held
/// them live), not those that arrived at that very time or later.
#[test]
fn a_simulated_event_sees_what_arrived_before_it_was_processed() {
    use simulate::{Input, Room, run_after};
    let rules = set(&[(
        "count.yaml",
        r#"version: 1
id: third
on: [sms.delivery_failed]
history:
  failures: { events: sms.delivery_failed, same: claim, within: 7d }
when: history.failures.count >= 3
actions: [{ type: emit, event_type: claim.unreachable }]
"#,
    )])
    .unwrap();
    let t = |minute: u32| -> DateTime<Utc> {
        format!("2026-12-01T09:{minute:02}:00Z").parse().unwrap()
    };
    // Arrivals at 09:01, 09:02, 09:03; the first occurred last.
    let failure = |id: &str, occurred: &str| {
        event(
            "sms.delivery_failed",
            json!({"id": id, "source_event_id": id, "occurred_at": occurred}),
        )
    };
    let inputs = |first_processed: DateTime<Utc>| {
        vec![
            Input {
                at: t(1),
                event: failure("evt_a", "2026-12-01T08:30:00Z"),
                sees_until: first_processed,
            },
            Input::at(t(2), failure("evt_b", "2026-12-01T08:10:00Z")),
            Input::at(t(3), failure("evt_c", "2026-12-01T08:20:00Z")),
        ]
    };
    let fired = |first_processed| {
        run_after(
            &rules,
            None,
            Vec::new(),
            inputs(first_processed),
            t(0),
            t(30),
            Room::default(),
            &mut |_| true,
        )
        .unwrap()
        .into_iter()
        .map(|f| f.event)
        .collect::<Vec<_>>()
    };
    assert_eq!(
        fired(t(1)),
        Vec::<String>::new(),
        "processed on arrival: it counts one"
    );
    assert_eq!(
        fired(t(3)),
        Vec::<String>::new(),
        "one arrived at 09:03 exactly: after it"
    );
    assert_eq!(
        fired(t(4)),
        ["evt_a"],
        "processed at 09:04: it counts three"
    );
    let stopped = run_after(
        &rules,
        None,
        Vec::new(),
        inputs(t(1)),
        t(0),
        t(30),
        Room::default(),
        &mut |done| done < 2,
    )
    .unwrap_err();
    assert!(
        stopped.starts_with("stopped after 2 of 3 events"),
        "{stopped}"
    );
}
