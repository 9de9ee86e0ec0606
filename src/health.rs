//! What `/readyz` reports: whether the engine can do its work. The stages write into one
//! [`Health`]: the processor its heartbeat, the writer and processor whether the store took
//! their writes, the supervisor which background loops are down and how often they died.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// Shared by the stages and the health endpoint.
#[derive(Debug, Default)]
pub struct Health {
    /// When the processor last made progress (finished a round, evaluated an event, or found
    /// nothing to do), in epoch milliseconds; 0 before its first round.
    processor_beat_ms: AtomicI64,
    /// The last write the store refused, until one succeeds.
    write_failure: Mutex<Option<String>>,
    loops: Mutex<BTreeMap<&'static str, LoopState>>,
}

/// One supervised background loop.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct LoopState {
    pub running: bool,
    /// How often it died (panicked) and was restarted.
    pub restarts: u32,
}

impl Health {
    pub fn beat(&self, now_ms: i64) {
        self.processor_beat_ms.store(now_ms, Ordering::Relaxed);
    }

    /// The processor's last heartbeat, if it has had one.
    pub fn last_beat_ms(&self) -> Option<i64> {
        Some(self.processor_beat_ms.load(Ordering::Relaxed)).filter(|&ms| ms > 0)
    }

    /// Records the outcome of a write to the store.
    pub fn wrote(&self, result: Result<(), String>) {
        let mut failure = self.write_failure.lock().unwrap_or_else(|p| p.into_inner());
        *failure = result.err();
    }

    pub fn write_failure(&self) -> Option<String> {
        self.write_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn loop_started(&self, name: &'static str) {
        self.loops_mut().entry(name).or_default().running = true;
    }

    pub fn loop_died(&self, name: &'static str) {
        let mut loops = self.loops_mut();
        let state = loops.entry(name).or_default();
        state.running = false;
        state.restarts += 1;
    }

    pub fn loop_ended(&self, name: &'static str) {
        self.loops_mut().entry(name).or_default().running = false;
    }

    pub fn loops(&self) -> BTreeMap<&'static str, LoopState> {
        self.loops_mut().clone()
    }

    fn loops_mut(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, LoopState>> {
        self.loops.lock().unwrap_or_else(|p| p.into_inner())
    }
}
