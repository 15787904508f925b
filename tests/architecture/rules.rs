//! The layer table and rules 0-6 over an in-memory tree of `(path, source)` pairs, paths relative
//! to the crate root (`src/core/text.rs`), so fixtures can exercise them without a filesystem.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::scan::{self, Kind, Reference};

/// Longest file allowed in `src/`, `tests/` and `benches/` (rule 5).
pub const MAX_LINES: usize = 600;

/// What rule 2 forbids `core` to name (prefix match on path segments).
const CORE_FORBIDDEN: &[&str] = &[
    "kube::Api",
    "kube::Client",
    "kube::api",
    "kube::runtime",
    "kube::client",
    "kube::config",
    "kube_runtime",
    "kube_client",
    "tokio",
    "tokio_util",
    "axum",
    "reqwest",
    "hyper",
    "futures",
    "std::env",
    "std::fs",
    "std::process",
    "std::net",
    "std::thread",
    "std::time::SystemTime",
    "std::time::Instant",
];

/// `X::now` reads a clock for these `X`; core gets time as an argument.
const CLOCKS: &[&str] = &[
    "Timestamp",
    "Zoned",
    "SystemTime",
    "Instant",
    "Utc",
    "Local",
];

/// Domains every core domain may use (`calendar`: the lifecycle clocks and the escalation engine
/// both count business time).
const SHARED_DOMAINS: &[&str] = &["text", "timeline", "calendar"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub file: String,
    pub line: usize,
    pub from: String,
    pub to: String,
    pub rule: u8,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Violation {
            file,
            line,
            from,
            to,
            rule,
        } = self;
        write!(f, "{file}:{line}  {from} -> {to}  (rule {rule})")
    }
}

/// A layer; `Core`/`Controllers` carry the domain/unit (`None`: the `mod.rs` root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layer {
    Api,
    Core(Option<String>),
    Cluster,
    Controllers(Option<String>),
    Http,
    Notifiers,
    Plugin,
    Config,
    Support,
    Wiring,
    /// Only as a target: a module of the crate outside the layered tree.
    Outside(String),
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::Api => f.write_str("api"),
            Layer::Core(None) => f.write_str("core"),
            Layer::Core(Some(d)) => write!(f, "core::{d}"),
            Layer::Cluster => f.write_str("cluster"),
            Layer::Controllers(None) => f.write_str("controllers"),
            Layer::Controllers(Some(c)) => write!(f, "controllers::{c}"),
            Layer::Http => f.write_str("http"),
            Layer::Notifiers => f.write_str("notifiers"),
            Layer::Plugin => f.write_str("plugin"),
            Layer::Config => f.write_str("config"),
            Layer::Support => f.write_str("support"),
            Layer::Wiring => f.write_str("wiring"),
            Layer::Outside(m) => write!(f, "crate::{m} (outside the layered tree)"),
        }
    }
}

/// The layer of a file by its path, `None` when it is outside the layered tree (rule 0).
pub fn file_layer(path: &str) -> Option<Layer> {
    let parts: Vec<&str> = path.strip_prefix("src/")?.split('/').collect();
    let stem = |p: &str| p.strip_suffix(".rs").map(str::to_string);
    // `<root>/mod.rs` is the root, `<root>/<x>.rs` or `<root>/<x>/**` is part `<x>`.
    let part = |rest: &[&str]| match rest {
        ["mod.rs"] => Some(None),
        [file] => stem(file).map(Some),
        [dir, _, ..] => Some(Some(dir.to_string())),
        [] => None,
    };
    if !path.ends_with(".rs") {
        return None;
    }
    match parts.as_slice() {
        ["api", _, ..] => Some(Layer::Api),
        ["core", rest @ ..] => part(rest).map(Layer::Core),
        ["controllers", rest @ ..] => part(rest).map(Layer::Controllers),
        ["cluster", _, ..] => Some(Layer::Cluster),
        ["http", _, ..] => Some(Layer::Http),
        ["notifiers", _, ..] => Some(Layer::Notifiers),
        ["plugin", _, ..] | ["bin", "kubectl-incident.rs"] => Some(Layer::Plugin),
        ["config", _, ..] => Some(Layer::Config),
        ["error.rs" | "metrics.rs" | "telemetry.rs"] => Some(Layer::Support),
        ["lib.rs" | "main.rs" | "operator.rs"] => Some(Layer::Wiring),
        _ => None,
    }
}

/// Binaries are their own crates; they reach the library as `incident_operator::`.
pub fn is_bin(path: &str) -> bool {
    path == "src/main.rs" || path.starts_with("src/bin/")
}

/// `src/core/lifecycle/decide.rs` -> `crate::core::lifecycle::decide`; `None` for binaries.
pub fn module_of(path: &str) -> Option<Vec<String>> {
    let rel = path.strip_prefix("src/")?.strip_suffix(".rs")?;
    if is_bin(path) {
        return None;
    }
    let mut module = vec!["crate".to_string()];
    if rel != "lib" {
        module.extend(rel.split('/').map(str::to_string));
    }
    if module.len() > 1 && module.last().is_some_and(|m| m == "mod") {
        module.pop();
    }
    Some(module)
}

/// The layer a resolved `crate::...` path lands in; `modules` are the library files' module paths.
pub fn target_layer(path: &[String], modules: &[Vec<String>]) -> Layer {
    let seg = |i: usize| path.get(i).map(String::as_str);
    let has_module = |len: usize| {
        modules
            .iter()
            .any(|m| m.len() >= len && m[..len] == path[..len])
    };
    // A domain/unit only when it is a module of its own, not an item re-exported by the root.
    let part = || seg(2).filter(|_| has_module(3)).map(str::to_string);
    match seg(1) {
        Some("api") => Layer::Api,
        Some("core") => Layer::Core(part()),
        Some("controllers") => Layer::Controllers(part()),
        Some("cluster") => Layer::Cluster,
        Some("http") => Layer::Http,
        Some("notifiers") => Layer::Notifiers,
        Some("plugin") => Layer::Plugin,
        Some("config") => Layer::Config,
        Some("error" | "metrics" | "telemetry" | "Error" | "Result") => Layer::Support,
        Some(other) if other != "operator" && has_module(2) => Layer::Outside(other.to_string()),
        _ => Layer::Wiring,
    }
}

/// The rule a `from -> to` import breaks, if any (rules 1-4).
pub fn broken_rule(
    from: &Layer,
    to: &Layer,
    domain_exceptions: &[(&str, &str, &str)],
) -> Option<u8> {
    use Layer::*;
    let excepted = |a: &str, b: &str| domain_exceptions.iter().any(|(f, t, _)| *f == a && *t == b);
    match (from, to) {
        (Wiring | Outside(_), _) => None,
        (Api, Api) => None,
        (Api, _) => Some(1),
        (Core(Some(a)), Core(Some(b)))
            if a != b && !SHARED_DOMAINS.contains(&b.as_str()) && !excepted(a, b) =>
        {
            Some(3)
        }
        (Core(_), Api | Core(_)) => None,
        (Core(_), _) => Some(2),
        (Cluster, Controllers(_) | Http | Plugin | Notifiers) => Some(4),
        (Controllers(Some(a)), Controllers(Some(b))) if a != b => Some(4),
        (Http | Plugin | Notifiers, Controllers(_)) => Some(4),
        (Config, Api | Core(_) | Config) => None,
        (Config, _) => Some(4),
        (Support, Api | Core(_) | Config | Support) => None,
        (Support, _) => Some(4),
        _ => None,
    }
}

/// The forbidden external path (rule 2) a core reference names, if any.
pub fn forbidden_in_core(reference: &Reference) -> Option<String> {
    if reference.internal {
        return None;
    }
    let path = &reference.path;
    let listed = CORE_FORBIDDEN.iter().any(|f| {
        let f: Vec<&str> = f.split("::").collect();
        path.len() >= f.len() && path.iter().zip(&f).all(|(a, b)| a == b)
    });
    let clock = path
        .windows(2)
        .any(|w| w[1] == "now" && CLOCKS.contains(&w[0].as_str()));
    (listed || clock).then(|| reference.joined())
}

/// Rule 5: files over `MAX_LINES` lines, and allowlist entries that no longer earn their place.
pub fn check_sizes(tree: &[(&str, &str)], oversized: &[(&str, &str)]) -> Vec<Violation> {
    let mut out = Vec::new();
    let violation = |file: &str, line, from: String, to: String| Violation {
        file: file.to_string(),
        line,
        from,
        to,
        rule: 5,
    };
    for (path, source) in tree {
        let counted = ["src/", "tests/", "benches/"]
            .iter()
            .any(|d| path.starts_with(d));
        let lines = source.lines().count();
        if counted
            && path.ends_with(".rs")
            && lines > MAX_LINES
            && !oversized.iter().any(|(p, _)| p == path)
        {
            out.push(violation(
                path,
                MAX_LINES + 1,
                format!("{lines} lines"),
                format!("at most {MAX_LINES}"),
            ));
        }
    }
    for (path, _) in oversized {
        let now = match tree.iter().find(|(p, _)| p == path) {
            None => "gone".to_string(),
            Some((_, s)) if s.lines().count() <= MAX_LINES => {
                format!("{} lines", s.lines().count())
            }
            Some(_) => continue,
        };
        out.push(violation(
            path,
            0,
            format!("allowlisted, {now}"),
            "remove it from the allowlist".into(),
        ));
    }
    out
}

/// One parsed source file of `src/`.
struct Scanned<'a> {
    path: &'a str,
    module: Option<Vec<String>>,
    refs: Vec<Reference>,
}

/// Rules 0-6 over the tree. `oversized`: `(path, why)` allowed over `MAX_LINES`;
/// `domain_exceptions`: `(from_domain, to_domain, reason)` core domain imports rule 3 lets through.
pub fn check(
    tree: &[(&str, &str)],
    oversized: &[(&str, &str)],
    domain_exceptions: &[(&str, &str, &str)],
) -> Vec<Violation> {
    let mut out = check_sizes(tree, oversized);
    let mut scanned = Vec::new();
    for (path, source) in tree
        .iter()
        .filter(|(p, _)| p.starts_with("src/") && p.ends_with(".rs"))
    {
        let module = module_of(path);
        let as_module = module.clone().unwrap_or_else(|| vec!["crate".into()]);
        match scan::scan(source, &as_module, is_bin(path)) {
            Ok(refs) => scanned.push(Scanned { path, module, refs }),
            Err(e) => out.push(Violation {
                file: path.to_string(),
                line: 1,
                from: "unparsable".into(),
                to: e,
                rule: 0,
            }),
        }
    }
    let modules: Vec<Vec<String>> = scanned.iter().filter_map(|s| s.module.clone()).collect();
    for file in &scanned {
        out.extend(check_layers(file, &modules, domain_exceptions));
    }
    out.extend(check_circles(&scanned));
    out.sort_by(|a, b| (&a.file, a.line, a.rule, &a.to).cmp(&(&b.file, b.line, b.rule, &b.to)));
    out.dedup();
    out
}

/// Rules 0-4 for one file.
fn check_layers(
    file: &Scanned,
    modules: &[Vec<String>],
    exceptions: &[(&str, &str, &str)],
) -> Vec<Violation> {
    let violation = |line, from: &dyn fmt::Display, to: String, rule| Violation {
        file: file.path.to_string(),
        line,
        from: from.to_string(),
        to,
        rule,
    };
    let Some(from) = file_layer(file.path) else {
        let name = file
            .module
            .as_ref()
            .map_or(file.path.to_string(), |m| m.join("::"));
        return vec![violation(1, &name, "outside the layered tree".into(), 0)];
    };
    let mut out = Vec::new();
    for r in &file.refs {
        if matches!(from, Layer::Core(_))
            && let Some(path) = forbidden_in_core(r)
        {
            out.push(violation(r.line, &from, path, 2));
        }
        // An alias repeats the `use` that was already checked.
        if !r.internal || r.kind == Kind::Alias {
            continue;
        }
        let to = target_layer(&r.path, modules);
        if let Some(rule) = broken_rule(&from, &to, exceptions) {
            out.push(violation(r.line, &from, to.to_string(), rule));
        }
    }
    out
}

/// Rule 6: strongly connected components of the file graph (without re-exports), one violation each.
fn check_circles(files: &[Scanned]) -> Vec<Violation> {
    // Edge (from, to) -> (first line, names taken).
    let mut edges: BTreeMap<(usize, usize), (usize, BTreeSet<String>)> = BTreeMap::new();
    for (from, file) in files.iter().enumerate() {
        for r in file
            .refs
            .iter()
            .filter(|r| r.internal && r.kind != Kind::ReExport)
        {
            let Some((to, len)) = owner(files, &r.path) else {
                continue;
            };
            // Importing a module itself takes nothing from its file; names used through it do.
            if to == from || (r.path.len() == len && !r.glob) {
                continue;
            }
            let name = r.path.get(len).cloned().unwrap_or_else(|| "*".into());
            let entry = edges.entry((from, to)).or_insert((r.line, BTreeSet::new()));
            entry.0 = entry.0.min(r.line);
            entry.1.insert(name);
        }
    }
    let mut adjacency = vec![Vec::new(); files.len()];
    edges.keys().for_each(|&(a, b)| adjacency[a].push(b));
    let mut out = Vec::new();
    for mut component in strongly_connected(&adjacency)
        .into_iter()
        .filter(|c| c.len() > 1)
    {
        component.sort_by_key(|&i| files[i].path);
        let mut inside: Vec<_> = edges
            .iter()
            .filter(|((a, b), _)| component.contains(a) && component.contains(b))
            .collect();
        inside.sort_by_key(|((a, b), _)| (files[*a].path, files[*b].path));
        let text: Vec<String> = inside
            .iter()
            .map(|((a, b), (_, names))| {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                format!(
                    "{} -> {} ({})",
                    files[*a].path,
                    files[*b].path,
                    names.join(", ")
                )
            })
            .collect();
        let first = component[0];
        let line = inside
            .iter()
            .filter(|((a, _), _)| *a == first)
            .map(|(_, (l, _))| *l)
            .min();
        out.push(Violation {
            file: files[first].path.to_string(),
            line: line.unwrap_or(1),
            from: "circle".into(),
            to: text.join("; "),
            rule: 6,
        });
    }
    out
}

/// The file holding a resolved path: the deepest library file whose module path is its prefix.
fn owner(files: &[Scanned], path: &[String]) -> Option<(usize, usize)> {
    files
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.module.as_ref().map(|m| (i, m)))
        .filter(|(_, m)| path.len() >= m.len() && path[..m.len()] == m[..])
        .max_by_key(|(_, m)| m.len())
        .map(|(i, m)| (i, m.len()))
}

/// Tarjan's algorithm; the graph has one node per file, so recursion depth stays small.
fn strongly_connected(adjacency: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        adjacency: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in &s.adjacency[v] {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(i) if s.on_stack[w] => s.low[v] = s.low[v].min(i),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let n = adjacency.len();
    let mut s = State {
        adjacency,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}
