//! The running rule set, swapped whole when the rules folder changes: a change is validated
//! (and its inline tests run) first, and if it is refused the running set stays and the
//! problem is logged and shown by `GET /v1/rules/status`. An event is evaluated against one
//! set, never a half-loaded one. A broken folder never stops the engine: it runs the last
//! good set recorded in the store, or holds evaluation until the folder is fixed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use notify::Watcher;
use serde::Serialize;
use tokio::sync::watch;

use super::{RuleError, RuleSet};
use crate::calendar::Calendars;
use crate::clock::SharedClock;
use crate::store::{Store, StoredRuleSet};

/// The folder's rules, compiled, with their inline tests passing when `require_passing_tests`
/// (a failing test refuses the set as a problem does, at the test's rule).
fn load_checked(
    dir: &Path,
    require_passing_tests: bool,
    calendars: &Arc<Calendars>,
) -> Result<RuleSet, Vec<RuleError>> {
    let set = RuleSet::load_dir_with(dir, calendars)?;
    if !require_passing_tests {
        return Ok(set);
    }
    let registry = match crate::providers::Registry::from_config(&Default::default()) {
        Ok(registry) => registry,
        Err(e) => {
            tracing::warn!(error = %e, "cannot run the rules' inline tests");
            return Ok(set);
        }
    };
    let failures: Vec<RuleError> = super::testing::run_all(&set, &registry)
        .into_iter()
        .filter_map(|result| {
            let failure = result.failure?;
            Some(RuleError {
                line: std::fs::read_to_string(&result.file)
                    .ok()
                    .and_then(|text| {
                        text.lines().position(|l| {
                            l.trim_start()
                                .trim_start_matches("- ")
                                .starts_with(&format!("name: {}", result.name))
                        })
                    })
                    .map_or(1, |i| i + 1),
                file: result.file,
                column: 1,
                rule: Some(result.rule),
                message: format!("inline test '{}' fails: {failure}", result.name),
            })
        })
        .collect();
    if failures.is_empty() {
        Ok(set)
    } else {
        Err(failures)
    }
}

/// A rule set as stored when it went into force, compiled again.
pub fn compile_stored(
    stored: &StoredRuleSet,
    calendars: &Arc<Calendars>,
) -> Result<RuleSet, Vec<RuleError>> {
    let texts = stored
        .files
        .iter()
        .map(|(path, text)| (PathBuf::from(path), text.clone()))
        .collect();
    RuleSet::compile_with(&texts, calendars)
}

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
    /// Whether a rule set is in force. Without one (the folder was broken at start and no
    /// good set was ever stored), events are stored but not evaluated until the folder is fixed.
    pub in_force: bool,
    /// Set when the set in force is not the folder's: the folder was broken at start, and the
    /// last good set (this id, from the store) runs instead.
    pub fallback: Option<String>,
    /// The id of the set in force (a hash of its files).
    pub set_id: Option<String>,
}

pub struct LiveRules {
    current: ArcSwap<RuleSet>,
    clock: SharedClock,
    status: Mutex<RulesStatus>,
    dir: PathBuf,
    /// Refuse a change whose inline tests fail, as an invalid one is.
    require_passing_tests: bool,
    /// The calendars rules count business days on (built-in and the config's).
    calendars: Arc<Calendars>,
    /// The last earlier set compiled for explain ([`LiveRules::earlier`]), kept so that asking
    /// again about its events compiles nothing.
    earlier: Mutex<Option<Arc<RuleSet>>>,
}

impl LiveRules {
    /// Loads the folder; fails with every problem found (and, if `require_passing_tests`,
    /// every failing inline test).
    pub fn load(
        dir: &Path,
        clock: SharedClock,
        require_passing_tests: bool,
    ) -> Result<Arc<Self>, Vec<RuleError>> {
        let calendars = Arc::<Calendars>::default();
        let set = load_checked(dir, require_passing_tests, &calendars)?;
        Ok(Arc::new(Self::with(
            set,
            dir,
            clock,
            require_passing_tests,
            None,
        )))
    }

    /// Loads the folder for a running engine, which never stops for a rule: when the folder
    /// is broken, the last good set recorded in `store` runs instead, or, if there is none,
    /// evaluation waits (events are still stored) until the folder is fixed. Every set that
    /// goes into force is recorded in `store`.
    pub async fn start(
        dir: &Path,
        clock: SharedClock,
        require_passing_tests: bool,
        store: &Store,
        calendars: Arc<Calendars>,
    ) -> Arc<Self> {
        let errors = match load_checked(dir, require_passing_tests, &calendars) {
            Ok(set) => {
                let live = Self::with(set, dir, clock, require_passing_tests, None);
                live.record(store).await;
                return Arc::new(live);
            }
            Err(errors) => errors,
        };
        for e in &errors {
            tracing::error!(problem = %e, "the rules folder has problems");
        }
        let problems: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let last = match store.last_rule_set(&dir.to_string_lossy()).await {
            Ok(last) => last,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the last good rule set");
                None
            }
        };
        let fallback = last.and_then(|stored| {
            match compile_stored(&stored, &calendars) {
                Ok(set) => Some((set, stored)),
                Err(e) => {
                    tracing::error!(set_id = %stored.id, problems = e.len(), "the last good rule set no longer compiles");
                    None
                }
            }
        });
        let live = match fallback {
            Some((set, stored)) => {
                tracing::error!(set_id = %stored.id, loaded_at = %stored.loaded_at, "running the last good rule set until the rules folder is fixed");
                Self::with(set, dir, clock, require_passing_tests, Some(stored.id))
            }
            None => {
                tracing::error!(
                    "no rule set in force: events are stored, and evaluated once the rules folder is fixed"
                );
                let mut live = Self::with(
                    RuleSet::compile_with(&Default::default(), &calendars)
                        .expect("no rules compile"),
                    dir,
                    clock,
                    require_passing_tests,
                    None,
                );
                let status = live.status.get_mut().unwrap_or_else(|p| p.into_inner());
                status.in_force = false;
                status.set_id = None;
                live
            }
        };
        {
            let mut status = live.status.lock().unwrap_or_else(|p| p.into_inner());
            status.rejected_reload = Some(problems);
        }
        Arc::new(live)
    }

    fn with(
        set: RuleSet,
        dir: &Path,
        clock: SharedClock,
        require_passing_tests: bool,
        fallback: Option<String>,
    ) -> Self {
        let status = RulesStatus {
            dir: dir.to_owned(),
            rules: set.len(),
            files: set.files.len(),
            loaded_at: clock.now(),
            rejected_reload: None,
            in_force: true,
            fallback,
            set_id: Some(set.id()),
        };
        Self {
            clock,
            calendars: set.calendars().clone(),
            current: ArcSwap::from_pointee(set),
            status: Mutex::new(status),
            dir: dir.to_owned(),
            require_passing_tests,
            earlier: Mutex::new(None),
        }
    }

    /// A stored set that was in force earlier, compiled again (with these calendars), or the
    /// one compiled last time if it is the same.
    pub fn earlier(&self, stored: &StoredRuleSet) -> Result<Arc<RuleSet>, Vec<RuleError>> {
        let cached = self
            .earlier
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(set) = cached.filter(|set| set.id() == stored.id) {
            return Ok(set);
        }
        let set = Arc::new(compile_stored(stored, &self.calendars)?);
        *self.earlier.lock().unwrap_or_else(|p| p.into_inner()) = Some(set.clone());
        Ok(set)
    }

    /// Records the set in force in `store`, so a later start can fall back on it.
    async fn record(&self, store: &Store) {
        let set = self.current();
        if self.status().fallback.is_some() || !self.status().in_force {
            return;
        }
        let stored = StoredRuleSet {
            id: set.id(),
            files: set
                .texts
                .iter()
                .map(|(p, t)| (p.to_string_lossy().into_owned(), t.clone()))
                .collect(),
            loaded_at: self.clock.now(),
            origin: self.dir.to_string_lossy().into_owned(),
        };
        if let Err(e) = store.save_rule_set(&stored).await {
            tracing::warn!(error = %e, "cannot record the rule set in force");
        }
    }

    /// The set to evaluate an event against.
    pub fn current(&self) -> Arc<RuleSet> {
        self.current.load_full()
    }

    /// Whether a rule set is in force (else evaluation waits).
    pub fn in_force(&self) -> bool {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .in_force
    }

    pub fn status(&self) -> RulesStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Loads the folder again: swaps it in if valid, else keeps the running set.
    pub fn reload(&self) -> Result<(), Vec<RuleError>> {
        // Compile (and run the tests) first: the status lock is taken by async handlers.
        let loaded = load_checked(&self.dir, self.require_passing_tests, &self.calendars);
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match loaded {
            Ok(set) => {
                tracing::info!(rules = set.len(), files = set.files.len(), "rules reloaded");
                *status = RulesStatus {
                    dir: self.dir.clone(),
                    rules: set.len(),
                    files: set.files.len(),
                    loaded_at: self.clock.now(),
                    rejected_reload: None,
                    in_force: true,
                    fallback: None,
                    set_id: Some(set.id()),
                };
                self.current.store(Arc::new(set));
                metrics::counter!("signalbox_rules_reloads_total", "outcome" => "applied")
                    .increment(1);
                Ok(())
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!(problem = %e, "rules change refused; the running rules stay");
                }
                status.rejected_reload = Some(errors.iter().map(ToString::to_string).collect());
                metrics::counter!("signalbox_rules_reloads_total", "outcome" => "refused")
                    .increment(1);
                Err(errors)
            }
        }
    }

    /// Watches the folder and reloads after changes, until `shutdown`. The watch is in place
    /// when this returns, so no change made after it is missed. Without a folder to watch,
    /// logs why and reloads nothing.
    pub fn watch(
        self: Arc<Self>,
        store: Store,
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
                if let Ok(Ok(())) = tokio::task::spawn_blocking(move || this.reload()).await {
                    self.record(&store).await;
                }
            }
        })
    }
}
