//! The layering of ARCHITECTURE.md as a test: which workspace crate may
//! depend on which, and no import cycle between the top-level modules of
//! any crate. Both are cheap to break by accident (one `use` that points up)
//! and expensive to untangle later, so CI checks them on every run.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Each crate and the workspace crates it may use (its normal dependencies;
/// dev-dependencies are free, so that tests can reach across).
const ALLOWED: &[(&str, &[&str])] = &[
    ("kmsfs-sys", &[]),
    ("kmsfs-format", &[]),
    ("kmsfs-kms", &[]),
    ("kmsfs-kms-server", &["kmsfs-sys", "kmsfs-kms"]),
    ("kmsfs-volume", &["kmsfs-sys", "kmsfs-format", "kmsfs-kms"]),
    // The EBS simulation: images, snapshots, its state; no FUSE, no server.
    // It reaches its pool through the volume layer's directory descriptors.
    (
        "kmsfs-ebs",
        &["kmsfs-sys", "kmsfs-format", "kmsfs-kms", "kmsfs-volume"],
    ),
    // The EC2 Query endpoint of the EBS simulation, beside the KMS server.
    ("kmsfs-ebs-server", &["kmsfs-sys", "kmsfs-kms", "kmsfs-ebs"]),
    (
        "kmsfs-mount",
        &[
            "kmsfs-sys",
            "kmsfs-format",
            "kmsfs-kms",
            "kmsfs-volume",
            "kmsfs-ebs",
        ],
    ),
    // The fuzz targets' bodies (fuzz/), on top of the parsers they feed.
    (
        "kmsfs-fuzz-bodies",
        &["kmsfs-format", "kmsfs-kms", "kmsfs-volume"],
    ),
    (
        "kmsfs",
        &[
            "kmsfs-sys",
            "kmsfs-format",
            "kmsfs-kms",
            "kmsfs-kms-server",
            "kmsfs-volume",
            "kmsfs-mount",
            "kmsfs-ebs",
            "kmsfs-ebs-server",
        ],
    ),
];

fn metadata() -> Value {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("metadata JSON")
}

#[test]
fn crates_depend_only_downwards() {
    let meta = metadata();
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(name, deps)| (*name, deps.iter().copied().collect()))
        .collect();
    let packages = meta["packages"].as_array().expect("packages");
    let members: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(
        members,
        allowed.keys().copied().collect(),
        "a crate was added or renamed: place it in ALLOWED (and ARCHITECTURE.md)"
    );
    for package in packages {
        let name = package["name"].as_str().expect("name");
        for dep in package["dependencies"].as_array().expect("dependencies") {
            let dep_name = dep["name"].as_str().expect("dependency name");
            let is_normal = dep["kind"].is_null();
            if members.contains(dep_name) && is_normal {
                assert!(
                    allowed[name].contains(dep_name),
                    "{name} depends on {dep_name}, which ARCHITECTURE.md puts above or beside it"
                );
            }
        }
    }
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file: `src/a.rs` and `src/a/mod.rs` are
/// `["a"]`, `src/a/b.rs` is `["a", "b"]`, the crate root is `[]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("file under src");
    let mut path: Vec<String> = rel
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .map(|c| c.strip_suffix(".rs").unwrap_or(c).to_string())
        .collect();
    if matches!(
        path.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        path.pop();
    }
    path
}

/// The modules (known to `modules`) that the code of module `me` names with
/// `crate::…`, `super::…` or `self::…` paths, including `use` groups.
fn referenced_modules(
    text: &str,
    me: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> BTreeSet<Vec<String>> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    // Test modules may use anything of their crate.
    let code = code.split("#[cfg(test)]").next().unwrap_or("");
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let longest_module = |path: Vec<String>| -> Option<Vec<String>> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| modules.contains(p))
    };
    let mut found = BTreeSet::new();
    for (i, _) in code.match_indices(['c', 's']) {
        if code[..i].ends_with(|c: char| ident(c) || c == ':') {
            continue;
        }
        let rest = &code[i..];
        let mut base: Vec<String>;
        let mut tail;
        if let Some(t) = rest.strip_prefix("crate::") {
            base = Vec::new();
            tail = t;
        } else if rest.starts_with("super::") || rest.starts_with("self::") {
            base = me.to_vec();
            tail = rest;
            while let Some(t) = tail.strip_prefix("super::") {
                base.pop();
                tail = t;
            }
            if let Some(t) = tail.strip_prefix("self::") {
                tail = t;
            }
        } else {
            continue;
        }
        // `a::b::{c, d::e}` or `{c, d}` after the prefix.
        let mut prefix = base.clone();
        loop {
            let name: String = tail.chars().take_while(|c| ident(*c)).collect();
            if name.is_empty() {
                break;
            }
            prefix.push(name.clone());
            tail = &tail[name.len()..];
            match tail.strip_prefix("::") {
                Some(t) => tail = t,
                None => break,
            }
        }
        let mut candidates = vec![prefix.clone()];
        if let Some(group) = tail.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or("");
            for item in group.split(',') {
                let mut p = prefix.clone();
                p.extend(
                    item.trim()
                        .split("::")
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty() && s.chars().all(ident)),
                );
                candidates.push(p);
            }
        }
        for c in candidates {
            if let Some(m) = longest_module(c) {
                found.insert(m);
            }
        }
    }
    found
}

/// Whether one module contains the other (a parent and its children may
/// name each other: `mod.rs` declares them, they use its items).
fn nested(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// A cycle in `graph`, if there is one, as the list of modules on it.
fn find_cycle<N: Ord + Clone>(graph: &BTreeMap<N, BTreeSet<N>>) -> Option<Vec<N>> {
    fn visit<N: Ord + Clone>(
        node: &N,
        graph: &BTreeMap<N, BTreeSet<N>>,
        on_path: &mut Vec<N>,
        done: &mut BTreeSet<N>,
    ) -> Option<Vec<N>> {
        if let Some(at) = on_path.iter().position(|n| n == node) {
            let mut cycle = on_path[at..].to_vec();
            cycle.push(node.clone());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        on_path.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, on_path, done) {
                return Some(c);
            }
        }
        on_path.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_crate_has_a_module_import_cycle() {
    let meta = metadata();
    let mut checked = 0;
    let mut cycles = Vec::new();
    for package in meta["packages"].as_array().expect("packages") {
        let manifest = PathBuf::from(package["manifest_path"].as_str().expect("manifest"));
        let src = manifest.parent().expect("crate dir").join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_path(&src, f)).collect();
        let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
        for file in &files {
            let me = module_path(&src, file);
            let text = fs::read_to_string(file).expect("source");
            let refs: Vec<_> = referenced_modules(&text, &me, &modules)
                .into_iter()
                .filter(|m| !nested(m, &me))
                .collect();
            graph.entry(me).or_default().extend(refs);
        }
        if let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!(
                "{}: modules import each other: {}",
                package["name"],
                cycle
                    .iter()
                    .map(|m| m.join("::"))
                    .collect::<Vec<_>>()
                    .join(" → ")
            ));
        }
        checked += 1;
    }
    assert_eq!(checked, ALLOWED.len());
    assert!(cycles.is_empty(), "{}", cycles.join("\n"));
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    let cycle = find_cycle(&graph).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
    let m = |p: &str| p.split("::").map(String::from).collect::<Vec<_>>();
    let modules: BTreeSet<Vec<String>> = ["a", "b", "c", "c::d"].iter().map(|p| m(p)).collect();
    let refs = referenced_modules(
        "use crate::{a::X, b};\nuse super::d::Y; // crate::zzz\nfoo::crate::b",
        &m("c::e"),
        &modules,
    );
    assert_eq!(refs, [m("a"), m("b"), m("c::d")].into_iter().collect());
    assert_eq!(
        referenced_modules("use self::Z; use super::super::a;", &m("c::d"), &modules),
        [m("c::d"), m("a")].into_iter().collect()
    );
    assert!(nested(&m("c"), &m("c::d")));
    assert!(!nested(&m("a"), &m("c::d")));
}
