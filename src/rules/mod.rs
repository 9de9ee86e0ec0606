//! Rules: YAML files in the rules folder. This module finds them; the rule format, its compiler
//! and the matcher build on it.

use std::path::{Path, PathBuf};

/// The rule files (`*.yaml`, `*.yml`) directly in `dir`, sorted. A missing folder holds no rules;
/// an unreadable one is an error.
pub fn scan(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: cannot read rules folder: {e}", dir.display())),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if is_yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
