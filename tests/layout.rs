//! The Layout table in `src/lib.rs`'s documentation is true of the code: every top-level module
//! of the crate has a line in it, and every `crate::` path in a module's code (unit tests aside)
//! names a module of a line below its own. The table lists layers top to bottom; a module in
//! parentheses is part of the one before it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Where a top-level module sits in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Place {
    /// Its line (0 = top).
    layer: usize,
    /// The module it is part of: itself, or the one before the parentheses.
    unit: String,
}

/// Each top-level module's place in the table.
fn layers() -> BTreeMap<String, Place> {
    let lib = fs::read_to_string(Path::new(SRC).join("lib.rs")).unwrap();
    let doc: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let start = doc
        .iter()
        .position(|l| *l == "## Layout")
        .expect("lib.rs has a Layout section");
    let table = doc[start..]
        .iter()
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"));
    let mut layers = BTreeMap::new();
    let mut line = 0;
    let mut list_goes_on = false;
    for l in table {
        let continued = l.starts_with(' ');
        if continued && !list_goes_on {
            continue; // the description goes on
        }
        if !continued && !layers.is_empty() {
            line += 1;
        }
        let names = l.trim_start().split("  ").next().unwrap_or("");
        list_goes_on = names.trim_end().ends_with(',');
        let mut unit = String::new();
        for name in names.split([',', '(']) {
            let part = name.contains(')');
            let name = name.trim().trim_end_matches(')').trim_end_matches('/');
            if name.is_empty() {
                continue;
            }
            if !part {
                unit = name.to_owned();
            }
            let place = Place {
                layer: line,
                unit: unit.clone(),
            };
            layers.insert(name.to_owned(), place);
        }
    }
    layers
}

/// The top-level module each source file belongs to, with its path under `src/` and its code
/// (unit tests left out: inline `mod tests` and files of tests, `tests.rs` and `*_tests.rs`).
fn modules() -> Vec<(String, PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new(SRC), &mut files);
    files
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(SRC).unwrap().to_owned();
            let first = relative.components().next()?.as_os_str().to_str()?;
            let module = first.trim_end_matches(".rs").to_owned();
            let stem = relative.file_stem()?.to_str()?;
            if module == "lib" || module == "main" || stem == "tests" || stem.ends_with("_tests") {
                return None;
            }
            let text = fs::read_to_string(&path).unwrap();
            let code = match text.find("#[cfg(test)]\nmod tests {") {
                Some(tests) => text[..tests].to_owned(),
                None => text,
            };
            Some((module, relative, code))
        })
        .collect()
}

/// The top-level modules `code` names with `crate::` (comments ignored).
fn uses(code: &str) -> Vec<String> {
    let mut used = Vec::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let starts_a_word = line[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
            if starts_a_word && !name.is_empty() {
                used.push(name);
            }
        }
    }
    used
}

#[test]
fn every_top_level_module_has_a_line_in_the_layout_table() {
    let layers = layers();
    for (module, path, _) in modules() {
        assert!(
            layers.contains_key(&module),
            "src/{} belongs to module `{module}`, which the Layout table in src/lib.rs does not list",
            path.display()
        );
    }
}

#[test]
fn no_module_uses_a_module_of_its_own_layer_or_above() {
    let layers = layers();
    let mut wrong = Vec::new();
    for (module, path, code) in modules() {
        let Some(own) = layers.get(&module) else {
            continue; // the other test says so
        };
        for used in uses(&code) {
            let Some(theirs) = layers.get(&used) else {
                continue;
            };
            if theirs.unit != own.unit && theirs.layer <= own.layer {
                wrong.push(format!("src/{} uses {used}", path.display()));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "imports that point up or sideways: {wrong:#?}"
    );
}

#[test]
fn the_table_is_read_in_layers_top_to_bottom() {
    let layer = |m: &str| layers()[m].layer;
    assert!(layer("supervisor") < layer("config"));
    assert_eq!(layer("ingest"), layer("publisher"));
    assert_eq!(layer("flv"), layer("transport"), "a list that goes on");
    assert!(layer("h264") < layer("clock"));
    assert!(layer("clock") < layer("setting"));
}
