//! The one Rhai engine: built once, every limit set, shared by all rules.

use std::sync::LazyLock;

use rhai::Engine;

/// Operations one condition or script may run before it is stopped.
pub(super) const MAX_OPERATIONS: u64 = 100_000;

static ENGINE: LazyLock<Engine> = LazyLock::new(build);

pub fn engine() -> &'static Engine {
    &ENGINE
}

fn build() -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(32)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(64 * 1024)
        .set_max_array_size(10_000)
        .set_max_map_size(10_000)
        .set_max_variables(256)
        .set_max_functions(64)
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(false);
    // No evaluating strings as code: what runs is what was checked when the rules loaded.
    engine.disable_symbol("eval");
    // `print` and `debug` have no evaluation to write to: they go to the engine's own log.
    // (`log(...)` writes into the evaluation record.)
    engine.on_print(|text| tracing::debug!(text, "script print"));
    engine.on_debug(|text, _, _| tracing::debug!(text, "script debug"));
    super::bindings::register(&mut engine);
    super::event::register(&mut engine);
    engine
}
