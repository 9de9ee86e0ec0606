//! The closed sets of words the store keeps in text columns: each an enum with `as_str` (what
//! is bound in SQL and printed) and `FromStr` (what is read back and parsed from the CLI).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Declares a closed enum stored as snake_case text.
macro_rules! stored_words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] #[value(name = $text)] $variant),*
        }

        impl $name {
            pub const ALL: &[Self] = &[$(Self::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok(Self::$variant),)*
                    other => Err(format!(
                        "'{other}' is not one of: {}",
                        [$($text),*].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stored_words! {
    /// Where an event is in processing.
    EventState {
        Pending => "pending",
        Processed => "processed",
        /// Its processing failed on every attempt: parked with the reason, never blocking
        /// the events behind it; `signalbox events retry` puts it back.
        Failed => "failed",
    }
}

stored_words! {
    /// Where an action is in the outbox.
    ActionStatus {
        /// Waiting for its time (first attempt or a retry).
        Pending => "pending",
        /// Leased by a dispatcher that is delivering it.
        InFlight => "in_flight",
        Delivered => "delivered",
        /// Out of attempts, or failed for good; `retry` puts it back.
        Dead => "dead",
        /// Cancelled before it was delivered: by an operator, or by a later event its rule named.
        Cancelled => "cancelled",
    }
}

stored_words! {
    /// What one delivery attempt came to.
    AttemptOutcome {
        Delivered => "delivered",
        /// Failed in a way worth trying again.
        Retry => "retry",
        /// Failed in a way that trying again would repeat.
        Failed => "failed",
    }
}

stored_words! {
    /// What a recorded evaluation came to.
    EvaluationOutcome {
        Fired => "fired",
        /// It would have fired, but its throttle had fired within the window.
        Throttled => "throttled",
        Failed => "failed",
        /// It matched and now waits for a follow-up event or its deadline (a pending check).
        Waiting => "waiting",
    }
}

stored_words! {
    /// Where an "A not followed by B" check is.
    CheckStatus {
        /// Waiting for an awaited event about its subject, or for its deadline.
        Pending => "pending",
        /// An awaited event came in time (`resolved_by` names it).
        Satisfied => "satisfied",
        /// Its deadline passed with no awaited event: the rule fired.
        Fired => "fired",
        /// Dropped before it was resolved (`resolved_by` says by whom).
        Cancelled => "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_read_back_as_they_are_written() {
        for state in EventState::ALL {
            assert_eq!(state.as_str().parse::<EventState>(), Ok(*state));
        }
        for status in ActionStatus::ALL {
            assert_eq!(status.as_str().parse::<ActionStatus>(), Ok(*status));
        }
        for outcome in AttemptOutcome::ALL {
            assert_eq!(outcome.as_str().parse::<AttemptOutcome>(), Ok(*outcome));
        }
        for outcome in EvaluationOutcome::ALL {
            assert_eq!(outcome.as_str().parse::<EvaluationOutcome>(), Ok(*outcome));
        }
        for status in CheckStatus::ALL {
            assert_eq!(status.as_str().parse::<CheckStatus>(), Ok(*status));
        }
        assert_eq!(
            "sent".parse::<ActionStatus>().unwrap_err(),
            "'sent' is not one of: pending, in_flight, delivered, dead, cancelled"
        );
        assert_eq!(
            serde_json::to_value(ActionStatus::InFlight).unwrap(),
            "in_flight"
        );
    }
}
