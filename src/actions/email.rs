//! `email`: SMTP with lettre. Addresses are parsed as mailboxes and headers are encoded by
//! lettre, so a template value can never add a header.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::guard::{self, AllowList};
use super::retry::RetryConfig;
use super::{ActionsConfig, Deliver, Delivery, Executors, Outcome, Params, one_line, one_or_many};
use crate::config::Secret;

/// An email action as the rule file writes it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    #[serde(deserialize_with = "one_or_many")]
    pub to: Vec<String>,
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cc: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Defaults to the configured sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub subject: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

/// A planned email as the outbox keeps it (payload version 1).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct EmailV1 {
    pub to: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub subject: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

/// The SMTP server email actions go through (`actions.email`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailSettings {
    /// SMTP server; no email action can be delivered without it.
    pub host: Option<String>,
    /// Default 587 (STARTTLS), 465 (TLS) or 25 (none).
    pub port: Option<u16>,
    /// `starttls` (default), `tls` or `none`.
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Sender of emails whose action names none.
    pub from: Option<String>,
    /// Default 6 attempts, 30s to 1h.
    pub retry: RetryConfig,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            host: None,
            port: None,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            from: None,
            retry: RetryConfig {
                max_attempts: 6,
                initial_delay: Duration::from_secs(30),
                ..RetryConfig::default()
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

impl Params for EmailConfig {
    type Stored = EmailV1;

    fn check(&self, skip: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut problems = Vec::new();
        if self.to.is_empty() {
            problems.push("to: at least one recipient".into());
        }
        let addresses = self
            .to
            .iter()
            .chain(&self.cc)
            .chain(&self.reply_to)
            .chain(&self.from);
        for address in addresses.filter(|a| !skip(a)) {
            if Mailbox::from_str(address).is_err() {
                problems.push(format!("'{address}' is not an email address"));
            }
        }
        one_line("subject", &self.subject, &mut problems);
        problems
    }

    /// Every email goes through the one SMTP server.
    fn target(&self) -> String {
        "smtp".into()
    }

    fn stored(&self) -> EmailV1 {
        EmailV1 {
            to: self.to.clone(),
            cc: self.cc.clone(),
            reply_to: self.reply_to.clone(),
            from: self.from.clone(),
            subject: self.subject.clone(),
            text: self.text.clone(),
            html: self.html.clone(),
        }
    }
}

impl Deliver for EmailV1 {
    fn retry_policy<'a>(&self, config: &'a ActionsConfig) -> &'a RetryConfig {
        &config.email.retry
    }

    async fn deliver(&self, executors: &Executors, action: &Delivery) -> Outcome {
        match &executors.mailer {
            Some(mailer) => mailer.send(action, self).await,
            // Never a silent wait: without a server the email is dead, with the reason, and
            // `signalbox actions retry` sends it once one is configured.
            None => Outcome::Failed {
                reason: "no SMTP server is configured (actions.email.host): configure one, then `signalbox actions retry`".into(),
                status: None,
            },
        }
    }
}

/// The SMTP server's connection. The host is resolved at each send and every address it
/// resolves to is checked (see [`super::guard`]); the transport connects to the checked IP
/// address (TLS still verifies the host's name), so a DNS answer cannot change between the
/// check and the connection. A transport, with its pool, is kept while the address stays.
pub struct Mailer {
    host: String,
    port: u16,
    /// `None`, or TLS parameters for the host's name.
    tls: Tls,
    credentials: Option<Credentials>,
    allowed: AllowList,
    transport: Mutex<Option<(IpAddr, AsyncSmtpTransport<Tokio1Executor>)>>,
    from: Option<Mailbox>,
}

impl Mailer {
    /// The mailer for the configured SMTP server, or `None` when none is configured. `allowed`:
    /// hosts the server may be although local (`actions.allowed_hosts`).
    pub fn new(settings: &EmailSettings, allowed: AllowList) -> Result<Option<Self>, String> {
        let Some(host) = &settings.host else {
            return Ok(None);
        };
        let parameters = || {
            let name = host.trim_start_matches('[').trim_end_matches(']');
            TlsParameters::new(name.to_owned()).map_err(|e| format!("actions.email.host: {e}"))
        };
        let tls = match settings.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(parameters()?),
            SmtpTls::Tls => Tls::Wrapper(parameters()?),
        };
        let port = settings.port.unwrap_or(match settings.tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        });
        let credentials = match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => {
                if settings.tls == SmtpTls::None {
                    tracing::warn!(
                        host = %host,
                        "actions.email: tls is none and a password is set: the SMTP password is sent in clear"
                    );
                }
                Some(Credentials::new(user.clone(), password.expose().to_owned()))
            }
            _ => None,
        };
        let from = settings
            .from
            .as_deref()
            .map(Mailbox::from_str)
            .transpose()
            .map_err(|e| format!("actions.email.from: {e}"))?;
        Ok(Some(Self {
            host: host.clone(),
            port,
            tls,
            credentials,
            allowed,
            transport: Mutex::new(None),
            from,
        }))
    }

    /// The address to connect to: the kept transport's if the host still resolves to it (a
    /// host answering its addresses in turn keeps its pool), else the first.
    fn pick(&self, addresses: &[std::net::SocketAddr]) -> IpAddr {
        let kept = self.transport.lock().expect("no panics while held");
        let kept = kept.as_ref().map(|(ip, _)| *ip);
        addresses
            .iter()
            .map(std::net::SocketAddr::ip)
            .find(|ip| Some(*ip) == kept)
            .unwrap_or_else(|| addresses[0].ip())
    }

    /// The transport to `ip`: the one kept if it goes there, else a new one.
    fn transport(&self, ip: IpAddr) -> AsyncSmtpTransport<Tokio1Executor> {
        let mut kept = self.transport.lock().expect("no panics while held");
        if let Some((at, transport)) = kept.as_ref()
            && *at == ip
        {
            return transport.clone();
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(ip.to_string())
            .port(self.port)
            .tls(self.tls.clone())
            .timeout(Some(Duration::from_secs(30)));
        if let Some(credentials) = &self.credentials {
            builder = builder.credentials(credentials.clone());
        }
        let transport = builder.build();
        *kept = Some((ip, transport.clone()));
        transport
    }

    async fn send(&self, action: &Delivery, email: &EmailV1) -> Outcome {
        let message = match self.message(action, email) {
            Ok(m) => m,
            Err(reason) => {
                return Outcome::Failed {
                    reason,
                    status: None,
                };
            }
        };
        let address = match guard::resolve(&self.host, self.port, &self.allowed).await {
            Ok(addresses) => self.pick(&addresses),
            Err(e) if e.is_permanent() => {
                return Outcome::Failed {
                    reason: format!("SMTP server: {e}"),
                    status: None,
                };
            }
            Err(e) => {
                return Outcome::Retry {
                    reason: format!("SMTP server: {e}"),
                    status: None,
                    not_before: None,
                };
            }
        };
        match self.transport(address).send(message).await {
            Ok(response) => Outcome::Delivered {
                status: response.code().to_string().parse().ok(),
                reply: Some(response.message().collect::<Vec<_>>().join(" ")),
            },
            Err(e) if e.is_permanent() => Outcome::Failed {
                reason: format!("SMTP server refused: {e}"),
                status: e.status().and_then(|c| c.to_string().parse().ok()),
            },
            Err(e) => Outcome::Retry {
                reason: format!("SMTP: {e}"),
                status: e.status().and_then(|c| c.to_string().parse().ok()),
                not_before: None,
            },
        }
    }

    fn message(&self, action: &Delivery, email: &EmailV1) -> Result<Message, String> {
        let mailbox = |a: &str| {
            Mailbox::from_str(a).map_err(|e| format!("'{a}' is not an email address: {e}"))
        };
        let from = match &email.from {
            Some(from) => mailbox(from)?,
            None => self
                .from
                .clone()
                .ok_or("no sender: set `from` on the action or actions.email.from")?,
        };
        let mut builder = Message::builder().from(from).subject(&email.subject);
        for to in &email.to {
            builder = builder.to(mailbox(to)?);
        }
        for cc in &email.cc {
            builder = builder.cc(mailbox(cc)?);
        }
        if let Some(reply_to) = &email.reply_to {
            builder = builder.reply_to(mailbox(reply_to)?);
        }
        builder = builder.raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Signalbox-Action"),
            action.id.clone(),
        ));
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(email.text.clone());
        let message = match &email.html {
            Some(html) => builder.multipart(
                MultiPart::alternative().singlepart(text).singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html.clone()),
                ),
            ),
            None => builder.singlepart(text),
        };
        message.map_err(|e| format!("cannot build the message: {e}"))
    }
}
