//! The layers in `src/lib.rs`'s module map hold: every `crate::` path in a module names a
//! module of its own layer or a layer below it, the REST core names only the modules the map
//! allows it, and the import graph between top-level modules has no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → layer number (1 = entry points), read from the numbered list in the
/// `//!` map of `src/lib.rs`, and the modules the REST core may use.
fn layers(lib: &str) -> (BTreeMap<String, u32>, BTreeSet<String>) {
    let mut layers = BTreeMap::new();
    let mut core_allowed = BTreeSet::new();
    let mut current: Option<u32> = None;
    let mut in_core = false;
    for line in lib.lines().take_while(|l| l.starts_with("//!")) {
        let text = line.trim_start_matches("//!").trim();
        if let Some((number, _)) = text.split_once(". ") {
            if let Ok(n) = number.parse::<u32>() {
                current = Some(n);
            }
        }
        if text.starts_with("[`glue_application`]") {
            current = None;
            in_core = true;
        }
        for (i, part) in text.split('`').enumerate() {
            // Odd parts are inside backticks.
            if i % 2 == 0 || !part.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                continue;
            }
            match (current, in_core) {
                (Some(n), false) => {
                    layers.entry(part.to_string()).or_insert(n);
                }
                (_, true) if part != "glue_application" && part != "startup" => {
                    core_allowed.insert(part.to_string());
                }
                _ => {}
            }
        }
        if text.is_empty() {
            current = None;
        }
    }
    (layers, core_allowed)
}

/// The code of a module without its comments and its `#[cfg(test)]` part.
fn production_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => &text,
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// Top-level module → the top-level modules its files name with `crate::`.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in rust_files(src) {
        let relative = path.strip_prefix(src).unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" {
            continue;
        }
        let code = production_code(&path);
        let used = graph.entry(module.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let names: Vec<String> = if name.is_empty() && rest.starts_with('{') {
                // `use crate::{a, b::c}`
                rest[1..rest.find('}').unwrap()]
                    .split(',')
                    .map(|p| p.trim().split("::").next().unwrap().to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            } else {
                vec![name]
            };
            for name in names {
                if name != module {
                    used.insert(name);
                }
            }
        }
    }
    graph
}

#[test]
fn every_import_points_down_the_layers_of_the_module_map() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let (layers, core_allowed) = layers(&lib);
    let graph = imports(&root.join("src"));
    let mut problems = Vec::new();
    for (module, used) in &graph {
        if module == "main" {
            continue;
        }
        if module == "glue_application" {
            for name in used {
                if !core_allowed.contains(name) {
                    problems.push(format!("the REST core imports {name}"));
                }
            }
            continue;
        }
        let Some(&own) = layers.get(module) else {
            problems.push(format!("{module} is not in the module map of src/lib.rs"));
            continue;
        };
        for name in used.iter().filter(|n| *n != "glue_application") {
            match layers.get(name) {
                Some(&layer) if layer >= own => {}
                Some(&layer) => problems.push(format!(
                    "{module} (layer {own}) imports {name} (layer {layer}), which is above it"
                )),
                None => problems.push(format!("{module} imports {name}, which is not in the map")),
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(layers.len() > 15, "the map was read: {layers:?}");
    assert!(!core_allowed.is_empty(), "the core's allowance was read");
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = imports(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    // Depth-first search with the path kept, so a cycle is reported as it runs.
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut cycle = path[at..].to_vec();
            cycle.push(module.to_string());
            return Some(cycle);
        }
        if !done.insert(module.to_string()) {
            return None;
        }
        path.push(module.to_string());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = visit(module, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn resources_leave_refresh_token_rows_and_php_tokens_to_the_session_flow() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for resource in ["auth_rest_api", "agent_auth_rest_api"] {
        for path in rust_files(&src.join(resource)) {
            let code = production_code(&path);
            for private in ["oauth::refresh_token", "oauth::php_token", "php_token::"] {
                assert!(!code.contains(private), "{} uses {private}", path.display());
            }
        }
    }
}
