//! Refusal reasons without the values they quote. A reason such as `subject.debtor: invalid
//! type: string "John Doe", expected ...` tells the sender what is wrong, and is answered to it
//! whole; what is stored with the delivery and logged keeps where (line, column, the path) and
//! what kind of value, never the value itself: `subject.debtor: invalid type: a string, ...`.

/// `reason` with every value taken from a body replaced by its kind.
pub fn without_values(reason: &str) -> String {
    // An unknown key may be a value too (`{"jane@example.com": 1}`), named in the message and
    // in its path: every mention goes, unless it looks like a field name (`tpye`), which tells
    // the operator what the sender got wrong.
    let unknown: Option<String> = reason.split_once("unknown field `").and_then(|(_, rest)| {
        rest.split_once('`')
            .map(|(name, _)| name.to_owned())
            .filter(|n| {
                !n.is_empty()
                    && (n.len() > 64 || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            })
    });
    let owned;
    let reason = match unknown {
        Some(name) => {
            owned = reason.replace(&name, "(an unknown field)");
            owned.as_str()
        }
        None => reason,
    };
    let mut out = String::with_capacity(reason.len());
    let mut rest = reason;
    while !rest.is_empty() {
        if let Some((kind, len)) = quoted_value(rest) {
            out.push_str(kind);
            rest = &rest[len..];
            continue;
        }
        let mut chars = rest.chars();
        let c = chars.next().expect("rest is not empty");
        out.push(c);
        rest = chars.as_str();
    }
    out
}

/// How serde and the engine's own messages quote a value: each prefix, what it becomes, and
/// how the value ends.
const QUOTED: &[(&str, &str, End)] = &[
    ("string \"", "a string", End::DebugString),
    ("integer `", "an integer", End::Backtick),
    ("floating point `", "a number", End::Backtick),
    ("boolean `", "a boolean", End::Backtick),
    ("character `", "a character", End::Backtick),
    ("unknown variant `", "unknown variant", End::Backtick),
    ("event type '", "event type", End::Before("' must be")),
    ("source '", "source", End::Before("' must be")),
];

#[derive(Clone, Copy)]
enum End {
    /// `"..."` as `{:?}` writes it (with `\"` escapes).
    DebugString,
    /// The next backtick.
    Backtick,
    /// The last quote followed by this text (the value itself may contain quotes).
    Before(&'static str),
}

/// If `text` starts with a quoted value: what replaces it, and how many bytes it spans.
fn quoted_value(text: &str) -> Option<(&'static str, usize)> {
    QUOTED.iter().find_map(|(prefix, kind, end)| {
        let value = text.strip_prefix(prefix)?;
        let len = match end {
            End::DebugString => {
                let mut escaped = false;
                value
                    .char_indices()
                    .find(|&(_, c)| {
                        let closes = c == '"' && !escaped;
                        escaped = c == '\\' && !escaped;
                        closes
                    })?
                    .0
                    + 1
            }
            End::Backtick => value.find('`')? + 1,
            End::Before(tail) => value.rfind(tail)? + 1,
        };
        Some((*kind, prefix.len() + len))
    })
}

#[cfg(test)]
mod tests {
    use super::without_values;

    #[test]
    fn serde_values_become_their_kind_and_the_rest_stays() {
        assert_eq!(
            without_values(
                r#"subject.debtor: invalid type: string "John \"JD\" Doe", expected a string at line 3 column 9"#
            ),
            "subject.debtor: invalid type: a string, expected a string at line 3 column 9"
        );
        assert_eq!(
            without_values("amount: invalid type: integer `19801231`, expected a map"),
            "amount: invalid type: an integer, expected a map"
        );
        assert_eq!(
            without_values("x: invalid value: floating point `1.5`, boolean `true`"),
            "x: invalid value: a number, a boolean"
        );
        assert_eq!(
            without_values("item 1: tpye: unknown field `tpye`, expected one of `type`"),
            "item 1: tpye: unknown field `tpye`, expected one of `type`",
            "field names are the schema's, kept"
        );
        assert_eq!(
            without_values(
                "jane.roe@example.com: unknown field `jane.roe@example.com`, expected one of `type`"
            ),
            "(an unknown field): unknown field `(an unknown field)`, expected one of `type`",
            "a key that is no field name may be personal data"
        );
        assert_eq!(
            without_values(
                "type: event type 'Jane's debt' must be snake_case '<entity>.<what_happened>'"
            ),
            "type: event type must be snake_case '<entity>.<what_happened>'"
        );
        assert_eq!(
            without_values("malformed JSON: EOF while parsing a value at line 1 column 34"),
            "malformed JSON: EOF while parsing a value at line 1 column 34"
        );
        assert_eq!(
            without_values("unterminated: string \"abc"),
            "unterminated: string \"abc",
            "left alone when the value does not end"
        );
    }
}
