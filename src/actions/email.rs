//! `email`: SMTP with lettre. Addresses are parsed as mailboxes and headers are encoded by
//! lettre, so a template value can never add a header.

use std::str::FromStr;
use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{EmailSettings, SmtpTls};
use crate::outbox::{OutboxAction, Outcome};
use crate::rules::config::EmailConfig;

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

    pub async fn send(&self, action: &OutboxAction, email: &EmailConfig) -> Outcome {
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

    fn message(&self, action: &OutboxAction, email: &EmailConfig) -> Result<Message, String> {
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
