//! The outbox: planned actions as durable rows, delivered by dispatchers, retried, recorded.
//!
//! Receives planned actions from rule evaluation (rows written in the same transaction as the
//! evaluation, by `Store::complete`); hands each due action to its kind's executor
//! (`crate::actions`) and records every attempt. Planning happens exactly once per (event,
//! rule, action); delivery is at least once, with the action's id as a stable idempotency key.

pub mod worker;
