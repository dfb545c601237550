//! The core's top-level modules import one another without a cycle: each can be read (and
//! changed) knowing only the modules below it. Read from the sources, so a new
//! `use crate::…` that closes a loop fails here with the loop it closes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("source directory");
    for entry in entries.map(|e| e.expect("directory entry").path()) {
        if entry.is_dir() {
            sources(&entry, out);
        } else if entry.extension().is_some_and(|x| x == "rs") {
            out.push(entry);
        }
    }
}

/// The names `text` reaches through `crate::` (a module, or a name the crate root
/// re-exports), outside comments and its unit tests (which may reach anywhere):
/// `crate::http::Request` gives `http`, `crate::{Cursor, Record}` both names.
fn imports(text: &str) -> BTreeSet<String> {
    let code = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    let code: Vec<&str> = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect();
    let code = code.join("\n");
    let word = |rest: &str| -> String {
        rest.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                out.extend(group.split(',').map(|item| word(item.trim())));
            }
            None => {
                out.insert(word(rest));
            }
        }
    }
    out.remove("");
    out
}

/// What the crate root re-exports, by name: `pub use pipeline::{Provider, …};` maps
/// `Provider` to `pipeline`.
fn root_exports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for statement in lib.split(';') {
        let Some(at) = statement.find("pub use ") else {
            continue;
        };
        let path = &statement[at + "pub use ".len()..];
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        let items = items.trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let name = item.rsplit("::").next().unwrap_or(item);
            out.insert(name.to_owned(), module.trim().to_owned());
        }
    }
    out
}

/// A cycle through `node`, if the graph has one reachable from it.
fn cycle_from(
    node: &str,
    graph: &BTreeMap<String, BTreeSet<String>>,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(at) = path.iter().position(|n| n == node) {
        let mut cycle = path[at..].to_vec();
        cycle.push(node.to_owned());
        return Some(cycle);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.to_owned());
    for next in graph.get(node).into_iter().flatten() {
        if let Some(cycle) = cycle_from(next, graph, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(node.to_owned());
    None
}

#[test]
fn core_modules_import_one_another_without_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("below src");
        let first = relative.components().next().expect("a component");
        let top = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("source text");
        graph.entry(top).or_default().extend(imports(&text));
    }
    assert!(graph.len() > 20, "found only {:?}", graph.keys());
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let exports = root_exports(&lib);
    assert_eq!(
        exports.get("Provider").map(String::as_str),
        Some("pipeline")
    );
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for (module, edges) in graph.iter_mut() {
        let resolved = edges.iter().filter_map(|name| match exports.get(name) {
            Some(home) => Some(home.clone()),
            None => modules.contains(name).then(|| name.clone()),
        });
        *edges = resolved.filter(|m| m != module).collect();
    }
    let mut done = BTreeSet::new();
    for module in &modules {
        let cycle = cycle_from(module, &graph, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle.unwrap_or_default().join(" -> ")
        );
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    let found = cycle_from("a", &graph, &mut Vec::new(), &mut BTreeSet::new());
    assert_eq!(
        found,
        Some(["a", "b", "c", "a"].map(str::to_owned).to_vec())
    );
    assert_eq!(
        imports("use crate::http::Request;\n// crate::spec\n"),
        BTreeSet::from(["http".to_owned()])
    );
}
