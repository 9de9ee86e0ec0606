//! Retry policies: how each action kind's failed deliveries are tried again (settings and
//! math). The dispatcher asks the kind for its policy, then [`next_delay`] for the wait.

use std::time::Duration;

use serde::Deserialize;

/// When and how often a failed delivery is tried again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// `exponential` (default: the delay doubles each time) or `fixed`.
    pub policy: RetryPolicyKind,
    /// Attempts in all, the first included; after the last the action is dead. Default 8.
    pub max_attempts: u32,
    /// Delay before the second attempt. Default 10s.
    #[serde(with = "humantime_serde")]
    pub initial_delay: Duration,
    /// Longest delay between attempts (also caps a target's Retry-After). Default 1h.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            policy: RetryPolicyKind::Exponential,
            max_attempts: 8,
            initial_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(3600),
        }
    }
}

impl RetryConfig {
    /// Why this policy cannot work, if it cannot.
    pub fn problem(&self) -> Option<&'static str> {
        (self.max_attempts == 0 || self.initial_delay > self.max_delay)
            .then_some("max_attempts must be at least 1 and initial_delay at most max_delay")
    }
}

/// A retry policy as written where the defaults are not [`RetryConfig::default`]'s: each key
/// given replaces the owner's default, the others keep it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPatch {
    policy: Option<RetryPolicyKind>,
    max_attempts: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    initial_delay: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    max_delay: Option<Duration>,
}

impl RetryPatch {
    /// `base` with the keys this patch sets.
    pub fn over(self, base: RetryConfig) -> RetryConfig {
        RetryConfig {
            policy: self.policy.unwrap_or(base.policy),
            max_attempts: self.max_attempts.unwrap_or(base.max_attempts),
            initial_delay: self.initial_delay.unwrap_or(base.initial_delay),
            max_delay: self.max_delay.unwrap_or(base.max_delay),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryPolicyKind {
    Exponential,
    Fixed,
}

/// The delay before the next attempt after `attempts_made` attempts, or `None` when the
/// policy is exhausted (the action is dead). `jitter` in [0, 1) spreads retries by ±20%.
/// A target's `retry_after` is honored: the delay is at least that, within `max_delay`.
pub fn next_delay(
    policy: &RetryConfig,
    attempts_made: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<Duration> {
    if attempts_made >= policy.max_attempts {
        return None;
    }
    let base = match policy.policy {
        RetryPolicyKind::Fixed => policy.initial_delay,
        RetryPolicyKind::Exponential => {
            let doublings = attempts_made.saturating_sub(1).min(30);
            policy.initial_delay.saturating_mul(1 << doublings)
        }
    };
    let jittered = base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0));
    Some(
        jittered
            .max(retry_after.unwrap_or_default())
            .min(policy.max_delay),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(kind: RetryPolicyKind) -> RetryConfig {
        RetryConfig {
            policy: kind,
            max_attempts: 5,
            initial_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
        }
    }

    #[test]
    fn exponential_doubles_up_to_the_maximum_then_stops() {
        let p = policy(RetryPolicyKind::Exponential);
        let delays: Vec<_> = (1..=5).map(|n| next_delay(&p, n, None, 0.5)).collect();
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
        assert_eq!(
            delays.iter().map(|d| secs(*d)).collect::<Vec<_>>(),
            [Some(10), Some(20), Some(40), Some(60), None]
        );
    }

    #[test]
    fn fixed_waits_the_same_each_time() {
        let p = policy(RetryPolicyKind::Fixed);
        assert_eq!(next_delay(&p, 3, None, 0.5), Some(Duration::from_secs(10)));
    }

    #[test]
    fn jitter_spreads_by_twenty_percent() {
        let p = policy(RetryPolicyKind::Exponential);
        assert_eq!(next_delay(&p, 1, None, 0.0), Some(Duration::from_secs(8)));
        assert_eq!(next_delay(&p, 1, None, 1.0), Some(Duration::from_secs(12)));
    }

    #[test]
    fn retries_503_after_retry_after_delay_within_bounds() {
        let p = policy(RetryPolicyKind::Exponential);
        assert_eq!(
            next_delay(&p, 1, Some(Duration::from_secs(30)), 0.5),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            next_delay(&p, 1, Some(Duration::from_secs(3600)), 0.5),
            Some(Duration::from_secs(60)),
            "capped by max_delay"
        );
        assert_eq!(
            next_delay(&p, 1, Some(Duration::from_secs(1)), 0.5),
            Some(Duration::from_secs(10)),
            "never sooner than the policy"
        );
    }
}
