//! The Rhai engines: every limit set, shared by all rules. One engine compiles; runs borrow an
//! engine from a small pool, each with its own deadline, so that every run has a time budget
//! (Rhai's progress callback sees only an operation count, not whose run it is).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine};

/// Operations one condition or script may run before it is stopped.
pub(super) const MAX_OPERATIONS: u64 = 100_000;

/// Wall time one condition or script may run before it is stopped: the operation limit bounds
/// loops, this bounds operations that are each slow (on long strings, say).
pub const TIME_BUDGET: Duration = Duration::from_millis(100);

/// Longest string a script may build (bytes), and most items in one array or map.
pub(super) const MAX_STRING: usize = 64 * 1024;
pub(super) const MAX_ITEMS: usize = 10_000;

/// What the progress callback returns to stop a run that ran out of time.
pub(super) const OUT_OF_TIME: &str = "time budget";

/// How often (in operations) a run looks at the clock.
const CLOCK_EVERY: u64 = 32;

static ENGINE: LazyLock<Engine> = LazyLock::new(|| build(None));

/// The engine that compiles (and that runs with no budget nothing ever does).
pub fn engine() -> &'static Engine {
    &ENGINE
}

/// Process-wide start of the deadlines' time line.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn since_epoch() -> u64 {
    u64::try_from(EPOCH.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// An engine of the pool, and the deadline its progress callback checks (nanoseconds after
/// [`EPOCH`]; `u64::MAX` while idle).
struct Runner {
    engine: Engine,
    deadline: Arc<AtomicU64>,
}

/// Idle runners; one is built when all are busy (each evaluating thread holds at most one).
static POOL: Mutex<Vec<Runner>> = Mutex::new(Vec::new());

/// Runs `f` with an engine that stops it after [`TIME_BUDGET`].
pub(super) fn with_budget<R>(f: impl FnOnce(&Engine) -> R) -> R {
    let idle = POOL.lock().unwrap_or_else(|p| p.into_inner()).pop();
    let runner = idle.unwrap_or_else(|| {
        let deadline = Arc::new(AtomicU64::new(u64::MAX));
        Runner {
            engine: build(Some(deadline.clone())),
            deadline,
        }
    });
    let budget = u64::try_from(TIME_BUDGET.as_nanos()).unwrap_or(u64::MAX);
    runner
        .deadline
        .store(since_epoch().saturating_add(budget), Ordering::Relaxed);
    // A panic drops the runner instead of returning it: the pool only holds clean ones.
    let result = f(&runner.engine);
    runner.deadline.store(u64::MAX, Ordering::Relaxed);
    POOL.lock().unwrap_or_else(|p| p.into_inner()).push(runner);
    result
}

fn build(deadline: Option<Arc<AtomicU64>>) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(32)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(MAX_STRING)
        .set_max_array_size(MAX_ITEMS)
        .set_max_map_size(MAX_ITEMS)
        .set_max_variables(256)
        .set_max_functions(64)
        .set_strict_variables(true)
        // Operators look at registered overloads first, so that comparing text with a number
        // is the error `bindings` registers rather than Rhai's silent `false`.
        .set_fast_operators(false)
        .set_fail_on_invalid_map_property(false);
    if let Some(deadline) = deadline {
        engine.on_progress(move |operations| {
            (operations % CLOCK_EVERY == 0 && since_epoch() > deadline.load(Ordering::Relaxed))
                .then(|| Dynamic::from(OUT_OF_TIME))
        });
    }
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
