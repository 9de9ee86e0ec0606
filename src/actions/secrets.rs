//! Secrets in rules: a webhook header may say `${secret:NAME}`, and the reference is what the
//! rule, the stored evaluation, the outbox row, the API and the logs hold. The value is read
//! only by the webhook executor, right before sending: from the environment variable
//! `SIGNALBOX_SECRET_NAME`, else from the file `NAME` in `actions.secrets_dir` (one trailing
//! newline trimmed, at most 64 KiB).
//!
//! Names are `[A-Za-z_][A-Za-z0-9_]*`: a valid environment variable name, and a file name that
//! cannot leave the secrets folder.

use std::path::Path;

/// What starts a reference.
pub const PREFIX: &str = "${secret:";

/// The references in `text`, in order, or the first malformed one (`${secret:` not followed by
/// a name and `}`), quoted in the error.
pub fn references(text: &str) -> Result<Vec<&str>, String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        let after = &rest[at + PREFIX.len()..];
        let end = after.find('}');
        let name = end.map(|end| &after[..end]);
        match name {
            Some(name) if valid_name(name) => found.push(name),
            _ => {
                let shown: String = rest[at..]
                    .chars()
                    .take(PREFIX.len() + end.map_or(20, |e| e + 1).min(40))
                    .collect();
                return Err(format!(
                    "secret reference '{shown}' is not valid: write ${{secret:NAME}} with NAME of letters, digits and _ (not starting with a digit)"
                ));
            }
        }
        rest = &after[name.map_or(0, str::len) + 1..];
    }
    Ok(found)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

/// Where secrets come from: the process environment, then files in a folder.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// Environment variables that hold secrets for rules: `SIGNALBOX_SECRET_<NAME>`. Only those:
/// a rule must not read the process's other variables (the database password, the platforms'
/// signing secrets, API tokens given as `${VAR}`).
pub const ENV_PREFIX: &str = "SIGNALBOX_SECRET_";

/// Most bytes a secret file may hold.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The environment (`SIGNALBOX_SECRET_<NAME>`), then `dir/NAME` if a folder is configured.
pub struct EnvAndDir<'a> {
    pub dir: Option<&'a Path>,
}

impl Source for EnvAndDir<'_> {
    fn get(&self, name: &str) -> Option<String> {
        if let Ok(value) = std::env::var(format!("{ENV_PREFIX}{name}")) {
            return Some(value);
        }
        // A secret is a token or a password: a larger file is a mistake, not read whole.
        let path = self.dir?.join(name);
        if std::fs::metadata(&path).ok()?.len() > MAX_FILE_BYTES {
            return None;
        }
        let text = std::fs::read_to_string(path).ok()?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        Some(text.to_owned())
    }
}

/// `text` with every reference replaced by its secret, and the values used (to keep them out
/// of what is recorded). The error names the first secret that is not set.
pub fn resolve(text: &str, source: &dyn Source) -> Result<(String, Vec<String>), String> {
    let names = references(text)?;
    if names.is_empty() {
        return Ok((text.to_owned(), Vec::new()));
    }
    // One pass over the text as written: a secret's value is never read as a reference.
    let mut out = String::with_capacity(text.len());
    let mut read: Vec<(&str, String)> = Vec::new();
    let mut values = Vec::new();
    let mut rest = text;
    for name in names {
        let reference = format!("{PREFIX}{name}}}");
        // Found in this order by `references`.
        let Some(at) = rest.find(&reference) else {
            break;
        };
        out.push_str(&rest[..at]);
        let value = match read.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => value.clone(),
            None => {
                let value = source.get(name).ok_or_else(|| {
                    format!(
                        "secret '{name}' is not set (environment variable {ENV_PREFIX}{name} or file {name} in actions.secrets_dir)"
                    )
                })?;
                read.push((name, value.clone()));
                value
            }
        };
        out.push_str(&value);
        values.push(value);
        rest = &rest[at + reference.len()..];
    }
    out.push_str(rest);
    Ok((out, values))
}

/// `text` with each of `values` replaced by `[redacted]` (a target echoing a header back).
pub fn redact(text: &str, values: &[String]) -> String {
    let mut out = text.to_owned();
    for value in values.iter().filter(|v| v.len() >= 4) {
        out = out.replace(value.as_str(), "[redacted]");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Map(HashMap<&'static str, &'static str>);

    impl Source for Map {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| (*v).to_owned())
        }
    }

    #[test]
    fn references_are_found_and_malformed_ones_named() {
        assert_eq!(
            references("Bearer ${secret:CRM_TOKEN} and ${secret:_b2}").unwrap(),
            ["CRM_TOKEN", "_b2"]
        );
        assert_eq!(
            references("no secrets, ${VAR}, $secret").unwrap(),
            Vec::<&str>::new()
        );
        for bad in [
            "${secret:}",
            "${secret:crm-token}",
            "${secret:1X}",
            "${secret:A/../B}",
            "${secret:OPEN",
            "${secret:{{ event.x }}}",
        ] {
            let error = references(bad).unwrap_err();
            assert!(
                error.starts_with("secret reference '${secret:"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn references_resolve_or_name_the_missing_secret() {
        let source = Map(HashMap::from([("A", "one"), ("B", "two")]));
        let (text, values) = resolve("x ${secret:A} y ${secret:B} ${secret:A}", &source).unwrap();
        assert_eq!(text, "x one y two one");
        assert_eq!(values, ["one", "two", "one"]);
        // A value that looks like a reference is a value: not read as one.
        let tricky = Map(HashMap::from([("A", "${secret:B}"), ("B", "two")]));
        let (text, _) = resolve("${secret:A} ${secret:B}", &tricky).unwrap();
        assert_eq!(text, "${secret:B} two");
        assert_eq!(
            resolve("${secret:C}", &source).unwrap_err(),
            "secret 'C' is not set (environment variable SIGNALBOX_SECRET_C or file C in actions.secrets_dir)"
        );
        assert_eq!(redact("echo: one two", &values), "echo: one two");
        assert_eq!(
            redact("echo: Bearer sekrit", &["sekrit".into()]),
            "echo: Bearer [redacted]"
        );
    }

    #[test]
    fn files_in_the_secrets_dir_are_read_with_one_newline_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("SIGNALBOX_TEST_FILE_SECRET"), "s3cret\n\n").unwrap();
        let source = EnvAndDir {
            dir: Some(dir.path()),
        };
        assert_eq!(
            source.get("SIGNALBOX_TEST_FILE_SECRET").as_deref(),
            Some("s3cret\n")
        );
        assert_eq!(source.get("SIGNALBOX_TEST_NO_SUCH_SECRET"), None);
        assert_eq!(
            EnvAndDir { dir: None }.get("SIGNALBOX_TEST_FILE_SECRET"),
            None
        );
    }
}
