//! `email`: SMTP with lettre. Addresses are parsed as mailboxes and headers are encoded by
//! lettre, so a template value can never add a header.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

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

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Option<Mailbox>,
}

impl Mailer {
    /// The mailer for the configured SMTP server, or `None` when none is configured.
    pub fn new(settings: &EmailSettings) -> Result<Option<Self>, String> {
        let Some(host) = &settings.host else {
            return Ok(None);
        };
        let builder = match settings.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| format!("actions.email.host: {e}"))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| format!("actions.email.host: {e}"))?,
        };
        let port = settings.port.unwrap_or(match settings.tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        });
        let mut builder = builder.port(port).timeout(Some(Duration::from_secs(30)));
        if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        let from = settings
            .from
            .as_deref()
            .map(Mailbox::from_str)
            .transpose()
            .map_err(|e| format!("actions.email.from: {e}"))?;
        Ok(Some(Self {
            transport: builder.build(),
            from,
        }))
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
        match self.transport.send(message).await {
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
