//! The shape of `src/`, kept by a test: no import cycle between top-level modules, and the
//! layering the README's layout section describes (`ssh/` knows nothing of the inventory; the row
//! model and the member-side scripts depend on no pipeline; `cli/` is the only wiring).
//!
//! Edges are read from the source text: every `crate::NAME` path and `use crate::{…}` group in a
//! module's files, test code excluded (`#[cfg(test)]` modules and files named `tests.rs` or
//! `*_tests.rs` may reach anywhere, as tests do).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Top-level module → the files that make it.
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut files = Vec::new();
            collect(&path, &mut files);
            out.insert(name, files);
        } else if path.extension().is_some_and(|e| e == "rs")
            && !["lib", "main", "fake"].contains(&name.as_str())
        {
            out.insert(name, vec![path]);
        }
    }
    out
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            if stem != "tests" && !stem.ends_with("_tests") {
                files.push(path);
            }
        }
    }
}

/// The code of a file: comments (doc links name modules too) and `#[cfg(test)]` items (a module
/// or a function) left out.
fn non_test(text: &str) -> String {
    let code: String = text
        .lines()
        .map(|l| l.trim_start())
        .filter(|l| !l.starts_with("//"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut out = String::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // Skip to the end of the item: a `;` before any `{`, or the matching `}`.
        let open = after.find('{');
        let semi = after.find(';');
        match (open, semi) {
            (Some(o), Some(s)) if s < o => rest = &after[s + 1..],
            (Some(o), _) => {
                let mut depth = 0usize;
                let mut end = after.len();
                for (i, c) in after[o..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = o + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &after[end..];
            }
            _ => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// The top-level modules `text` refers to through `crate::`.
fn references(text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::X, b, c::{…}}`: every first segment of the group.
            let end = group.find("};").unwrap_or(group.len());
            for part in group[..end].split(',') {
                let word: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if known.contains(&word) {
                    refs.insert(word);
                }
            }
            continue;
        }
        let word: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if known.contains(&word) {
            refs.insert(word);
        }
    }
    refs
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    mods.iter()
        .map(|(name, files)| {
            let mut deps = BTreeSet::new();
            for f in files {
                deps.extend(references(
                    &non_test(&fs::read_to_string(f).unwrap()),
                    &known,
                ));
            }
            deps.remove(name);
            (name.clone(), deps)
        })
        .collect()
}

/// A cycle through `start`, if any.
fn cycle(
    g: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(at) = path.iter().position(|p| p == node) {
        let mut c = path[at..].to_vec();
        c.push(node.to_string());
        return Some(c);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.to_string());
    for dep in g.get(node).into_iter().flatten() {
        if let Some(c) = cycle(g, dep, path, done) {
            return Some(c);
        }
    }
    path.pop();
    done.insert(node.to_string());
    None
}

#[test]
fn no_import_cycle_between_modules() {
    let g = graph();
    assert!(g.len() > 10, "modules found: {:?}", g.keys());
    let mut done = BTreeSet::new();
    for node in g.keys() {
        if let Some(c) = cycle(&g, node, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}\nwhole graph: {g:#?}", c.join(" → "));
        }
    }
}

#[test]
fn layers_depend_only_downwards() {
    let g = graph();
    let deps = |m: &str| g.get(m).cloned().unwrap_or_default();
    assert!(
        !deps("ssh").contains("inventory"),
        "ssh/ imports the inventory"
    );
    for m in ["row", "shell", "mask", "remote"] {
        let bad: Vec<_> = deps(m)
            .into_iter()
            .filter(|d| !["row", "shell", "mask", "remote"].contains(&d.as_str()))
            .collect();
        assert!(bad.is_empty(), "{m} depends on {bad:?}");
    }
    for (m, d) in &g {
        assert!(
            m == "cli" || !d.contains("cli"),
            "{m} depends on cli/, which only wires"
        );
    }
    for m in ["assess", "plan", "report"] {
        for other in ["assess", "plan", "report"] {
            assert!(
                m == other || !deps(m).contains(other),
                "{m} depends on {other}: they share the row model instead"
            );
        }
    }
}

#[test]
fn the_reader_sees_a_cycle() {
    // The checker itself can fail: a two-module cycle is found.
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert!(cycle(&g, "a", &mut Vec::new(), &mut BTreeSet::new()).is_some());
    let known = BTreeSet::from(["x".to_string(), "y".to_string()]);
    assert_eq!(
        references(
            "use crate::{x::A, y};\n#[cfg(test)]\nmod t { use crate::z; }",
            &known
        ),
        BTreeSet::from(["x".to_string(), "y".to_string()])
    );
    assert_eq!(
        references(
            &non_test("#[cfg(test)]\nmod t { use crate::x; }\nuse crate::y;"),
            &known
        ),
        BTreeSet::from(["y".to_string()])
    );
}
