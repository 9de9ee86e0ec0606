//! Signature schemes, checked on the raw bytes before anything parses them. Every comparison is
//! constant-time (`Mac::verify_slice`), and every scheme takes several secrets so a key can be
//! rotated without dropping deliveries.

use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Inbound, ProviderError, SignatureEncoding, SourceConfig, Verification};
use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

fn reject(reason: impl Into<String>) -> ProviderError {
    ProviderError::Signature {
        reason: reason.into(),
    }
}

/// How a platform signs its deliveries (declared in its `Platform`); the source's settings fill
/// in the secrets and may override the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// HMAC-SHA256 of the body's `payload` member, in its `signature` member (Receeve).
    PayloadHmac,
    /// HMAC-SHA256 of the raw body, in `default_header` unless `sources.<name>.header` names
    /// another (Amili, Hubpay, B54).
    BodyHmac { default_header: &'static str },
    /// Svix, with timestamps at most `default_tolerance_seconds` from now unless
    /// `sources.<name>.tolerance` says otherwise (Bemmbo).
    Svix { default_tolerance: Duration },
}

/// The headers of a Svix delivery (and their Standard Webhooks names).
pub const SVIX_HEADERS: &[&str] = &[
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

impl Scheme {
    /// The headers the scheme reads by default (a source may name another signature header).
    pub fn headers(self) -> Vec<&'static str> {
        match self {
            Self::PayloadHmac => Vec::new(),
            Self::BodyHmac { default_header } => vec![default_header],
            Self::Svix { .. } => SVIX_HEADERS.to_vec(),
        }
    }

    /// The verifier checking deliveries with `secrets` as `config` asks. Fails, naming the key
    /// under `sources.<name>.`, when a setting cannot work.
    pub fn verifier(self, config: &SourceConfig, secrets: &[Secret]) -> Result<Verifier, String> {
        let encoding = config.encoding.unwrap_or(SignatureEncoding::Hex);
        Ok(match self {
            Self::PayloadHmac => Verifier::PayloadHmac(PayloadHmac::new(encoding, secrets)),
            Self::BodyHmac { default_header } => {
                let header = config
                    .header
                    .as_deref()
                    .unwrap_or(default_header)
                    .to_ascii_lowercase();
                axum::http::HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| format!("header: '{header}' is not a header name"))?;
                Verifier::BodyHmac(BodyHmac::new(header, encoding, secrets))
            }
            Self::Svix { default_tolerance } => Verifier::Svix(Svix::new(
                secrets,
                config.tolerance()?.unwrap_or(default_tolerance),
            )?),
        })
    }
}

/// Signing keys: used to check signatures, never printed (`Debug` shows `[redacted]`).
pub struct SigningKeys(Vec<Vec<u8>>);

impl SigningKeys {
    /// The secrets' text as keys.
    fn from_secrets(secrets: &[Secret]) -> Self {
        Self(
            secrets
                .iter()
                .map(|s| s.expose().as_bytes().to_vec())
                .collect(),
        )
    }
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// True when `signature` is the HMAC-SHA256 of `parts` (concatenated) under one of `keys`.
fn matches_any(keys: &SigningKeys, parts: &[&[u8]], signature: &[u8]) -> bool {
    keys.0.iter().any(|key| {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        for part in parts {
            mac.update(part);
        }
        mac.verify_slice(signature).is_ok()
    })
}

/// Computes a signature (for tests, and for documentation examples).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn decode(encoding: SignatureEncoding, text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    // Tolerate the common "sha256=" prefix (GitHub style).
    let text = text.strip_prefix("sha256=").unwrap_or(text);
    match encoding {
        SignatureEncoding::Hex => hex::decode(text).ok(),
        SignatureEncoding::Base64 => BASE64.decode(text).ok(),
    }
}

/// HMAC-SHA256 of the raw body, in a header (Amili, Hubpay, B54).
#[derive(Debug)]
pub struct BodyHmac {
    pub header: String,
    pub encoding: SignatureEncoding,
    pub keys: SigningKeys,
}

impl BodyHmac {
    pub fn new(header: String, encoding: SignatureEncoding, secrets: &[Secret]) -> Self {
        Self {
            header,
            encoding,
            keys: SigningKeys::from_secrets(secrets),
        }
    }

    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), ProviderError> {
        let value = headers
            .get(&self.header)
            .ok_or_else(|| reject(format!("missing {} header", self.header)))?;
        let text = value
            .to_str()
            .map_err(|_| reject(format!("{} header is not text", self.header)))?;
        let signature = decode(self.encoding, text).ok_or_else(|| {
            reject(format!(
                "{} header is not {}",
                self.header,
                self.encoding.as_str()
            ))
        })?;
        if matches_any(&self.keys, &[body], &signature) {
            Ok(())
        } else {
            Err(reject("signature does not match the body"))
        }
    }
}

/// Receeve: HMAC-SHA256 of the exact raw bytes of the body's `payload` member, compared with its
/// `signature` member.
#[derive(Debug)]
pub struct PayloadHmac {
    pub encoding: SignatureEncoding,
    pub keys: SigningKeys,
}

impl PayloadHmac {
    pub fn new(encoding: SignatureEncoding, secrets: &[Secret]) -> Self {
        Self {
            encoding,
            keys: SigningKeys::from_secrets(secrets),
        }
    }

    pub fn verify(&self, body: &[u8]) -> Result<(), ProviderError> {
        #[derive(serde::Deserialize)]
        struct Signed<'a> {
            #[serde(borrow)]
            payload: Option<&'a serde_json::value::RawValue>,
            signature: Option<String>,
        }
        let signed: Signed = serde_json::from_slice(body)
            .map_err(|e| reject(format!("body is not a JSON object: {e}")))?;
        let payload = signed
            .payload
            .ok_or_else(|| reject("body has no payload member"))?;
        let text = signed
            .signature
            .ok_or_else(|| reject("body has no signature member"))?;
        let signature = decode(self.encoding, &text)
            .ok_or_else(|| reject(format!("signature is not {}", self.encoding.as_str())))?;
        if matches_any(&self.keys, &[payload.get().as_bytes()], &signature) {
            Ok(())
        } else {
            Err(reject("signature does not match the payload"))
        }
    }
}

/// Svix (Bemmbo): `v1,<base64>` signatures of `{id}.{timestamp}.{body}` in `svix-signature`
/// (several, space separated), with `whsec_<base64>` secrets and a timestamp tolerance. The
/// Standard Webhooks `webhook-*` header names are accepted too.
#[derive(Debug)]
pub struct Svix {
    pub keys: SigningKeys,
    pub tolerance: chrono::Duration,
}

impl Svix {
    /// Fails when a secret is not `whsec_` followed by base64.
    pub fn new(secrets: &[Secret], tolerance: Duration) -> Result<Self, String> {
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(i, secret)| {
                let text = secret.expose();
                let encoded = text.strip_prefix("whsec_").unwrap_or(text);
                BASE64.decode(encoded).map_err(|_| {
                    format!("secrets.{i}: a Svix secret is 'whsec_' followed by base64")
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            keys: SigningKeys(keys),
            tolerance: chrono::Duration::from_std(tolerance)
                .map_err(|_| "tolerance is too long")?,
        })
    }

    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), ProviderError> {
        let header = |name: &str| -> Result<&str, ProviderError> {
            let value = headers
                .get(format!("svix-{name}"))
                .or_else(|| headers.get(format!("webhook-{name}")))
                .ok_or_else(|| reject(format!("missing svix-{name} header")))?;
            value
                .to_str()
                .map_err(|_| reject(format!("svix-{name} header is not text")))
        };
        let id = header("id")?;
        let timestamp = header("timestamp")?;
        let signatures = header("signature")?;
        let seconds: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| reject("svix-timestamp is not a number of seconds"))?;
        let sent = DateTime::from_timestamp(seconds, 0)
            .ok_or_else(|| reject("svix-timestamp is out of range"))?;
        if (now - sent).abs() > self.tolerance {
            return Err(reject(format!(
                "svix-timestamp {sent} is more than {} s from now",
                self.tolerance.num_seconds()
            )));
        }
        let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
        let any = signatures
            .split_whitespace()
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|s| BASE64.decode(s).ok())
            .any(|sig| matches_any(&self.keys, &signed, &sig));
        if any {
            Ok(())
        } else {
            Err(reject("no svix signature matches"))
        }
    }
}

/// How one source's deliveries are checked, as configured.
#[derive(Debug)]
pub enum Verifier {
    /// `unsigned: true`: accepted without a check.
    Unsigned,
    /// No secret configured: every delivery is refused, saying how to configure one.
    Unconfigured {
        source: String,
    },
    BodyHmac(BodyHmac),
    PayloadHmac(PayloadHmac),
    Svix(Svix),
}

impl Verifier {
    /// The signature header it reads, if the source configures one of its own.
    pub fn header(&self) -> Option<&str> {
        match self {
            Self::BodyHmac(scheme) => Some(&scheme.header),
            _ => None,
        }
    }

    pub fn verify(&self, req: &Inbound<'_>) -> Result<Verification, ProviderError> {
        match self {
            Self::Unsigned => return Ok(Verification::Unsigned),
            Self::Unconfigured { source } => {
                return Err(reject(format!(
                    "no signing secret configured for source '{source}': set sources.{source}.secrets (or sources.{source}.unsigned: true)"
                )));
            }
            Self::BodyHmac(scheme) => scheme.verify(req.headers, req.body)?,
            Self::PayloadHmac(scheme) => scheme.verify(req.body)?,
            Self::Svix(scheme) => scheme.verify(req.headers, req.body, req.received_at)?,
        }
        Ok(Verification::Verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(values: &[&str]) -> Vec<Secret> {
        values.iter().map(|v| Secret::new(v.to_string())).collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    // The example of Svix's own documentation and libraries.
    const SVIX_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SVIX_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SVIX_TS: &str = "1614265330";
    const SVIX_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    const SVIX_BODY: &[u8] = br#"{"test": 2432232314}"#;

    fn svix_now() -> DateTime<Utc> {
        DateTime::from_timestamp(1614265330 + 60, 0).unwrap()
    }

    #[test]
    fn svix_accepts_the_reference_example() {
        let svix = Svix::new(&secrets(&[SVIX_SECRET]), Duration::from_secs(300)).unwrap();
        let h = headers(&[
            ("svix-id", SVIX_ID),
            ("svix-timestamp", SVIX_TS),
            ("svix-signature", SVIX_SIG),
        ]);
        svix.verify(&h, SVIX_BODY, svix_now()).unwrap();
        // Several signatures in one header: one match is enough.
        let h = headers(&[
            ("svix-id", SVIX_ID),
            ("svix-timestamp", SVIX_TS),
            ("svix-signature", &format!("v1,AAAA {SVIX_SIG} v2,zzz")),
        ]);
        svix.verify(&h, SVIX_BODY, svix_now()).unwrap();
        // Standard Webhooks header names.
        let h = headers(&[
            ("webhook-id", SVIX_ID),
            ("webhook-timestamp", SVIX_TS),
            ("webhook-signature", SVIX_SIG),
        ]);
        svix.verify(&h, SVIX_BODY, svix_now()).unwrap();
    }

    #[test]
    fn svix_rejects_tampering_wrong_secret_staleness_and_missing_headers() {
        let svix = Svix::new(&secrets(&[SVIX_SECRET]), Duration::from_secs(300)).unwrap();
        let good = headers(&[
            ("svix-id", SVIX_ID),
            ("svix-timestamp", SVIX_TS),
            ("svix-signature", SVIX_SIG),
        ]);
        let err = |r: Result<(), ProviderError>| r.unwrap_err().to_string();
        assert!(
            err(svix.verify(&good, br#"{"test": 2432232315}"#, svix_now()))
                .contains("no svix signature matches")
        );
        let other = Svix::new(
            &secrets(&["whsec_c2VjcmV0LW90aGVy"]),
            Duration::from_secs(300),
        )
        .unwrap();
        assert!(
            err(other.verify(&good, SVIX_BODY, svix_now())).contains("no svix signature matches")
        );
        let late = svix_now() + chrono::Duration::minutes(10);
        assert!(err(svix.verify(&good, SVIX_BODY, late)).contains("more than 300 s from now"));
        let missing = headers(&[("svix-id", SVIX_ID), ("svix-timestamp", SVIX_TS)]);
        assert!(
            err(svix.verify(&missing, SVIX_BODY, svix_now()))
                .contains("missing svix-signature header")
        );
        // The id is signed: replaying the body under another id fails.
        let replay = headers(&[
            ("svix-id", "msg_other"),
            ("svix-timestamp", SVIX_TS),
            ("svix-signature", SVIX_SIG),
        ]);
        assert!(svix.verify(&replay, SVIX_BODY, svix_now()).is_err());
    }

    #[test]
    fn svix_rotation_accepts_old_and_new_secret() {
        let svix = Svix::new(
            &secrets(&["whsec_bmV3LXNlY3JldA==", SVIX_SECRET]),
            Duration::from_secs(300),
        )
        .unwrap();
        let h = headers(&[
            ("svix-id", SVIX_ID),
            ("svix-timestamp", SVIX_TS),
            ("svix-signature", SVIX_SIG),
        ]);
        svix.verify(&h, SVIX_BODY, svix_now()).unwrap();
        assert!(
            Svix::new(&secrets(&["whsec_not base64!"]), Duration::from_secs(300))
                .unwrap_err()
                .contains("secrets.0")
        );
    }

    #[test]
    fn body_hmac_checks_hex_and_base64_with_rotation() {
        let body = br#"{"event":"invoice.paid"}"#;
        let sig = hmac_sha256(b"old-secret", &[body]);
        let hex_scheme = BodyHmac::new(
            "x-signature".into(),
            SignatureEncoding::Hex,
            &secrets(&["new-secret", "old-secret"]),
        );
        hex_scheme
            .verify(&headers(&[("x-signature", &hex::encode(&sig))]), body)
            .unwrap();
        hex_scheme
            .verify(
                &headers(&[("x-signature", &format!("sha256={}", hex::encode(&sig)))]),
                body,
            )
            .unwrap();
        let b64_scheme = BodyHmac::new(
            "x-signature".into(),
            SignatureEncoding::Base64,
            &secrets(&["old-secret"]),
        );
        b64_scheme
            .verify(&headers(&[("x-signature", &BASE64.encode(&sig))]), body)
            .unwrap();

        let err = |r: Result<(), ProviderError>| r.unwrap_err().to_string();
        assert!(
            err(hex_scheme.verify(&headers(&[("x-signature", &hex::encode(&sig))]), b"{}"))
                .contains("does not match")
        );
        assert!(err(hex_scheme.verify(&headers(&[]), body)).contains("missing x-signature header"));
        assert!(
            err(hex_scheme.verify(&headers(&[("x-signature", "zz")]), body)).contains("is not hex")
        );
        let wrong = BodyHmac::new(
            "x-signature".into(),
            SignatureEncoding::Hex,
            &secrets(&["wrong"]),
        );
        assert!(
            wrong
                .verify(&headers(&[("x-signature", &hex::encode(&sig))]), body)
                .is_err()
        );
    }

    #[test]
    fn schemes_take_their_defaults_unless_the_source_overrides_them() {
        let hmac = Scheme::BodyHmac {
            default_header: "X-Test-Signature",
        };
        let defaults = SourceConfig::default();
        let Verifier::BodyHmac(body) = hmac.verifier(&defaults, &secrets(&["s"])).unwrap() else {
            panic!("a body HMAC")
        };
        assert_eq!(
            (body.header.as_str(), body.encoding),
            ("x-test-signature", SignatureEncoding::Hex)
        );
        let custom = SourceConfig {
            header: Some("X-Other".into()),
            encoding: Some(SignatureEncoding::Base64),
            tolerance: Some(Duration::from_secs(60)),
            ..SourceConfig::default()
        };
        let Verifier::BodyHmac(body) = hmac.verifier(&custom, &secrets(&["s"])).unwrap() else {
            panic!("a body HMAC")
        };
        assert_eq!(
            (body.header.as_str(), body.encoding),
            ("x-other", SignatureEncoding::Base64)
        );
        let bad = SourceConfig {
            header: Some("bad header".into()),
            ..SourceConfig::default()
        };
        assert_eq!(
            hmac.verifier(&bad, &secrets(&["s"])).unwrap_err(),
            "header: 'bad header' is not a header name"
        );

        let svix = Scheme::Svix {
            default_tolerance: Duration::from_secs(300),
        };
        let tolerance =
            |config: &SourceConfig| match svix.verifier(config, &secrets(&[SVIX_SECRET])) {
                Ok(Verifier::Svix(svix)) => svix.tolerance.num_seconds(),
                other => panic!("{other:?}"),
            };
        let old_spelling = SourceConfig {
            tolerance_seconds: Some(90),
            ..SourceConfig::default()
        };
        assert_eq!(
            (
                tolerance(&defaults),
                tolerance(&custom),
                tolerance(&old_spelling)
            ),
            (300, 60, 90)
        );

        let Verifier::PayloadHmac(payload) = Scheme::PayloadHmac
            .verifier(&custom, &secrets(&["s"]))
            .unwrap()
        else {
            panic!("a payload HMAC")
        };
        assert_eq!(payload.encoding, SignatureEncoding::Base64);
    }

    #[test]
    fn verifiers_print_their_keys_redacted() {
        let hmac_secret = "hmac-secret-text";
        let svix_key = b"svix-key-bytes";
        let svix_secret = format!("whsec_{}", BASE64.encode(svix_key));
        let body = BodyHmac::new(
            "x-signature".into(),
            SignatureEncoding::Hex,
            &secrets(&[hmac_secret]),
        );
        let payload = PayloadHmac::new(SignatureEncoding::Hex, &secrets(&[hmac_secret]));
        let svix = Svix::new(&secrets(&[&svix_secret]), Duration::from_secs(300)).unwrap();
        let printed = [
            format!("{body:?}"),
            format!("{payload:?}"),
            format!("{svix:?}"),
            format!("{:?}", Verifier::BodyHmac(body)),
            format!("{:?}", Verifier::PayloadHmac(payload)),
            format!("{:?}", Verifier::Svix(svix)),
        ];
        // The secrets as text, and the keys as a derived Debug would print their bytes.
        let hidden = [
            hmac_secret.to_owned(),
            svix_secret,
            format!("{:?}", hmac_secret.as_bytes()),
            format!("{:?}", svix_key),
        ];
        for text in &printed {
            assert!(text.contains("[redacted]"), "{text}");
            for secret in &hidden {
                assert!(!text.contains(secret.as_str()), "{text} shows {secret}");
            }
        }
        assert!(printed[0].contains("x-signature"), "the rest still prints");
    }

    #[test]
    fn payload_hmac_signs_the_exact_payload_bytes() {
        let payload = "{\n  \"details\": {\"messageType\": \"event.claim.created.v1\"},\n  \"messageId\": \"m1\"\n}";
        let sig = hex::encode(hmac_sha256(b"receeve-secret", &[payload.as_bytes()]));
        let body = format!("{{\"payload\": {payload}, \"signature\": \"{sig}\"}}");
        let scheme = PayloadHmac::new(SignatureEncoding::Hex, &secrets(&["receeve-secret"]));
        scheme.verify(body.as_bytes()).unwrap();
        // Same JSON, different bytes (whitespace): the signature no longer holds.
        let compact = format!(
            "{{\"payload\": {}, \"signature\": \"{sig}\"}}",
            payload.replace('\n', "")
        );
        assert!(scheme.verify(compact.as_bytes()).is_err());
        assert!(
            scheme
                .verify(br#"{"payload": {}}"#)
                .unwrap_err()
                .to_string()
                .contains("no signature member")
        );
        assert!(scheme.verify(b"[1]").is_err());
    }
}
