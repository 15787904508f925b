//! Small in-memory trees proving each rule fires where it should and stays quiet where it should
//! not.

use crate::rules::{self, Layer, Violation};
use crate::scan::{self, Kind};

fn run(tree: &[(&str, &str)]) -> Vec<String> {
    run_with(tree, &[], &[])
}

fn run_with(
    tree: &[(&str, &str)],
    oversized: &[(&str, &str)],
    exceptions: &[(&str, &str, &str)],
) -> Vec<String> {
    rules::check(tree, oversized, exceptions)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn module(path: &str) -> Vec<String> {
    path.split("::").map(str::to_string).collect()
}

#[test]
fn violation_line_format() {
    let v = Violation {
        file: "src/core/detection/group.rs".into(),
        line: 14,
        from: "core::detection".into(),
        to: "core::lifecycle".into(),
        rule: 3,
    };
    assert_eq!(
        v.to_string(),
        "src/core/detection/group.rs:14  core::detection -> core::lifecycle  (rule 3)"
    );
}

#[test]
fn files_map_to_layers_by_path() {
    let cases = [
        ("src/api/incident.rs", Some(Layer::Api)),
        ("src/core/mod.rs", Some(Layer::Core(None))),
        ("src/core/text.rs", Some(Layer::Core(Some("text".into())))),
        (
            "src/core/detection/group.rs",
            Some(Layer::Core(Some("detection".into()))),
        ),
        ("src/controllers/mod.rs", Some(Layer::Controllers(None))),
        (
            "src/controllers/incident/mod.rs",
            Some(Layer::Controllers(Some("incident".into()))),
        ),
        ("src/cluster/apply.rs", Some(Layer::Cluster)),
        ("src/bin/kubectl-incident.rs", Some(Layer::Plugin)),
        ("src/metrics.rs", Some(Layer::Support)),
        ("src/operator.rs", Some(Layer::Wiring)),
        ("src/events.rs", None),
        ("src/bin/other.rs", None),
    ];
    for (path, layer) in cases {
        assert_eq!(rules::file_layer(path), layer, "{path}");
    }
    assert_eq!(
        rules::module_of("src/core/lifecycle/decide.rs"),
        Some(module("crate::core::lifecycle::decide"))
    );
    assert_eq!(
        rules::module_of("src/core/lifecycle/mod.rs"),
        Some(module("crate::core::lifecycle"))
    );
    assert_eq!(rules::module_of("src/lib.rs"), Some(module("crate")));
    assert_eq!(rules::module_of("src/main.rs"), None);
}

#[test]
fn targets_map_to_layers_by_module_path() {
    let modules = [
        module("crate::core"),
        module("crate::core::detection::group"),
        module("crate::events"),
    ];
    let layer = |p: &str| rules::target_layer(&module(p), &modules);
    assert_eq!(
        layer("crate::core::detection::group::Problem"),
        Layer::Core(Some("detection".into()))
    );
    // An item re-exported by the core root is the root, not a domain.
    assert_eq!(layer("crate::core::Problem"), Layer::Core(None));
    assert_eq!(layer("crate::Error"), Layer::Support);
    assert_eq!(layer("crate::Result"), Layer::Support);
    assert_eq!(layer("crate::run"), Layer::Wiring);
    assert_eq!(
        layer("crate::events::Recorder"),
        Layer::Outside("events".into())
    );
}

#[test]
fn use_trees_expand_and_resolve_relative_to_their_module() {
    let source = "use crate::{api::X as Y, core::{self, text, detection::group::*}};\n\
                  use self::inner::Z;\n\
                  use super::super::Top;\n\
                  mod inner { pub struct Z; }\n";
    let refs = scan::scan(source, &module("crate::cluster::apply"), false).unwrap();
    let paths: Vec<(String, bool)> = refs.iter().map(|r| (r.joined(), r.glob)).collect();
    let expected = [
        ("crate::api::X", false),
        ("crate::core", false),
        ("crate::core::text", false),
        ("crate::core::detection::group", true),
        ("crate::cluster::apply::inner::Z", false),
        ("crate::Top", false),
    ];
    let expected: Vec<(String, bool)> = expected.iter().map(|(p, g)| (p.to_string(), *g)).collect();
    assert_eq!(paths, expected);
}

#[test]
fn use_super_glob_in_mod_tests_is_the_files_own_module() {
    let source = "pub fn f() {}\n\
                  #[cfg(test)]\n\
                  mod tests {\n\
                      use super::*;\n\
                      #[test]\n\
                      fn t() { f(); self::helper(); }\n\
                      fn helper() {}\n\
                  }\n";
    let refs = scan::scan(source, &module("crate::core::detection::group"), false).unwrap();
    let glob = refs.iter().find(|r| r.glob).expect("the glob import");
    assert_eq!(
        (glob.joined(), glob.line, glob.kind),
        ("crate::core::detection::group".into(), 4, Kind::Use)
    );
    assert!(
        refs.iter()
            .any(|r| r.joined() == "crate::core::detection::group::tests::helper")
    );
    let tree = [("src/core/detection/group.rs", source)];
    assert_eq!(run(&tree), Vec::<String>::new());
}

#[test]
fn core_importing_cluster_through_a_grouped_use_tree() {
    let tree = [
        ("src/api/mod.rs", "pub struct Incident;\n"),
        ("src/cluster/mod.rs", "pub mod apply;\n"),
        ("src/cluster/apply.rs", "pub fn write() {}\n"),
        ("src/core/mod.rs", "pub mod detection;\n"),
        ("src/core/detection/mod.rs", "pub mod group;\n"),
        (
            "src/core/detection/group.rs",
            "use crate::{\n    api::Incident,\n    cluster::{self,\n        apply::write},\n};\n",
        ),
    ];
    assert_eq!(
        run(&tree),
        [
            "src/core/detection/group.rs:3  core::detection -> cluster  (rule 2)",
            "src/core/detection/group.rs:4  core::detection -> cluster  (rule 2)",
        ]
    );
}

#[test]
fn super_super_into_another_core_domain() {
    let tree = [
        ("src/core/lifecycle/decide.rs", "pub enum Phase { Open }\n"),
        ("src/core/text.rs", "pub struct Line;\n"),
        (
            "src/core/detection/group.rs",
            "use super::super::text::Line;\nuse super::super::lifecycle::decide::Phase;\n",
        ),
    ];
    assert_eq!(
        run(&tree),
        ["src/core/detection/group.rs:2  core::detection -> core::lifecycle  (rule 3)"]
    );
    let exceptions = [(
        "detection",
        "lifecycle",
        "detection reads the phase while it is being split out",
    )];
    assert_eq!(run_with(&tree, &[], &exceptions), Vec::<String>::new());
}

#[test]
fn core_domain_may_use_text_timeline_and_the_core_root() {
    let tree = [
        (
            "src/core/mod.rs",
            "pub mod detection;\npub mod text;\npub mod timeline;\npub struct Settings;\n",
        ),
        (
            "src/core/text.rs",
            "pub struct Line;\npub fn render() -> String { String::new() }\n",
        ),
        ("src/core/timeline.rs", "pub struct Entry;\n"),
        (
            "src/core/detection/group.rs",
            "use crate::core::text::{self, Line};\n\
             use super::super::timeline::Entry;\n\
             use crate::core::Settings;\n\
             use crate::api::Incident;\n\
             pub fn f() -> String { text::render() }\n",
        ),
    ];
    assert_eq!(run(&tree), Vec::<String>::new());
}

#[test]
fn inline_crate_paths_in_function_bodies_and_macros() {
    let cluster = "pub fn go() {\n\
                   \x20   let x = 1;\n\
                   \x20   crate::controllers::incident::f(x);\n\
                   \x20   println!(\"{}\", crate::http::port());\n\
                   }\n";
    let tree = [
        ("src/cluster/apply.rs", cluster),
        ("src/controllers/incident/mod.rs", "pub fn f(_: i32) {}\n"),
    ];
    assert_eq!(
        run(&tree),
        [
            "src/cluster/apply.rs:3  cluster -> controllers::incident  (rule 4)",
            "src/cluster/apply.rs:4  cluster -> http  (rule 4)",
        ]
    );
}

const CLOCKS_AND_RUNTIME: &str = "use jiff::Timestamp;\n\
    use kube::{ResourceExt, core::ObjectMeta};\n\
    pub async fn a() -> Timestamp {\n\
    \x20   tokio::spawn(async {});\n\
    \x20   let _ = Timestamp::now();\n\
    \x20   tokio::select! { _ = async {} => {} }\n\
    \x20   jiff::Timestamp::now()\n\
    }\n\
    pub fn b(now: Timestamp) -> serde_json::Value { serde_json::json!({ \"at\": now.to_string() }) }\n";

#[test]
fn core_may_not_spawn_or_read_the_clock() {
    let tree = [("src/core/detection/settings.rs", CLOCKS_AND_RUNTIME)];
    assert_eq!(
        run(&tree),
        [
            "src/core/detection/settings.rs:4  core::detection -> tokio::spawn  (rule 2)",
            "src/core/detection/settings.rs:5  core::detection -> Timestamp::now  (rule 2)",
            "src/core/detection/settings.rs:6  core::detection -> tokio::select  (rule 2)",
            "src/core/detection/settings.rs:7  core::detection -> jiff::Timestamp::now  (rule 2)",
        ]
    );
    // The shell may.
    assert_eq!(
        run(&[("src/controllers/detector.rs", CLOCKS_AND_RUNTIME)]),
        Vec::<String>::new()
    );
}

#[test]
fn core_may_not_touch_the_filesystem_env_or_instant() {
    let tree = [(
        "src/core/text.rs",
        "use std::fs;\nuse std::{env, time::{Duration, Instant}};\n",
    )];
    assert_eq!(
        run(&tree),
        [
            "src/core/text.rs:1  core::text -> std::fs  (rule 2)",
            "src/core/text.rs:2  core::text -> std::env  (rule 2)",
            "src/core/text.rs:2  core::text -> std::time::Instant  (rule 2)",
        ]
    );
}

#[test]
fn a_controller_unit_does_not_import_another() {
    let tree = [
        (
            "src/controllers/mod.rs",
            "pub mod incident;\npub mod runbook;\npub use runbook::reconcile;\npub struct Context;\n",
        ),
        (
            "src/controllers/incident/mod.rs",
            "use crate::controllers::runbook::reconcile;\n\
             use super::runbook;\n\
             use crate::cluster::apply;\n\
             use crate::controllers::Context;\n",
        ),
        ("src/controllers/runbook.rs", "pub fn reconcile() {}\n"),
    ];
    assert_eq!(
        run(&tree),
        [
            "src/controllers/incident/mod.rs:1  controllers::incident -> controllers::runbook  (rule 4)",
            "src/controllers/incident/mod.rs:2  controllers::incident -> controllers::runbook  (rule 4)",
        ]
    );
}

#[test]
fn config_and_support_stay_below_the_shell() {
    let tree = [
        (
            "src/config/mod.rs",
            "use crate::cluster::Client;\nuse crate::core::text::Line;\nuse crate::api::Incident;\n",
        ),
        (
            "src/error.rs",
            "use crate::config::Settings;\nuse crate::http::Server;\n",
        ),
        ("src/api/mod.rs", "use crate::Error;\n"),
    ];
    assert_eq!(
        run(&tree),
        [
            "src/api/mod.rs:1  api -> support  (rule 1)",
            "src/config/mod.rs:1  config -> cluster  (rule 4)",
            "src/error.rs:2  support -> http  (rule 4)",
        ]
    );
}

#[test]
fn files_outside_the_layered_tree_and_binaries() {
    let plugin = "use incident_operator::{api::Incident, controllers::incident::run};\n\
                  mod local { pub fn f() {} }\n\
                  fn main() { crate::local::f(); local::f(); }\n";
    let tree = [
        ("src/events.rs", "pub fn f() {}\n"),
        ("src/bin/other.rs", "fn main() {}\n"),
        ("src/bin/kubectl-incident.rs", plugin),
        ("src/controllers/incident.rs", "pub fn run() {}\n"),
        ("src/core/text.rs", "use crate::events::f;\n"),
    ];
    assert_eq!(
        run(&tree),
        [
            "src/bin/kubectl-incident.rs:1  plugin -> controllers::incident  (rule 4)",
            "src/bin/other.rs:1  src/bin/other.rs -> outside the layered tree  (rule 0)",
            "src/core/text.rs:1  core::text -> crate::events (outside the layered tree)  (rule 2)",
            "src/events.rs:1  crate::events -> outside the layered tree  (rule 0)",
        ]
    );
}

#[test]
fn files_over_600_lines_and_a_stale_allowlist() {
    let over = "//\n".repeat(601);
    let limit = "//\n".repeat(600);
    let allowed = "//\n".repeat(700);
    let tree = [
        ("src/api/big.rs", over.as_str()),
        ("tests/ok.rs", limit.as_str()),
        ("benches/huge.rs", allowed.as_str()),
    ];
    assert_eq!(
        run(&tree),
        [
            "benches/huge.rs:601  700 lines -> at most 600  (rule 5)",
            "src/api/big.rs:601  601 lines -> at most 600  (rule 5)"
        ]
    );
    let oversized = [
        ("benches/huge.rs", "generated table"),
        ("src/gone.rs", "was big"),
        ("tests/ok.rs", "was big"),
    ];
    assert_eq!(
        run_with(&tree, &oversized, &[]),
        [
            "src/api/big.rs:601  601 lines -> at most 600  (rule 5)",
            "src/gone.rs:0  allowlisted, gone -> remove it from the allowlist  (rule 5)",
            "tests/ok.rs:0  allowlisted, 600 lines -> remove it from the allowlist  (rule 5)",
        ]
    );
}

#[test]
fn a_two_file_circle_is_one_violation() {
    let tree = [
        ("src/cluster/mod.rs", "pub mod a;\npub mod b;\n"),
        (
            "src/cluster/a.rs",
            "use super::b::{Pass, write_problem};\npub const FIELD_MANAGER: &str = \"x\";\n",
        ),
        (
            "src/cluster/b.rs",
            "use super::a::FIELD_MANAGER;\npub struct Pass;\npub fn write_problem() {}\n",
        ),
    ];
    assert_eq!(
        run(&tree),
        [
            "src/cluster/a.rs:1  circle -> src/cluster/a.rs -> src/cluster/b.rs (Pass, write_problem); \
          src/cluster/b.rs -> src/cluster/a.rs (FIELD_MANAGER)  (rule 6)"
        ]
    );
}

#[test]
fn a_circle_through_a_module_alias_and_inline_paths() {
    let tree = [
        (
            "src/cluster/a.rs",
            "use super::b;\npub fn f() { b::g(); }\npub fn h() {}\n",
        ),
        ("src/cluster/b.rs", "pub fn g() {\n    super::a::h();\n}\n"),
    ];
    assert_eq!(
        run(&tree),
        [
            "src/cluster/a.rs:2  circle -> src/cluster/a.rs -> src/cluster/b.rs (g); src/cluster/b.rs -> src/cluster/a.rs (h)  (rule 6)"
        ]
    );
}

#[test]
fn a_pub_use_re_export_does_not_close_a_circle() {
    let root = "pub mod detection;\npub use detection::group::Problem;\npub struct Settings;\n";
    let group = "use crate::core::Settings;\npub struct Problem;\n";
    let tree = [
        ("src/core/mod.rs", root),
        ("src/core/detection/mod.rs", "pub mod group;\n"),
        ("src/core/detection/group.rs", group),
    ];
    assert_eq!(run(&tree), Vec::<String>::new());
    // The same import without `pub` is a real dependency of the root on the domain.
    let root = root.replace("pub use", "use");
    let tree = [("src/core/mod.rs", root.as_str()), tree[1], tree[2]];
    assert_eq!(
        run(&tree),
        [
            "src/core/detection/group.rs:1  circle -> src/core/detection/group.rs -> src/core/mod.rs (Settings); \
          src/core/mod.rs -> src/core/detection/group.rs (Problem)  (rule 6)"
        ]
    );
}
