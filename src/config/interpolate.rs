//! `${VAR}` and `${VAR:-default}` in the config file, filled from the environment before the
//! YAML is read into settings.

use std::collections::HashMap;

/// Replaces `${VAR}` and `${VAR:-default}` in every string of a YAML tree.
pub(super) fn interpolate(
    value: &mut serde_yaml::Value,
    vars: &HashMap<String, String>,
    path: &mut Vec<String>,
) -> Result<(), String> {
    match value {
        serde_yaml::Value::String(s) => {
            *s = interpolate_str(s, vars).map_err(|e| format!("{}: {e}", path.join(".")))?;
        }
        serde_yaml::Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                interpolate(item, vars, path)?;
                path.pop();
            }
        }
        serde_yaml::Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                path.push(key.as_str().unwrap_or("?").to_owned());
                interpolate(item, vars, path)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

/// `${VAR}` takes `vars[VAR]` (an error if unset), `${VAR:-default}` falls back to `default`.
/// Values containing a newline are refused: they would smuggle lines into headers.
pub fn interpolate_str(s: &str, vars: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed '${{' in '{s}'"))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        let value = match (vars.get(name), default) {
            (Some(v), _) => v.as_str(),
            (None, Some(d)) => d,
            (None, None) => return Err(format!("environment variable {name} is not set")),
        };
        if value.contains(['\n', '\r']) {
            return Err(format!("environment variable {name} contains a newline"));
        }
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::vars;

    #[test]
    fn interpolation_has_defaults_and_refuses_newlines() {
        let v = vars(&[("A", "1"), ("NL", "x\ny")]);
        assert_eq!(interpolate_str("${A}-${B:-two}", &v).unwrap(), "1-two");
        assert!(
            interpolate_str("${NL}", &v)
                .unwrap_err()
                .contains("newline")
        );
        assert!(interpolate_str("${A", &v).unwrap_err().contains("unclosed"));
    }
}
