//! An arbitrary template as an action's text: it renders or the rule fails with a reason,
//! within its fuel and output limits, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|template: &str| {
    let body: String = template
        .lines()
        .map(|line| format!("      {line}\n"))
        .collect();
    let rule = format!(
        "version: 1\nid: fuzz\non: [claim.created]\nactions:\n  - type: email\n    to: a@example.com\n    subject: s\n    text: |\n{body}"
    );
    signalbox_fuzz_support::compile_and_run(&rule);
});

mod signalbox_fuzz_support {
    include!("support.rs");
}
