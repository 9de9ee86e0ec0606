//! The command line: `signalbox serve` and the subcommands for rule authors.

/// `println!` that hands a closed stdout (`signalbox events | head`) back as an error
/// instead of panicking; `main` ends quietly on it.
macro_rules! out {
    ($($arg:tt)*) => {
        {
            use std::io::Write as _;
            writeln!(std::io::stdout(), $($arg)*)?
        }
    };
}

mod actions;
mod checks;
mod evaluations;
mod events;
mod replay;
mod rules;
mod serve;
mod tokens;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, LogFormat};

/// Signalbox receives webhooks from collection and payment platforms, turns them into canonical
/// events, and runs your rules on them.
///
/// Start with `signalbox serve`: it needs no configuration (SQLite file ./signalbox.db, rules from
/// ./rules, HTTP on 127.0.0.1:8080). Then post an event:
///
///   curl -X POST localhost:8080/api/v1/events -d '{"type":"claim.created","subject":{"claim":"C-1"}}'
#[derive(Debug, Parser)]
#[command(name = "signalbox", version, verbatim_doc_comment)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine: receive webhooks, store and process events.
    Serve(ServeArgs),
    /// List the event catalogue (each platform's event types and the canonical type rules
    /// use); with --state, list stored events; `events retry` puts failed events back.
    Events(EventsArgs),
    /// Validate every rule file; print each problem as file:line:col: message.
    Check(CheckArgs),
    /// Run the inline `tests:` of every rule file.
    Test(TestArgs),
    /// Show what the rules would do with an event, without doing anything.
    Try(TryArgs),
    /// List planned actions by status, rule, event or target; show one with its parameters
    /// and attempts; retry dead ones; cancel a pending one.
    Actions(ActionsArgs),
    /// List recorded evaluations (failed ones by default), with the error and its rule line,
    /// and how often each rule failed in the last day.
    Evaluations(EvaluationsArgs),
    /// Create, list and revoke API tokens (kept hashed in the store).
    Tokens(TokensArgs),
    /// List the checks of `unless:` rules (pending ones wait for a follow-up or their
    /// deadline); cancel one.
    Checks(ChecksArgs),
    /// Why each rule did or did not fire for a stored event (evt_...), against the rules
    /// folder, knowing what the rules read from the store: `try --event-id` by its name.
    Explain(ExplainArgs),
    /// Run a rules folder over the stored events of a time range, on a virtual clock, without
    /// side effects, and compare with what happened: per rule, what would fire now and did
    /// not then, and the reverse.
    Backtest(BacktestArgs),
    /// Everything that happened to one claim (or account, debtor), in time order: its
    /// events, what the rules did, the actions and their attempts, the checks.
    Timeline(TimelineArgs),
    /// Evaluate stored events again against the rules folder: a dry run by default; with
    /// --apply, rules that fire now and did not then plan their actions, once.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct TokensArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(subcommand)]
    pub command: TokensCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token and print it (once: only its hash is kept)
    Create {
        /// Who holds it, recorded with what it does (e.g. crm-ingest, grafana)
        name: String,
        /// ingest, read, operate or admin (repeat for several)
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// ingest: a source its events may claim (repeat for several); without, any source
        /// that is not a platform's or the engine's own
        #[arg(long = "source")]
        sources: Vec<String>,
    },
    /// List stored tokens: roles, revoked or not, last use
    List,
    /// Revoke a stored token
    Revoke { name: String },
    /// Print a new random token without storing it (for the config's `tokens:`)
    Generate,
}

#[derive(Debug, Args)]
pub struct EvaluationsArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Only evaluations with this outcome: fired, throttled, failed, waiting
    #[arg(long, default_value = "failed")]
    pub outcome: crate::store::EvaluationOutcome,
    /// Only this rule's evaluations
    #[arg(long)]
    pub rule: Option<String>,
    /// Only evaluations at or after this time (RFC 3339, or a date such as 2026-11-20)
    #[arg(long)]
    pub since: Option<String>,
    /// How many to list, newest first
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct ActionsArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Only actions in this status: pending, in_flight, delivered, dead, cancelled
    #[arg(long)]
    pub status: Option<crate::store::ActionStatus>,
    /// Only actions of this rule
    #[arg(long)]
    pub rule: Option<String>,
    /// Only actions planned for this event (evt_...)
    #[arg(long)]
    pub event: Option<String>,
    /// Only actions whose target, webhook URL or email recipients contain this text (any case)
    #[arg(long)]
    pub target: Option<String>,
    /// Only actions older than this one (act_...): the next page
    #[arg(long)]
    pub before: Option<String>,
    /// How many to list, newest first
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[command(subcommand)]
    pub command: Option<ActionsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum ActionsCommand {
    /// An action with its target, parameters, next attempt and every delivery attempt
    Show { id: String },
    /// Put an action back to be delivered now, with a fresh set of attempts and the same
    /// idempotency key: one by id (dead or pending; a cancelled one with --cancelled), or dead
    /// ones by --dead, --rule, --event (at most 1000 a run)
    Retry {
        /// The action (act_...)
        id: Option<String>,
        /// Every dead action (with --rule or --event: only theirs)
        #[arg(long, conflicts_with = "id")]
        dead: bool,
        /// Dead actions of this rule
        #[arg(long, conflicts_with = "id")]
        rule: Option<String>,
        /// Dead actions of this event (evt_...)
        #[arg(long, conflicts_with = "id")]
        event: Option<String>,
        /// The action is cancelled: run it anyway
        #[arg(long, requires = "id")]
        cancelled: bool,
    },
    /// Cancel a pending action (a delayed one, or one waiting for a retry): it never runs
    Cancel { id: String },
}

#[derive(Debug, Args)]
pub struct ChecksArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Only checks in this status: pending, satisfied, fired, cancelled
    #[arg(long)]
    pub status: Option<crate::store::CheckStatus>,
    /// Only checks of this rule
    #[arg(long)]
    pub rule: Option<String>,
    /// How many to list, newest first
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[command(subcommand)]
    pub command: Option<ChecksCommand>,
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The rules to try (a changed copy of the folder, say)
    #[arg(long = "rules", default_value = "rules")]
    pub dir: PathBuf,
    /// Events received from this time (RFC 3339, or a date such as 2026-11-01)
    #[arg(long)]
    pub from: String,
    /// ... until this time (excluded) [default: now]
    #[arg(long)]
    pub to: Option<String>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The rules to evaluate against [default: the config's rules_dir]
    #[arg(long = "rules")]
    pub dir: Option<PathBuf>,
    /// One stored event (evt_...)
    #[arg(long, required_unless_present = "from", conflicts_with_all = ["from", "to", "kind", "source"])]
    pub event_id: Option<String>,
    /// Processed events received from this time (RFC 3339, or a date such as 2026-11-01)
    #[arg(long)]
    pub from: Option<String>,
    /// ... until this time (excluded) [default: now]
    #[arg(long)]
    pub to: Option<String>,
    /// Only events of this type
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Only events of this source
    #[arg(long)]
    pub source: Option<String>,
    /// Record what fires now and plan its actions (without: a dry run, nothing stored)
    #[arg(long)]
    pub apply: bool,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The stored event (evt_...)
    pub id: String,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Rules folder
    #[arg(long = "rules", default_value = "rules")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct TimelineArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// claim, account or debtor
    pub key: String,
    /// The claim's (account's, debtor's) reference, e.g. C-1
    pub value: String,
    /// The subject's newest events taken
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Print the entries as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ChecksCommand {
    /// Cancel a pending check: it stops waiting, and its rule does not fire for it
    Cancel { id: String },
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Rules folder
    #[arg(default_value = "rules")]
    pub dir: PathBuf,
    /// The config's `calendars:` count as the engine's do
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Fail on warnings too (a template reading a field some of the rule's events lack)
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Rules folder
    #[arg(default_value = "rules")]
    pub dir: PathBuf,
    /// The config's `calendars:` count as the engine's do
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Args)]
pub struct TryArgs {
    /// The event: canonical JSON, an event as `GET /v1/events/{id}` returns it, or a
    /// platform's webhook body with --source
    #[arg(
        long,
        required_unless_present_any = ["event_id", "sequence"],
        conflicts_with_all = ["event_id", "sequence"]
    )]
    pub event: Option<PathBuf>,
    /// Events at times, run on a virtual clock that fires deadlines, schedules and delayed
    /// actions: a YAML file `{from, until, events: [{at, event, source}]}` (as a rule test's)
    #[arg(long, conflicts_with = "event_id")]
    pub sequence: Option<PathBuf>,
    /// A stored event (evt_...), read from the store (see --database-url, -c)
    #[arg(long)]
    pub event_id: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The platform the event file comes from (receeve, amili, bemmbo, hubpay, b54)
    #[arg(long)]
    pub source: Option<String>,
    /// Rules folder
    #[arg(long = "rules", default_value = "rules")]
    pub dir: PathBuf,
    /// The time scripts see as now() (RFC 3339) [default: the current time]
    #[arg(long)]
    pub now: Option<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this platform's events (receeve, amili, bemmbo, hubpay, b54)
    #[arg(long)]
    pub source: Option<String>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// List stored events in this state (pending, processed, failed) instead of the catalogue
    #[arg(long)]
    pub state: Option<crate::store::EventState>,
    /// List the stored events about this claim
    #[arg(long, conflicts_with_all = ["account", "debtor"])]
    pub claim: Option<String>,
    /// List the stored events about this account
    #[arg(long, conflicts_with = "debtor")]
    pub account: Option<String>,
    /// List the stored events about this debtor
    #[arg(long)]
    pub debtor: Option<String>,
    /// List stored events of this type (e.g. sms.delivery_failed)
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Stored events that occurred at or after this time (RFC 3339)
    #[arg(long)]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Stored events that occurred before this time (RFC 3339)
    #[arg(long)]
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// How many stored events to list, newest first
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(subcommand)]
    pub command: Option<EventsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Put failed events back to be processed now, from their first attempt
    Retry {
        /// The event ids (evt_...)
        ids: Vec<String>,
        /// Every failed event
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

/// Where the configuration comes from; flags override the file and `SIGNALBOX_*` variables.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// YAML config file (see docs/config.md). Without it, defaults and SIGNALBOX_* apply.
    #[arg(short, long, env = "SIGNALBOX_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Store URL: sqlite://FILE or postgres://USER@HOST/DB [default: sqlite://signalbox.db]
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Folder of rule files [default: rules]
    #[arg(long, global = true)]
    pub rules_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long)]
    pub listen: Option<String>,
    /// Log format: human or json [default: human]
    #[arg(long)]
    pub log_format: Option<String>,
}

impl ConfigArgs {
    /// Defaults, file, environment, then these flags; validated.
    pub fn load(&self, flags: &[(&str, Option<&str>)]) -> anyhow::Result<Config> {
        let vars = std::env::vars().collect();
        let mut config = Config::load(self.config.as_deref(), &vars)?;
        let own = [
            ("database_url", self.database_url.as_deref()),
            (
                "rules_dir",
                self.rules_dir.as_ref().and_then(|p| p.to_str()),
            ),
        ];
        for (key, value) in own.iter().chain(flags) {
            if let Some(value) = value {
                config
                    .set(key, value)
                    .map_err(|e| anyhow::anyhow!("--{}: {e}", key.replace('_', "-")))?;
            }
        }
        config.validate()?;
        Ok(config)
    }
}

/// Whether `e` is stdout closed by the reader (`| head`): not a failure of the command.
pub fn is_closed_stdout(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Events(args) => events::run(args),
        Command::Check(args) => rules::check(args),
        Command::Test(args) => rules::test(args),
        Command::Try(args) => rules::try_event(args),
        Command::Actions(args) => actions::run(args),
        Command::Evaluations(args) => evaluations::run(args),
        Command::Tokens(args) => tokens::run(args),
        Command::Checks(args) => checks::run(args),
        Command::Timeline(args) => checks::timeline(args),
        Command::Backtest(args) => rules::backtest(args),
        Command::Replay(args) => replay::run(args),
        Command::Explain(args) => rules::try_event(TryArgs {
            event: None,
            event_id: Some(args.id),
            sequence: None,
            config: args.config,
            source: None,
            dir: args.dir,
            now: None,
        }),
    }
}

/// Logs to stderr, human-readable or JSON; `RUST_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// Every `signalbox ...` command the README shows in its shell examples is one the command
    /// line takes (its subcommand and flags), so a newcomer who copies it gets no usage error.
    #[test]
    fn the_readmes_commands_parse() {
        let readme = include_str!("../../README.md");
        let mut seen = 0;
        for line in readme.lines() {
            let line = line.trim();
            let Some(command) = line
                .strip_prefix("signalbox ")
                .or_else(|| line.strip_prefix("cargo run --release -- "))
            else {
                continue;
            };
            let command = command.split('#').next().unwrap_or_default();
            let args = std::iter::once("signalbox").chain(command.split_whitespace());
            if let Err(e) = super::Cli::try_parse_from(args) {
                panic!("README: `{line}` does not parse: {e}");
            }
            seen += 1;
        }
        assert!(
            seen >= 10,
            "the README shows the operator's commands ({seen} found)"
        );
    }
}
