//! The folder tree is the architecture: maps every file of `src/` to a layer by its path and checks
//! every crate-internal import (and the external paths `core` may not name) against the layering
//! rules. Run with `cargo test --test architecture`; no cluster, no network.
//! `ARCHITECTURE_ROOT=DIR` checks another checkout with the same rules (e.g. an older commit in a
//! `git worktree`).

mod fixtures;
mod rules;
mod scan;

use std::path::Path;

/// Files allowed over `rules::MAX_LINES` lines: `(path, why)`. May only shrink; an entry whose file is
/// gone or back under the limit fails the test until it is removed.
pub const OVERSIZED: &[(&str, &str)] = &[];

/// Core domain imports rule 3 lets through: `(from_domain, to_domain, reason)`.
pub const DOMAIN_EXCEPTIONS: &[(&str, &str, &str)] = &[];

/// Reads every `.rs` file below `dir` as `(path relative to the crate root, source)`.
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("readable directory entry").path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let source = std::fs::read_to_string(&path).expect("readable source file");
            let rel = path.strip_prefix(root).expect("below the crate root");
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>();
            out.push((rel.join("/"), source));
        }
    }
}

#[test]
fn the_folder_tree_is_the_architecture() {
    let root = std::env::var_os("ARCHITECTURE_ROOT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf(),
        Into::into,
    );
    let root = root.as_path();
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        collect(root, &root.join(dir), &mut files);
    }
    files.sort();
    assert!(
        files.iter().any(|(p, _)| p == "src/lib.rs"),
        "src/lib.rs not found under {}",
        root.display()
    );
    let tree: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, s)| (p.as_str(), s.as_str()))
        .collect();
    let violations = rules::check(&tree, OVERSIZED, DOMAIN_EXCEPTIONS);
    let lines: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(
        violations.is_empty(),
        "{} architecture violation(s):\n{}\n",
        violations.len(),
        lines.join("\n")
    );
}
