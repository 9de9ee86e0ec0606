//! API tokens and their roles: who may call what on the management API.
//!
//! A token is `sbt_` and 43 characters of 32 random bytes (base64url). Only its SHA-256 is
//! kept, in the config's `tokens:` (hashed at load) or the store (`signalbox tokens create`);
//! a presented token is hashed and compared with every known hash in constant time. SHA-256,
//! not a password hash: tokens carry 256 bits of randomness, so there is nothing to guess.
//!
//! Roles: `ingest` posts events (limited to the sources it lists, if it lists any), `read`
//! reads, `operate` retries and cancels (and reads), `admin` does everything, tokens included.
//! With no tokens at all the API is open: that is the quick start on a loopback address, and
//! `serve` refuses it on any other address unless `allow_unauthenticated` says so. Once a token
//! exists the API stays closed, even if every token is later revoked.

use std::collections::BTreeSet;
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::SharedClock;
use crate::config::Secret;
use crate::store::{Store, StoreError};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Post events (`POST /v1/events`, `/webhooks/canonical`).
    Ingest,
    /// Read events, deliveries, evaluations, rules, metrics.
    Read,
    /// Retry and cancel, and read.
    Operate,
    /// Everything, tokens included.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Ingest, Role::Read, Role::Operate, Role::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Operate => "operate",
            Role::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Whether holding `self` grants `wanted`: admin grants all, operate grants read.
    fn grants(self, wanted: Role) -> bool {
        self == wanted || self == Role::Admin || (self == Role::Operate && wanted == Role::Read)
    }
}

/// A token as the config declares it (`tokens:`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it: recorded with what it does (`ingest-crm`, `grafana`).
    pub name: String,
    /// The token itself, as `${VAR}`.
    pub token: Secret,
    pub roles: Vec<Role>,
    /// For `ingest`: the only sources its events may claim. Absent: any source that is not a
    /// platform's or the engine's own.
    #[serde(default)]
    pub sources: Option<Vec<String>>,
}

/// A known token: its name, roles and the hash of its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    pub name: String,
    pub roles: BTreeSet<Role>,
    pub sources: Option<Vec<String>>,
    #[serde(skip)]
    pub hash: [u8; 32],
    /// `config` or `store`.
    pub origin: &'static str,
}

impl Token {
    pub fn has(&self, role: Role) -> bool {
        self.roles.iter().any(|r| r.grants(role))
    }

    /// Whether events posted with this token may claim `source`. `restricted` are the sources
    /// that need naming (the platforms' and the engine's own).
    pub fn may_claim(&self, source: &str, restricted: &dyn Fn(&str) -> bool) -> bool {
        match &self.sources {
            Some(listed) => listed.iter().any(|s| s == source),
            None => !restricted(source),
        }
    }
}

/// A token stored by `signalbox tokens create`, as the store keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredToken {
    pub name: String,
    pub roles: Vec<Role>,
    pub sources: Option<Vec<String>>,
    #[serde(skip)]
    pub hash: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// SHA-256 of a token's text.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new random token.
pub fn generate() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random source: {e}"))?;
    Ok(format!(
        "sbt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one nobody knows (401).
    Unauthenticated(&'static str),
    /// A known token without the role (403).
    Forbidden(String),
}

/// Who made a request: a token, or nobody while the API is open.
#[derive(Debug, Clone)]
pub enum Caller {
    Open,
    Token(Arc<Token>),
}

impl Caller {
    pub fn name(&self) -> Option<&str> {
        match self {
            Caller::Open => None,
            Caller::Token(t) => Some(&t.name),
        }
    }

    pub fn may_claim(&self, source: &str, restricted: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Caller::Open => true,
            Caller::Token(t) => t.may_claim(source, restricted),
        }
    }

    /// Why this caller's events may not claim `source` (when [`Self::may_claim`] says so).
    pub fn claim_refusal(&self, source: &str) -> String {
        let name = self.name().unwrap_or_default();
        match self {
            Caller::Token(t) if t.sources.is_some() => format!(
                "token '{name}' may not post events from source '{source}': it may post only from {}",
                t.sources.as_deref().unwrap_or_default().join(", ")
            ),
            _ => format!(
                "token '{name}' may not post events from source '{source}': it is a platform's source (or the engine's own), taken only from a token whose `sources` lists it"
            ),
        }
    }
}

/// How often tokens created or revoked by the CLI (or another instance) are read again.
const RELOAD_EVERY: chrono::Duration = chrono::Duration::seconds(5);

/// The tokens an engine knows: the config's, and the store's read again every few seconds.
pub struct Tokens {
    config: Vec<Arc<Token>>,
    stored: ArcSwap<Vec<Arc<Token>>>,
    loaded_at: std::sync::Mutex<Option<DateTime<Utc>>>,
    reloading: tokio::sync::Mutex<()>,
    /// When each stored token's use was last written down.
    touched: std::sync::Mutex<std::collections::HashMap<String, DateTime<Utc>>>,
    /// Whether the API answers without a token: only while no token has existed since start.
    /// Once one does, it stays closed, even if every token is then revoked.
    open: std::sync::atomic::AtomicBool,
    store: Store,
    clock: SharedClock,
}

impl Tokens {
    pub async fn load(
        config: &[TokenConfig],
        store: Store,
        clock: SharedClock,
    ) -> Result<Self, StoreError> {
        let config = config
            .iter()
            .map(|t| {
                Arc::new(Token {
                    name: t.name.clone(),
                    roles: t.roles.iter().copied().collect(),
                    sources: t.sources.clone(),
                    hash: hash(t.token.expose()),
                    origin: "config",
                })
            })
            .collect();
        let tokens = Self {
            config,
            stored: ArcSwap::from_pointee(Vec::new()),
            loaded_at: std::sync::Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
            touched: std::sync::Mutex::default(),
            open: std::sync::atomic::AtomicBool::new(false),
            store,
            clock,
        };
        tokens.reload().await?;
        tokens
            .open
            .store(!tokens.any(), std::sync::atomic::Ordering::SeqCst);
        Ok(tokens)
    }

    /// The names of the config's tokens.
    pub fn config_names(&self) -> Vec<&str> {
        self.config.iter().map(|t| t.name.as_str()).collect()
    }

    /// Whether the API answers without a token (no token has existed since the start).
    pub fn open(&self) -> bool {
        self.open.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether any token exists now.
    pub fn any(&self) -> bool {
        !self.config.is_empty() || !self.stored.load().is_empty()
    }

    /// Reads the store's active tokens again.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let _one = self.reloading.lock().await;
        self.read_stored().await
    }

    async fn read_stored(&self) -> Result<(), StoreError> {
        *self.loaded_at.lock().expect("not poisoned") = Some(self.clock.now());
        let stored = self.store.active_tokens().await?;
        let stored = stored
            .into_iter()
            .filter_map(|t| {
                let hash: [u8; 32] = hex::decode(&t.hash).ok()?.try_into().ok()?;
                Some(Arc::new(Token {
                    name: t.name,
                    roles: t.roles.into_iter().collect(),
                    sources: t.sources,
                    hash,
                    origin: "store",
                }))
            })
            .collect();
        self.stored.store(Arc::new(stored));
        Ok(())
    }

    /// Whether a stored token's use at `now` should be written down: once a minute at most.
    pub fn due_touch(&self, name: &str, now: DateTime<Utc>) -> bool {
        let mut touched = self.touched.lock().expect("not poisoned");
        match touched.get(name) {
            Some(at) if now - *at < chrono::Duration::minutes(1) => false,
            _ => {
                // One entry per known token name (the map is only fed known tokens).
                touched.insert(name.to_owned(), now);
                true
            }
        }
    }

    /// Reads the stored tokens again when the last read is 5 s old: one request does, the
    /// others meanwhile use the tokens last read (and so does everyone while the store is away).
    async fn fresh(&self) {
        let due = self
            .loaded_at
            .lock()
            .expect("not poisoned")
            .is_none_or(|at| self.clock.now() - at >= RELOAD_EVERY);
        if !due {
            return;
        }
        let Ok(_one) = self.reloading.try_lock() else {
            return;
        };
        if let Err(e) = self.read_stored().await {
            tracing::warn!(error = %e, "cannot read API tokens again; those read before stay in force");
        }
    }

    /// Who presents `authorization` (the header's value), and whether they hold `role`.
    pub async fn authorize(
        &self,
        authorization: Option<&[u8]>,
        role: Role,
    ) -> Result<Caller, Denied> {
        let caller = self.identify(authorization).await?;
        match &caller {
            Caller::Token(token) if !token.has(role) => Err(Denied::Forbidden(format!(
                "token '{}' does not have the '{}' role (it has: {})",
                token.name,
                role.name(),
                token
                    .roles
                    .iter()
                    .map(|r| r.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            _ => Ok(caller),
        }
    }

    /// Who presents `authorization`, whatever their roles: a known token, or nobody while the
    /// API is open.
    pub async fn identify(&self, authorization: Option<&[u8]>) -> Result<Caller, Denied> {
        self.fresh().await;
        if self.open() {
            if !self.any() {
                return Ok(Caller::Open);
            }
            // The first token closes the API for good.
            self.open.store(false, std::sync::atomic::Ordering::SeqCst);
            tracing::info!("a token exists: the API answers only tokens from now on");
        }
        let presented = authorization
            .and_then(bearer)
            .ok_or(Denied::Unauthenticated(
                "this endpoint needs a token: send `Authorization: Bearer <token>`",
            ))?;
        let presented: [u8; 32] = Sha256::digest(presented).into();
        // Every known hash is compared, found or not, each in constant time.
        let stored = self.stored.load();
        let mut found = None;
        for token in self.config.iter().chain(stored.iter()) {
            if bool::from(token.hash.ct_eq(&presented)) {
                found = Some(token.clone());
            }
        }
        let token = found.ok_or(Denied::Unauthenticated(if self.any() {
            "the token is not known or was revoked"
        } else {
            "the token is not known: every token was revoked, so nothing is allowed; create one with `signalbox tokens create NAME --role admin`"
        }))?;
        Ok(Caller::Token(token))
    }
}

/// Whether an `Authorization` value presents the token whose hash is `hash` (compared in
/// constant time, as hashes, so neither the token's length nor its first difference shows).
pub fn presents(authorization: &[u8], hash: &[u8; 32]) -> bool {
    bearer(authorization).is_some_and(|presented| {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        bool::from(presented.ct_eq(hash))
    })
}

/// The token of an `Authorization` value: the scheme `Bearer` in any case, then whitespace.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.first()?.is_ascii_whitespace() {
        return None;
    }
    Some(rest.trim_ascii()).filter(|t| !t.is_empty())
}

/// Creates and stores a token; the text returned is shown once and never kept.
/// `config_names` are the config's tokens, whose names a stored token may not take.
pub async fn create(
    store: &Store,
    name: &str,
    roles: Vec<Role>,
    sources: Option<Vec<String>>,
    config_names: &[&str],
    now: DateTime<Utc>,
) -> Result<String, CreateError> {
    if let Some(problem) = name_problem(name) {
        return Err(CreateError::Invalid(problem));
    }
    if config_names.contains(&name) {
        return Err(CreateError::Invalid(format!(
            "'{name}' is the name of a token in the config: choose another, so that what each did stays told apart"
        )));
    }
    if roles.is_empty() {
        return Err(CreateError::Invalid(
            "a token needs at least one role".into(),
        ));
    }
    if let Some(problem) = sources_problem(&roles, sources.as_deref()) {
        return Err(CreateError::Invalid(problem));
    }
    let text = generate().map_err(CreateError::Invalid)?;
    let stored = StoredToken {
        name: name.to_owned(),
        roles,
        sources,
        hash: hex::encode(hash(&text)),
        created_at: now,
        revoked_at: None,
        last_used_at: None,
    };
    if !store.create_token(&stored).await? {
        return Err(CreateError::Invalid(format!(
            "a token named '{name}' exists (revoked names stay taken): choose another name"
        )));
    }
    Ok(text)
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Problems of the config's tokens, as `(key, message)`.
pub fn config_problems(tokens: &[TokenConfig]) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for (i, t) in tokens.iter().enumerate() {
        let key = format!("tokens[{i}]");
        if let Some(problem) = name_problem(&t.name) {
            problems.push((format!("{key}.name"), problem));
        }
        if !names.insert(t.name.as_str()) {
            problems.push((format!("{key}.name"), format!("'{}' is used twice", t.name)));
        }
        if t.token.expose().len() < 24 {
            problems.push((
                format!("{key}.token"),
                "is shorter than 24 characters: use `signalbox tokens generate` for a strong one"
                    .into(),
            ));
        }
        if t.roles.is_empty() {
            problems.push((format!("{key}.roles"), "lists no role".into()));
        }
        if let Some(problem) = sources_problem(&t.roles, t.sources.as_deref()) {
            problems.push((format!("{key}.sources"), problem));
        }
    }
    problems
}

/// Why an ingest token's `sources` cannot work, if they cannot: only with the ingest (or
/// admin) role, each a source name (`a-z 0-9 _ -`, 1 to 64).
fn sources_problem(roles: &[Role], sources: Option<&[String]>) -> Option<String> {
    let sources = sources?;
    if !roles.contains(&Role::Ingest) && !roles.contains(&Role::Admin) {
        return Some("sources only mean something with the ingest role".into());
    }
    if sources.is_empty() {
        return Some(
            "sources is empty: leave it out to allow any source that is not a platform's".into(),
        );
    }
    sources
        .iter()
        .find(|s| {
            s.is_empty()
                || s.len() > 64
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        })
        .map(|s| format!("source '{s}' is not a source name (a-z, 0-9, _ and -)"))
}

/// Why a token name is not usable, if it is not: 1 to 64 of `A-Za-z0-9._-`.
pub fn name_problem(name: &str) -> Option<String> {
    let fine = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    (!fine).then(|| format!("token name '{name}' must be 1 to 64 of A-Z a-z 0-9 . _ -"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(roles: &[Role], sources: Option<&[&str]>) -> Token {
        Token {
            name: "t".into(),
            roles: roles.iter().copied().collect(),
            sources: sources.map(|s| s.iter().map(|s| s.to_string()).collect()),
            hash: [0; 32],
            origin: "config",
        }
    }

    #[test]
    fn admin_grants_all_and_operate_grants_read() {
        let admin = token(&[Role::Admin], None);
        assert!(Role::ALL.iter().all(|r| admin.has(*r)));
        let operate = token(&[Role::Operate], None);
        assert!(operate.has(Role::Read) && operate.has(Role::Operate));
        assert!(!operate.has(Role::Ingest) && !operate.has(Role::Admin));
        let read = token(&[Role::Read], None);
        assert!(!read.has(Role::Operate) && !read.has(Role::Ingest));
        let ingest = token(&[Role::Ingest], None);
        assert!(!ingest.has(Role::Read));
    }

    #[test]
    fn platform_sources_need_naming() {
        let platform = |s: &str| s == "receeve";
        assert!(token(&[Role::Ingest], None).may_claim("crm", &platform));
        assert!(!token(&[Role::Ingest], None).may_claim("receeve", &platform));
        let listed = token(&[Role::Ingest], Some(&["receeve"]));
        assert!(listed.may_claim("receeve", &platform));
        assert!(
            !listed.may_claim("crm", &platform),
            "a list is the only sources allowed"
        );
    }

    #[test]
    fn generated_tokens_are_long_and_distinct() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("sbt_") && a.len() == 4 + 43, "{a}");
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"BEARER\tabc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Bearerabc"), None);
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bear"), None);
    }

    #[test]
    fn a_presented_token_must_be_the_same_token() {
        let expected = hash("metrics-token-of-24-chars");
        assert!(presents(b"Bearer metrics-token-of-24-chars", &expected));
        assert!(!presents(b"Bearer metrics-token-of-24-chars-", &expected));
        assert!(!presents(b"Bearer metrics", &expected));
        assert!(!presents(b"metrics-token-of-24-chars", &expected));
    }

    #[test]
    fn token_names_are_plain() {
        assert!(name_problem("ingest-crm.1_a").is_none());
        assert!(name_problem("").is_some());
        assert!(name_problem("a b").is_some());
        assert!(name_problem(&"x".repeat(65)).is_some());
    }
}
