//! Extracts the paths one source file refers to: every `use` leaf and every multi-segment path in
//! code (including macro bodies and attribute arguments), crate-internal ones resolved to
//! `crate::...` relative to the module they are written in.

use std::collections::{HashMap, HashSet};

use proc_macro2::{Spacing, TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{Item, ItemMod, ItemUse, Macro, MetaList, Path, UseTree, Visibility};

/// How a path was written; only `Code` via a `use` alias is a second sighting of the same dependency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A private `use` leaf.
    Use,
    /// A `use` with any visibility (`pub`, `pub(crate)`, ...): a re-export.
    ReExport,
    /// A path written in code, attributes or macro bodies.
    Code,
    /// A code path whose first segment is a name imported by a `use` of the same module.
    Alias,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Internal: resolved, starting with `crate`. External: as written, without a leading `::`.
    pub path: Vec<String>,
    pub line: usize,
    pub internal: bool,
    pub kind: Kind,
    /// `use path::*`: takes every name of `path`.
    pub glob: bool,
}

impl Reference {
    pub fn joined(&self) -> String {
        self.path.join("::")
    }
}

/// Scans `source` as the module `module` (`["crate", "core", "text"]`). In a binary (`bin`) the
/// library is `incident_operator::` and `crate`/`self`/`super` name the binary's own items (dropped).
pub fn scan(source: &str, module: &[String], bin: bool) -> Result<Vec<Reference>, String> {
    let file =
        syn::parse_file(source).map_err(|e| format!("line {}: {e}", e.span().start().line))?;
    let mut scanner = Scanner {
        bin,
        scopes: Vec::new(),
        refs: Vec::new(),
    };
    scanner.enter(module.to_vec(), &file.items);
    visit::visit_file(&mut scanner, &file);
    Ok(scanner.refs)
}

/// One `use` leaf before resolution.
struct Leaf {
    segments: Vec<String>,
    /// The name it binds (`None` for a glob).
    local: Option<String>,
    line: usize,
}

/// Names visible in one module body: child modules and what its `use` items bind internally.
struct Scope {
    module: Vec<String>,
    children: HashSet<String>,
    aliases: HashMap<String, Vec<String>>,
}

enum Resolved {
    Internal(Vec<String>, bool),
    External(Vec<String>),
    Local,
}

struct Scanner {
    bin: bool,
    scopes: Vec<Scope>,
    refs: Vec<Reference>,
}

impl Scanner {
    fn scope(&self) -> &Scope {
        self.scopes.last().expect("a module scope is always open")
    }

    /// Opens a module scope; aliases are collected first because a `use` may follow its use site.
    fn enter(&mut self, module: Vec<String>, items: &[Item]) {
        let children = items
            .iter()
            .filter_map(|item| match item {
                Item::Mod(m) => Some(m.ident.to_string()),
                _ => None,
            })
            .collect();
        self.scopes.push(Scope {
            module,
            children,
            aliases: HashMap::new(),
        });
        let mut aliases = HashMap::new();
        for item in items {
            let Item::Use(u) = item else { continue };
            for leaf in leaves(u) {
                let Some(local) = leaf.local.filter(|l| l != "_") else {
                    continue;
                };
                if let Resolved::Internal(path, _) = self.resolve(&leaf.segments, false) {
                    aliases.insert(local, path);
                }
            }
        }
        self.scopes.last_mut().expect("just pushed").aliases = aliases;
    }

    /// Resolves a path written in the current scope. `Internal(path, via_alias)`.
    fn resolve(&self, segments: &[String], leading_colon: bool) -> Resolved {
        let Some(first) = segments.first() else {
            return Resolved::Local;
        };
        if leading_colon {
            return Resolved::External(segments.to_vec());
        }
        let scope = self.scope();
        let rest = |n: usize| segments[n..].iter().cloned();
        let local_to_bin =
            ["crate", "self", "super"].contains(&first.as_str()) || scope.children.contains(first);
        if self.bin && local_to_bin {
            return Resolved::Local;
        }
        let internal = |path: Vec<String>| Resolved::Internal(path, false);
        match first.as_str() {
            "crate" => internal(
                std::iter::once("crate".to_string())
                    .chain(rest(1))
                    .collect(),
            ),
            "incident_operator" if self.bin => internal(
                std::iter::once("crate".to_string())
                    .chain(rest(1))
                    .collect(),
            ),
            "self" => internal(scope.module.iter().cloned().chain(rest(1)).collect()),
            "super" => {
                let ups = segments.iter().take_while(|s| *s == "super").count();
                // The crate root has no parent; keep `crate` so the path stays internal.
                let keep = scope.module.len().saturating_sub(ups).max(1);
                internal(
                    scope.module[..keep]
                        .iter()
                        .cloned()
                        .chain(rest(ups))
                        .collect(),
                )
            }
            _ if scope.children.contains(first) => {
                internal(scope.module.iter().cloned().chain(rest(0)).collect())
            }
            _ => match scope.aliases.get(first) {
                Some(path) => {
                    Resolved::Internal(path.iter().cloned().chain(rest(1)).collect(), true)
                }
                None => Resolved::External(segments.to_vec()),
            },
        }
    }

    fn record(
        &mut self,
        segments: &[String],
        leading_colon: bool,
        line: usize,
        kind: Kind,
        glob: bool,
    ) {
        let reference = match self.resolve(segments, leading_colon) {
            Resolved::Local => return,
            Resolved::Internal(path, via_alias) => {
                let kind = if via_alias && kind == Kind::Code {
                    Kind::Alias
                } else {
                    kind
                };
                Reference {
                    path,
                    line,
                    internal: true,
                    kind,
                    glob,
                }
            }
            Resolved::External(path) => Reference {
                path,
                line,
                internal: false,
                kind,
                glob,
            },
        };
        self.refs.push(reference);
    }

    /// Finds `a::b::c` chains in unparsed tokens (macro bodies, attribute arguments).
    fn scan_tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let is_colon =
            |t: Option<&TokenTree>| matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == ':');
        let mut i = 0;
        while i < trees.len() {
            match &trees[i] {
                TokenTree::Group(g) => self.scan_tokens(g.stream()),
                TokenTree::Ident(first) => {
                    // An ident after `::` or `.` continues a path or is a field/method: not a start.
                    let punct = |k: usize| match k.checked_sub(1).and_then(|k| trees.get(k)) {
                        Some(TokenTree::Punct(p)) => Some(p.as_char()),
                        _ => None,
                    };
                    let continues = punct(i) == Some('.')
                        || (punct(i) == Some(':') && punct(i - 1) == Some(':'));
                    let mut segments = vec![first.to_string()];
                    let mut j = i;
                    while let (Some(TokenTree::Punct(p)), true, Some(TokenTree::Ident(next))) = (
                        trees.get(j + 1),
                        is_colon(trees.get(j + 2)),
                        trees.get(j + 3),
                    ) {
                        if p.as_char() != ':' || p.spacing() != Spacing::Joint {
                            break;
                        }
                        segments.push(next.to_string());
                        j += 3;
                    }
                    if !continues && segments.len() > 1 {
                        self.record(
                            &segments,
                            false,
                            first.span().start().line,
                            Kind::Code,
                            false,
                        );
                    }
                    i = j;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

/// Flattens a `use` item into its leaves: groups, `self`, renames and globs.
fn leaves(item: &ItemUse) -> Vec<Leaf> {
    fn walk(tree: &UseTree, prefix: &mut Vec<String>, out: &mut Vec<Leaf>) {
        match tree {
            UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                walk(&p.tree, prefix, out);
                prefix.pop();
            }
            UseTree::Name(n) => out.push(leaf(prefix, &n.ident, None)),
            UseTree::Rename(r) => out.push(leaf(prefix, &r.ident, Some(r.rename.to_string()))),
            UseTree::Glob(g) => {
                let line = g.star_token.span.start().line;
                out.push(Leaf {
                    segments: prefix.clone(),
                    local: None,
                    line,
                });
            }
            UseTree::Group(g) => g.items.iter().for_each(|t| walk(t, prefix, out)),
        }
    }
    // `self` inside a group names the prefix itself.
    fn leaf(prefix: &[String], ident: &syn::Ident, rename: Option<String>) -> Leaf {
        let mut segments = prefix.to_vec();
        if ident != "self" || prefix.is_empty() {
            segments.push(ident.to_string());
        }
        let local = rename.or_else(|| segments.last().cloned());
        Leaf {
            segments,
            local,
            line: ident.span().start().line,
        }
    }
    let mut out = Vec::new();
    walk(&item.tree, &mut Vec::new(), &mut out);
    out
}

impl<'ast> Visit<'ast> for Scanner {
    fn visit_item_use(&mut self, item: &'ast ItemUse) {
        let kind = match item.vis {
            Visibility::Inherited => Kind::Use,
            _ => Kind::ReExport,
        };
        let leading_colon = item.leading_colon.is_some();
        for leaf in leaves(item) {
            let glob = leaf.local.is_none();
            self.record(&leaf.segments, leading_colon, leaf.line, kind, glob);
        }
    }

    fn visit_item_mod(&mut self, item: &'ast ItemMod) {
        item.attrs.iter().for_each(|a| self.visit_attribute(a));
        let Some((_, items)) = &item.content else {
            return;
        };
        let mut module = self.scope().module.clone();
        module.push(item.ident.to_string());
        self.enter(module, items);
        items.iter().for_each(|i| self.visit_item(i));
        self.scopes.pop();
    }

    // `pub(crate)` / `pub(in crate::x)` / `pub(super)` restrict visibility; they import nothing.
    fn visit_visibility(&mut self, _: &'ast Visibility) {}

    fn visit_path(&mut self, path: &'ast Path) {
        if path.segments.len() > 1 || path.leading_colon.is_some() {
            let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
            let line = path.segments[0].ident.span().start().line;
            self.record(
                &segments,
                path.leading_colon.is_some(),
                line,
                Kind::Code,
                false,
            );
        }
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast Macro) {
        self.visit_path(&mac.path);
        self.scan_tokens(mac.tokens.clone());
    }

    fn visit_meta_list(&mut self, list: &'ast MetaList) {
        self.visit_path(&list.path);
        self.scan_tokens(list.tokens.clone());
    }
}
