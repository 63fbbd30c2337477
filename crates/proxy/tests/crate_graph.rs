//! The crate graph enforces sans-IO (issue 7): the wire layer, the call event model,
//! the call tracker and the proxy core resolve to no async runtime and no socket crate,
//! and the production CTI client does not link the HTTP server the Zammad double uses;
//! nor do the sans-IO crates link the embedded store (crates/store, SQLite).
//!
//! Reads `cargo metadata` (the resolved graph of the whole workspace) and follows only
//! normal dependencies (not dev- or build-dependencies) from each crate.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// The resolved workspace graph: package id -> (name, normal dependency ids), and
/// package name -> id of the workspace members.
struct Graph {
    names: HashMap<String, String>,
    normal_deps: HashMap<String, Vec<String>>,
    members: HashMap<String, String>,
}

fn graph() -> Graph {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let mut names = HashMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        names.insert(
            p["id"].as_str().unwrap().to_string(),
            p["name"].as_str().unwrap().to_string(),
        );
    }
    let members = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .map(|id| {
            let id = id.as_str().unwrap().to_string();
            (names[&id].clone(), id)
        })
        .collect();
    let mut normal_deps = HashMap::new();
    for n in meta["resolve"]["nodes"].as_array().expect("resolve.nodes") {
        let deps = n["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| d["pkg"].as_str().unwrap().to_string())
            .collect();
        normal_deps.insert(n["id"].as_str().unwrap().to_string(), deps);
    }
    Graph {
        names,
        normal_deps,
        members,
    }
}

impl Graph {
    /// Names of every package in the normal dependency closure of workspace member `name`.
    fn closure(&self, name: &str) -> BTreeSet<String> {
        let root = self
            .members
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not a workspace member"));
        let mut seen = BTreeSet::new();
        let mut todo = vec![root.clone()];
        while let Some(id) = todo.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            todo.extend(self.normal_deps[&id].iter().cloned());
        }
        seen.into_iter().map(|id| self.names[&id].clone()).collect()
    }
}

/// The packages of `forbidden` found in the normal closure of `krate`.
fn offenders(g: &Graph, krate: &str, forbidden: &[&str]) -> Vec<String> {
    let c = g.closure(krate);
    forbidden
        .iter()
        .filter(|f| c.contains(**f))
        .map(|f| f.to_string())
        .collect()
}

#[test]
fn sans_io_crates_link_no_runtime_and_no_sockets() {
    let g = graph();
    for krate in [
        "sipcti-wire",
        "sipcti-event",
        "sipcti-table",
        "sipcti-dialog",
        "sipcti-core",
    ] {
        let bad = offenders(&g, krate, &["tokio", "mio", "socket2"]);
        assert!(
            bad.is_empty(),
            "{krate} must stay sans-IO, but its normal dependencies include {bad:?}"
        );
    }
}

#[test]
fn cti_client_does_not_link_the_double_server() {
    let g = graph();
    let bad = offenders(&g, "sipcti-cti", &["axum", "sipcti-zammad-double"]);
    assert!(
        bad.is_empty(),
        "sipcti-cti must not link the Zammad double's HTTP server, but its normal dependencies include {bad:?}"
    );
}

#[test]
fn rsip_stays_out_of_the_crates_that_read_what_is_received() {
    // rsip 0.4 builds what the demo writes; it mangles received input
    // (crates/wire/tests/rsip_vs_wire.rs), so it is at most a dev-dependency here
    let g = graph();
    for krate in [
        "sipcti-wire",
        "sipcti-transport",
        "sipcti-event",
        "sipcti-dialog",
        "sipcti-core",
        "sipcti-cti",
    ] {
        let bad = offenders(&g, krate, &["rsip"]);
        assert!(
            bad.is_empty(),
            "{krate} must not depend on rsip (only the demo builds with it)"
        );
    }
}

#[test]
fn sans_io_crates_do_not_link_the_store() {
    // the store (crates/store) is an edge crate doing file I/O through SQLite; the core
    // hands binding changes to the edge, which writes them
    let g = graph();
    for krate in [
        "sipcti-wire",
        "sipcti-event",
        "sipcti-table",
        "sipcti-dialog",
        "sipcti-core",
    ] {
        let bad = offenders(&g, krate, &["sipcti-store", "rusqlite", "libsqlite3-sys"]);
        assert!(
            bad.is_empty(),
            "{krate} must stay sans-IO, but its normal dependencies include {bad:?}"
        );
    }
}

#[test]
fn the_check_sees_what_it_should() {
    // the closure is not vacuous: the binary crate does link tokio and the core
    let g = graph();
    let c = g.closure("sipcti-proxy");
    for name in [
        "tokio",
        "sipcti-core",
        "sipcti-wire",
        "sipcti-zammad-double",
        "rsip",
    ] {
        assert!(c.contains(name), "sipcti-proxy should depend on {name}");
    }
    assert!(g.closure("sipcti-core").contains("sipcti-wire"));
    assert!(g.closure("sipcti-core").contains("sipcti-table"));
    // the store's closure does hold what the sans-IO crates are checked against
    let store = g.closure("sipcti-store");
    for name in ["rusqlite", "libsqlite3-sys", "sipcti-wire"] {
        assert!(store.contains(name), "sipcti-store should depend on {name}");
    }
}
