//! What `/readyz` reports: whether the engine can do its work. The stages write into one
//! [`Health`]: the writer and processor whether the store took their writes, the supervisor
//! which background loops are down and how often they died.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared by the stages and the health endpoint.
#[derive(Debug, Default)]
pub struct Health {
    /// A write probe is running (so concurrent `/readyz` calls do not add more).
    probing: AtomicBool,
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
    /// Takes the right to run the one write probe; `false` while another runs.
    pub fn start_probe(&self) -> bool {
        !self.probing.swap(true, Ordering::AcqRel)
    }

    pub fn end_probe(&self) {
        self.probing.store(false, Ordering::Release);
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
