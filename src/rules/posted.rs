//! Rule files posted to the API (`POST /v1/backtest`, `POST /v1/rules/validate`): named and
//! bounded as a rules folder's files are ([`super::MAX_RULE_FILES`],
//! [`super::MAX_RULE_FILE_BYTES`]), compiled as the folder is (with the config's calendars),
//! and checked as `signalbox check` and `signalbox test` check a folder. Nothing is saved, and
//! no file is read on their behalf.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::{RuleError, RuleSet, testing};
use crate::calendar::Calendars;
use crate::providers::Registry;

/// Longest name of a posted rule file.
const MAX_NAME: usize = 100;

/// Inline tests one validation runs at most.
pub const MAX_TESTS: usize = 500;

/// The posted files as the compiler takes them, or what is wrong with them (their count, a
/// name, a size).
pub fn texts(files: &BTreeMap<String, String>) -> Result<BTreeMap<PathBuf, String>, String> {
    if files.is_empty() {
        return Err(r#"no rule files: give {"files": {"name.yaml": "<the file's text>"}}"#.into());
    }
    if files.len() > super::MAX_RULE_FILES {
        return Err(format!(
            "{} rule files, more than the {} a rule set may have",
            files.len(),
            super::MAX_RULE_FILES
        ));
    }
    let mut texts = BTreeMap::new();
    for (name, text) in files {
        check_name(name).map_err(|why| format!("rule file name '{}': {why}", shown(name)))?;
        if let Some(why) = super::too_large(text.len()) {
            return Err(format!("{name}: {why}"));
        }
        texts.insert(PathBuf::from(name), text.clone());
    }
    Ok(texts)
}

/// A name as an error message shows it: at most [`MAX_NAME`] characters.
fn shown(name: &str) -> String {
    match name.char_indices().nth(MAX_NAME) {
        Some((at, _)) => format!("{}…", &name[..at]),
        None => name.to_owned(),
    }
}

/// A file name as a rules folder holds one: `name.yaml` or `name.yml`, of letters, digits,
/// `.`, `_` and `-`, not hidden.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.len() > MAX_NAME {
        return Err("longer than 100 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("a file name of letters, digits, '.', '_' and '-' (no folders)");
    }
    if name.starts_with('.') {
        return Err("a file name may not start with '.'");
    }
    if !(name.ends_with(".yaml") || name.ends_with(".yml")) || name.len() <= 5 {
        return Err("a rule file's name ends in .yaml or .yml");
    }
    Ok(())
}

/// Compiles posted files as the loader compiles a folder.
pub fn compile(
    texts: &BTreeMap<PathBuf, String>,
    calendars: &Arc<Calendars>,
) -> Result<RuleSet, Vec<RuleError>> {
    RuleSet::compile_with(texts, calendars)
}

/// A problem as `signalbox check` prints it (`text`), and its parts.
#[derive(Debug, Serialize)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub rule: Option<String>,
    pub message: String,
    /// `file:line:column: rule R: message`.
    pub text: String,
}

impl From<&RuleError> for Problem {
    fn from(e: &RuleError) -> Self {
        Self {
            file: e.file.clone(),
            line: e.line,
            column: e.column,
            rule: e.rule.clone(),
            message: e.message.clone(),
            text: e.to_string(),
        }
    }
}

/// One inline test's result.
#[derive(Debug, Serialize)]
pub struct TestOutcome {
    pub file: PathBuf,
    pub rule: String,
    pub name: String,
    pub passed: bool,
    /// What went wrong, with expected and actual.
    pub failure: Option<String>,
}

/// What `signalbox check` and `signalbox test` say of a set of files.
#[derive(Debug, Serialize)]
pub struct Validation {
    /// No errors (the files compile, and no script misuses an optional field); failing tests
    /// are counted apart.
    pub valid: bool,
    pub files: usize,
    pub rules: usize,
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
    /// The inline tests, run only when the files are valid.
    pub tests: Vec<TestOutcome>,
    pub passed: usize,
    pub failed: usize,
}

/// Checks posted files as `signalbox check` does (errors, then warnings), and runs their inline
/// tests as `signalbox test` does when they are valid. More than [`MAX_TESTS`] tests is an
/// error.
pub fn validate(
    texts: &BTreeMap<PathBuf, String>,
    calendars: &Arc<Calendars>,
    registry: &Registry,
) -> Result<Validation, String> {
    let set = match compile(texts, calendars) {
        Ok(set) => set,
        Err(errors) => {
            return Ok(Validation {
                valid: false,
                files: texts.len(),
                rules: 0,
                errors: errors.iter().map(Problem::from).collect(),
                warnings: Vec::new(),
                tests: Vec::new(),
                passed: 0,
                failed: 0,
            });
        }
    };
    let tests: usize = set.rules().iter().map(|r| r.tests.len()).sum();
    if tests > MAX_TESTS {
        return Err(format!(
            "{tests} inline tests, more than the {MAX_TESTS} one validation runs"
        ));
    }
    let errors: Vec<Problem> = super::optional::type_errors(&set)
        .iter()
        .map(Problem::from)
        .collect();
    let warnings = super::optional::warnings(&set)
        .iter()
        .map(Problem::from)
        .collect();
    let valid = errors.is_empty();
    let tests: Vec<TestOutcome> = if valid {
        testing::run_inline(&set, registry)
            .into_iter()
            .map(|r| TestOutcome {
                file: r.file,
                rule: r.rule,
                name: r.name,
                passed: r.failure.is_none(),
                failure: r.failure,
            })
            .collect()
    } else {
        Vec::new()
    };
    let passed = tests.iter().filter(|t| t.passed).count();
    Ok(Validation {
        valid,
        files: set.files.len(),
        rules: set.len(),
        errors,
        warnings,
        failed: tests.len() - passed,
        passed,
        tests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect()
    }

    #[test]
    fn posted_names_are_plain_rule_file_names() {
        for bad in [
            "../x.yaml",
            "a/b.yaml",
            ".hidden.yaml",
            "rules.txt",
            ".yaml",
            "x.yaml\0",
            "C:\\x.yaml",
        ] {
            let err = texts(&files(&[(bad, "version: 1")])).unwrap_err();
            assert!(err.starts_with("rule file name"), "{bad}: {err}");
        }
        assert!(texts(&files(&[("promise-unkept_2.yml", "version: 1")])).is_ok());
        assert!(
            texts(&BTreeMap::new())
                .unwrap_err()
                .contains("no rule files")
        );
    }

    #[test]
    fn a_posted_file_is_bounded_as_a_folder_file_is() {
        let big = "#".repeat(super::super::MAX_RULE_FILE_BYTES + 1);
        let err = texts(&files(&[("big.yaml", &big)])).unwrap_err();
        assert!(err.contains("more than the 256 KiB"), "{err}");
    }

    #[test]
    fn a_test_naming_an_event_file_fails_without_reading_it() {
        let text = r#"
version: 1
id: big
on: [promise_to_pay.created]
when: event.amount.value >= 100
actions: [{ type: emit, event_type: promise.big }]
tests:
  - name: reads_a_file
    event: ../../../../etc/hostname
    expect: [emit]
  - name: inline
    event: { type: promise_to_pay.created, source_event_id: p-1, amount: { value: "150", currency: EUR } }
    expect: [emit]
"#;
        let registry = Registry::from_config(&Default::default()).unwrap();
        let texts = texts(&files(&[("big.yaml", text)])).unwrap();
        let v = validate(&texts, &Arc::default(), &registry).unwrap();
        assert!(v.valid, "{v:?}");
        assert_eq!((v.passed, v.failed), (1, 1), "{v:?}");
        let failure = v.tests[0].failure.as_deref().unwrap();
        assert!(failure.contains("reads no event files"), "{failure}");
    }
}
