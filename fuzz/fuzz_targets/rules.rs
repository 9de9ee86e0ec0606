//! An arbitrary rule file: the compiler accepts it or reports problems; an accepted one is
//! evaluated against a sample event without a panic (scripts and templates run bounded).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    signalbox_fuzz_support::compile_and_run(text);
});

mod signalbox_fuzz_support {
    include!("support.rs");
}
