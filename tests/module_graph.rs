//! The modules of `src/` depend on each other without cycles: each top-level module's
//! `crate::<module>` references, read from its source files, form a graph that can be drawn as
//! layers. A newcomer changing one module then reads only the modules below it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its files name as `crate::<module>`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if name == "lib" || name == "bin" {
            continue;
        }
        modules.insert(name.clone());
        let mut files = vec![path.clone()];
        let mut edges = BTreeSet::new();
        while let Some(file) = files.pop() {
            if file.is_dir() {
                files.extend(std::fs::read_dir(&file).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for (at, _) in text.match_indices("crate::") {
                let rest = &text[at + "crate::".len()..];
                let target: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !target.is_empty() && target != name {
                    edges.insert(target);
                }
            }
        }
        graph.insert(name, edges);
    }
    // Only edges between modules: `crate::Result` and other re-exports of lib.rs are not modules.
    for edges in graph.values_mut() {
        edges.retain(|target| modules.contains(target));
    }
    graph
}

/// A cycle through `start`, if there is one (depth-first search along the edges).
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in &graph[node] {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if visit(graph, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    visit(graph, start, start, &mut path, &mut BTreeSet::new()).then(|| {
        path.push(start.to_owned());
        path
    })
}

#[test]
fn the_modules_of_src_form_no_cycle() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let cycles: Vec<String> =
        graph.keys().filter_map(|module| cycle_from(&graph, module)).map(|cycle| cycle.join(" -> ")).collect();
    assert!(cycles.is_empty(), "cycles between modules of src/:\n{}", cycles.join("\n"));
}

#[test]
fn the_check_finds_a_cycle_when_there_is_one() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), ["b".to_owned()].into()),
        ("b".to_owned(), ["c".to_owned()].into()),
        ("c".to_owned(), ["a".to_owned()].into()),
        ("d".to_owned(), ["a".to_owned()].into()),
    ]
    .into();
    assert_eq!(cycle_from(&graph, "a").unwrap(), ["a", "b", "c", "a"]);
    assert!(cycle_from(&graph, "d").is_none());
}

/// The edges table of docs/ARCHITECTURE.md: `| module | uses |` rows; a row may name several
/// modules (comma-separated) that use the same ones.
fn documented_graph(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for row in text.lines().filter(|line| line.starts_with("| ")) {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        // Other tables have another number of columns; the header row names the columns.
        let [modules, uses] = cells[..] else { continue };
        if modules == "module" {
            continue;
        }
        let uses: BTreeSet<String> = uses.split_whitespace().map(str::to_owned).collect();
        for module in modules.split(',').map(str::trim) {
            graph.insert(module.to_owned(), uses.clone());
        }
    }
    graph
}

#[test]
fn the_architecture_page_shows_the_module_graph_as_it_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    assert_eq!(
        documented_graph(&page),
        module_graph(&root.join("src")),
        "docs/ARCHITECTURE.md's module table differs from the `crate::` graph of src/"
    );
}
