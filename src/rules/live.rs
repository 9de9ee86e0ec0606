//! The running rule set, swapped whole when the rules folder changes: a change is validated
//! first, and if it is invalid the running set stays and the problem is logged and shown by
//! `/readyz`. An event is evaluated against one set, never a half-loaded one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use notify::Watcher;
use serde::Serialize;
use tokio::sync::watch;

use super::{RuleError, RuleSet};
use crate::clock::SharedClock;

/// How long the folder must be quiet before a reload (editors write in several steps).
const SETTLE: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Serialize)]
pub struct RulesStatus {
    pub dir: PathBuf,
    pub rules: usize,
    pub files: usize,
    pub loaded_at: DateTime<Utc>,
    /// The problems of the last reload that was refused, until a reload succeeds.
    pub rejected_reload: Option<Vec<String>>,
}

pub struct LiveRules {
    current: ArcSwap<RuleSet>,
    clock: SharedClock,
    status: Mutex<RulesStatus>,
    dir: PathBuf,
}

impl LiveRules {
    /// Loads the folder; fails with every problem found.
    pub fn load(dir: &Path, clock: SharedClock) -> Result<Arc<Self>, Vec<RuleError>> {
        let set = RuleSet::load_dir(dir)?;
        let status = RulesStatus {
            dir: dir.to_owned(),
            rules: set.len(),
            files: set.files.len(),
            loaded_at: clock.now(),
            rejected_reload: None,
        };
        Ok(Arc::new(Self {
            clock,
            current: ArcSwap::from_pointee(set),
            status: Mutex::new(status),
            dir: dir.to_owned(),
        }))
    }

    /// The set to evaluate an event against.
    pub fn current(&self) -> Arc<RuleSet> {
        self.current.load_full()
    }

    pub fn status(&self) -> RulesStatus {
        self.status
            .lock()
            .expect("status lock is never poisoned")
            .clone()
    }

    /// Loads the folder again: swaps it in if valid, else keeps the running set.
    pub fn reload(&self) -> Result<(), Vec<RuleError>> {
        let mut status = self.status.lock().expect("status lock is never poisoned");
        match RuleSet::load_dir(&self.dir) {
            Ok(set) => {
                tracing::info!(rules = set.len(), files = set.files.len(), "rules reloaded");
                *status = RulesStatus {
                    dir: self.dir.clone(),
                    rules: set.len(),
                    files: set.files.len(),
                    loaded_at: self.clock.now(),
                    rejected_reload: None,
                };
                self.current.store(Arc::new(set));
                Ok(())
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!(problem = %e, "rules change refused; the running rules stay");
                }
                status.rejected_reload = Some(errors.iter().map(ToString::to_string).collect());
                Err(errors)
            }
        }
    }

    /// Watches the folder and reloads after changes, until `shutdown`. The watch is in place
    /// when this returns, so no change made after it is missed. Without a folder to watch,
    /// logs why and reloads nothing.
    pub fn watch(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                let _ = tx.send(());
            }
        })
        // Watch the folder, not the files: editors save by renaming a new file over the old.
        .and_then(|mut w| {
            w.watch(&self.dir, notify::RecursiveMode::NonRecursive)
                .map(|()| w)
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, dir = %self.dir.display(), "cannot watch the rules folder; rule changes need a restart");
                None
            }
        };
        tokio::spawn(async move {
            let Some(_watcher) = watcher else { return };
            loop {
                tokio::select! {
                    changed = rx.recv() => if changed.is_none() { return },
                    _ = shutdown.changed() => return,
                }
                // Let the burst of writes settle.
                while tokio::time::timeout(SETTLE, rx.recv())
                    .await
                    .is_ok_and(|m| m.is_some())
                {}
                let this = self.clone();
                let _ = tokio::task::spawn_blocking(move || this.reload()).await;
            }
        })
    }
}
