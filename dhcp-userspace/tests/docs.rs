//! Keeps `docs/configuration.md` in sync with the configuration parser, and checks the
//! packaged systemd unit.
//!
//! The keys the parser accepts are read from the serde `Raw*` structs of
//! `src/config/validate.rs` and `src/config/validate/v6.rs` (every one is
//! `deny_unknown_fields`, so those structs *are* the accepted TOML shape): starting at
//! `RawConfig`, each field is a key (kebab-cased where the struct says `rename_all`), and a
//! field whose type names another `Raw*` struct is a table to descend into. The reference must
//! then:
//!
//! - carry a "kitchen sink" TOML block that sets every key and is accepted by
//!   [`twinlease::config::parse`] (so no documented key is made up);
//! - list every key in the table of its section, and no key the parser does not have;
//! - and the source scan itself is checked against the running parser: every scanned table
//!   accepts the kitchen sink's keys and rejects an unknown one.
//!
//! Adding a field to a `Raw*` struct without documenting it fails `every_key_is_documented`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

// ---------------------------------------------------------------------------------------------
// The accepted keys, from the parser's source.

/// One `Raw*` type of the parser's source.
#[derive(Debug)]
enum RawType {
    /// A struct: its serde attributes and its fields `(toml name, type text)`.
    Struct {
        deny_unknown: bool,
        fields: Vec<(String, String)>,
    },
    /// An (untagged) enum: the `Raw*` types its variants hold.
    Enum { variants: Vec<String> },
}

fn kebab(name: &str) -> String {
    name.replace('_', "-")
}

/// The `Raw*` identifiers named in a type's text (`Option<Vec<RawPool>>` → `RawPool`).
fn raw_names(ty: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = ty.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if ty[i..].starts_with("Raw") && (i == 0 || !is_ident(bytes[i - 1])) {
            let end = ty[i..]
                .bytes()
                .position(|b| !is_ident(b))
                .map_or(ty.len(), |p| i + p);
            out.push(ty[i..end].to_owned());
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every `struct Raw…` / `enum Raw…` of `src`, with the serde attributes written above it.
fn scan_raw_types(src: &str, out: &mut BTreeMap<String, RawType>) {
    let lines: Vec<&str> = src.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        let decl = line
            .trim_start_matches("pub(in crate::config) ")
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("pub ");
        let kind = if decl.starts_with("struct Raw") {
            "struct"
        } else if decl.starts_with("enum Raw") {
            "enum"
        } else {
            i += 1;
            continue;
        };
        let name: String = decl[kind.len() + 1..]
            .bytes()
            .take_while(|&b| is_ident(b))
            .map(char::from)
            .collect();
        assert!(
            decl.ends_with('{'),
            "{name}: expected `{kind} {name} {{` on one line (docs.rs scans the source)"
        );
        // The attributes directly above the item.
        let mut attrs = String::new();
        let mut j = i;
        while j > 0 {
            let above = lines[j - 1].trim();
            if above.starts_with("#[") || above.starts_with("///") || above.starts_with("//") {
                attrs.push_str(above);
                attrs.push('\n');
                j -= 1;
            } else {
                break;
            }
        }
        let kebab_case = attrs.contains("rename_all = \"kebab-case\"");
        let deny_unknown = attrs.contains("deny_unknown_fields");
        // The body, up to the closing brace at column 0.
        let mut body = Vec::new();
        i += 1;
        while i < lines.len() && lines[i] != "}" {
            body.push(lines[i]);
            i += 1;
        }
        let item = if kind == "enum" {
            RawType::Enum {
                variants: body.iter().flat_map(|l| raw_names(l)).collect(),
            }
        } else {
            let mut fields = Vec::new();
            let mut rename: Option<String> = None;
            for l in body {
                let l = l.trim();
                if l.is_empty() || l.starts_with("//") {
                    continue;
                }
                if l.starts_with("#[") {
                    assert!(
                        !l.contains("flatten"),
                        "{name}: serde(flatten) is not understood by docs.rs: extend it"
                    );
                    if let Some(r) = l.split("rename = \"").nth(1) {
                        rename = Some(r.split('"').next().unwrap_or_default().to_owned());
                    }
                    continue;
                }
                let l = l
                    .trim_start_matches("pub(crate) ")
                    .trim_start_matches("pub(super) ")
                    .trim_start_matches("pub ");
                let (field, ty) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("{name}: cannot read the field line `{l}`"));
                let field = field.trim().trim_start_matches("r#");
                assert!(
                    field.bytes().all(is_ident),
                    "{name}: cannot read the field line `{l}`"
                );
                let toml_name = rename.take().unwrap_or_else(|| {
                    if kebab_case {
                        kebab(field)
                    } else {
                        field.to_owned()
                    }
                });
                fields.push((toml_name, ty.trim().trim_end_matches(',').to_owned()));
            }
            RawType::Struct {
                deny_unknown,
                fields,
            }
        };
        assert!(
            out.insert(name.clone(), item).is_none(),
            "{name} is declared twice"
        );
        i += 1;
    }
}

/// What the parser accepts: dotted keys (`server.xdp.ring-size`) and table paths
/// (`server.xdp`, `subnet4.pool`; arrays of tables are written without index).
#[derive(Debug, Default)]
struct Shape {
    keys: BTreeSet<String>,
    tables: BTreeSet<String>,
}

fn parser_sources() -> [String; 4] {
    [
        read("dhcp-userspace/src/config/validate.rs"),
        read("dhcp-userspace/src/config/validate/v6.rs"),
        read("dhcp-userspace/src/config/validate/failover.rs"),
        read("dhcp-userspace/src/config/validate/failover6.rs"),
    ]
}

fn parser_shape() -> Shape {
    shape_of(&parser_sources())
}

fn shape_of(sources: &[String]) -> Shape {
    let mut types = BTreeMap::new();
    for src in sources {
        scan_raw_types(src, &mut types);
    }
    assert!(types.contains_key("RawConfig"), "RawConfig not found");
    let mut shape = Shape::default();
    let mut visited = BTreeSet::new();
    walk(&types, "RawConfig", "", &mut shape, &mut visited);
    // Every Raw struct is reachable from RawConfig: a new one that is not would be a TOML
    // shape this scan cannot see.
    let unreached: Vec<_> = types.keys().filter(|t| !visited.contains(*t)).collect();
    assert!(
        unreached.is_empty(),
        "Raw types not reachable from RawConfig by field types: {unreached:?}"
    );
    shape
}

fn walk(
    types: &BTreeMap<String, RawType>,
    name: &str,
    path: &str,
    shape: &mut Shape,
    visited: &mut BTreeSet<String>,
) {
    visited.insert(name.to_owned());
    let join = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match &types[name] {
        RawType::Enum { variants } => {
            for v in variants {
                if types.contains_key(v) {
                    walk(types, v, path, shape, visited);
                }
            }
        }
        RawType::Struct {
            deny_unknown,
            fields,
        } => {
            assert!(
                deny_unknown,
                "{name} lacks deny_unknown_fields: unknown keys would be ignored silently"
            );
            if !path.is_empty() {
                shape.tables.insert(path.to_owned());
            }
            for (key, ty) in fields {
                let full = join(key);
                let nested: Vec<String> = raw_names(ty)
                    .into_iter()
                    .filter(|n| types.contains_key(n))
                    .collect();
                // A field holding a Raw struct is a table; one holding a Raw enum may be a
                // plain value (a key) as well as a table.
                let only_struct = !nested.is_empty()
                    && nested
                        .iter()
                        .all(|n| matches!(types[n], RawType::Struct { .. }));
                if !only_struct {
                    shape.keys.insert(full.clone());
                }
                for n in &nested {
                    walk(types, n, &full, shape, visited);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What docs/configuration.md documents.

const KITCHEN_SINK_MARK: &str = "<!-- kitchen-sink -->";

/// The TOML blocks right after each `<!-- kitchen-sink -->` marker (a second block holds
/// the keys that exclude keys of the first, such as `token` and `token-file`).
fn kitchen_sinks(doc: &str) -> Vec<String> {
    let blocks: Vec<String> = doc
        .split(KITCHEN_SINK_MARK)
        .skip(1)
        .map(|after| {
            let after = after.trim_start();
            let body = after
                .strip_prefix("```toml\n")
                .expect("a ```toml block follows each kitchen-sink marker");
            let len = body
                .find("\n```")
                .expect("the kitchen-sink block is closed");
            body[..len].to_owned()
        })
        .collect();
    assert!(
        !blocks.is_empty(),
        "docs/configuration.md has no {KITCHEN_SINK_MARK} marker"
    );
    blocks
}

/// The keys of the reference tables: under a `### ` heading naming a table (`` `[server]` ``,
/// `` `[[subnet4.pool]]` ``), each row whose first cell is a backticked key.
fn reference_tables(doc: &str) -> (BTreeMap<String, usize>, BTreeSet<String>) {
    let mut keys = BTreeMap::new();
    let mut headings = BTreeSet::new();
    let mut table: Option<String> = None;
    let mut in_fence = false;
    for line in doc.lines() {
        if line.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        if line.starts_with('#') {
            table = None;
            if let Some(h) = line.strip_prefix("### ")
                && let Some(path) = h
                    .split('`')
                    .nth(1)
                    .filter(|p| p.starts_with('['))
                    .map(|p| p.trim_matches(|c| c == '[' || c == ']').to_owned())
            {
                assert!(headings.insert(path.clone()), "heading {path} twice");
                table = Some(path);
            }
            continue;
        }
        let (Some(t), Some(row)) = (&table, line.strip_prefix("| `")) else {
            continue;
        };
        let key = row.split('`').next().unwrap_or_default();
        *keys.entry(format!("{t}.{key}")).or_insert(0) += 1;
    }
    (keys, headings)
}

/// Keys and table paths a TOML document sets.
fn toml_shape(v: &toml::Table, path: &str, shape: &mut Shape) {
    for (k, v) in v {
        let full = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match v {
            toml::Value::Table(t) => {
                shape.tables.insert(full.clone());
                toml_shape(t, &full, shape);
            }
            toml::Value::Array(a) if !a.is_empty() && a.iter().all(toml::Value::is_table) => {
                shape.tables.insert(full.clone());
                for t in a {
                    toml_shape(t.as_table().expect("checked"), &full, shape);
                }
            }
            _ => {
                shape.keys.insert(full);
            }
        }
    }
}

fn top_level(set: &BTreeSet<String>) -> BTreeSet<String> {
    set.iter().filter(|k| !k.contains('.')).cloned().collect()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn the_source_scan_finds_the_known_keys() {
    // Guards the scanner itself: if it silently found nothing, the other tests would pass.
    let shape = parser_shape();
    for k in [
        "server.data-dir",
        "server.listen6",
        "server.xdp.attach-mode",
        "control.token-file",
        "subnet4.relay-addresses",
        "subnet4.pool.range",
        "subnet4.reservation.hw-address",
        "subnet4.option.u16",
        "subnet6.pd-pool.excluded-prefix",
        "subnet6.interface-id",
        "subnet6.interface-id.hex",
        "subnet6.option.ips",
    ] {
        assert!(
            shape.keys.contains(k),
            "the scan missed {k}: {:?}",
            shape.keys
        );
    }
    assert!(shape.tables.contains("subnet6.interface-id"));
    assert!(!shape.keys.contains("server.xdp"), "a table is not a key");
    assert!(
        shape.keys.len() > 70,
        "only {} keys found",
        shape.keys.len()
    );
}

/// What `every_key_is_documented` relies on: a field added to a `Raw*` struct (here, in a
/// copy of the source) becomes a key the reference lacks.
#[test]
fn a_new_raw_field_is_seen_as_undocumented() {
    let [v4, v6, fo, fo6] = parser_sources();
    let patched = v4.replacen(
        "struct RawXdp {\n",
        "struct RawXdp {\n    #[serde(default)]\n    brand_new_knob: Option<u32>,\n",
        1,
    );
    assert_ne!(patched, v4, "RawXdp not found in validate.rs");
    let patched6 = v6.replacen(
        "struct RawPdPool6 {\n",
        "struct RawPdPool6 {\n    pub(crate) r#type: Option<String>,\n",
        1,
    );
    assert_ne!(patched6, v6, "RawPdPool6 not found in validate/v6.rs");
    let shape = shape_of(&[patched, patched6, fo, fo6]);
    let (documented, _) = reference_tables(&read("docs/configuration.md"));
    for key in ["server.xdp.brand-new-knob", "subnet6.pd-pool.type"] {
        assert!(shape.keys.contains(key), "{key} not seen: {:?}", shape.keys);
        assert!(!documented.contains_key(key));
    }
    assert_eq!(shape.keys.len(), parser_shape().keys.len() + 2);
}

#[test]
fn kitchen_sink_parses_and_sets_every_key() {
    let doc = read("docs/configuration.md");
    let mut sink = Shape::default();
    for (i, text) in kitchen_sinks(&doc).iter().enumerate() {
        if let Err(e) = twinlease::config::parse(text, "docs/configuration.md") {
            panic!("kitchen-sink block {i} does not load:\n{e}");
        }
        let table: toml::Table = text.parse().expect("valid TOML");
        toml_shape(&table, "", &mut sink);
    }
    let parser = parser_shape();
    let missing: Vec<_> = parser.keys.difference(&sink.keys).collect();
    assert!(
        missing.is_empty(),
        "keys the parser accepts that the kitchen-sink block does not set: {missing:?}"
    );
    let missing: Vec<_> = parser.tables.difference(&sink.tables).collect();
    assert!(
        missing.is_empty(),
        "tables not in the kitchen sink: {missing:?}"
    );
    // The reverse cannot happen once it parses (deny_unknown_fields), but a scan gap could.
    let extra: Vec<_> = sink.keys.difference(&parser.keys).collect();
    assert!(
        extra.is_empty(),
        "kitchen-sink keys the scan does not know: {extra:?}"
    );
}

#[test]
fn every_key_is_documented() {
    let doc = read("docs/configuration.md");
    let (documented, headings) = reference_tables(&doc);
    let parser = parser_shape();
    let undocumented: Vec<_> = parser
        .keys
        .iter()
        .filter(|k| !documented.contains_key(*k))
        .collect();
    assert!(
        undocumented.is_empty(),
        "keys the parser accepts with no row in docs/configuration.md: {undocumented:?}"
    );
    let unknown: Vec<_> = documented
        .keys()
        .filter(|k| !parser.keys.contains(*k))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/configuration.md documents keys the parser rejects: {unknown:?}"
    );
    let twice: Vec<_> = documented.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "keys documented twice: {twice:?}");
    // Every table has its section (top-level tables included), and no section is invented.
    let mut tables = parser.tables.clone();
    tables.extend(top_level(&parser.keys));
    let no_section: Vec<_> = tables.difference(&headings).collect();
    assert!(
        no_section.is_empty(),
        "tables without a ### section: {no_section:?}"
    );
    let invented: Vec<_> = headings.difference(&tables).collect();
    assert!(
        invented.is_empty(),
        "sections for tables that do not exist: {invented:?}"
    );
}

/// Cross-checks the source scan against the running parser: every table the scan found
/// rejects an unknown key (`deny_unknown_fields` really applies), so "every key the scan
/// found is documented" means "every key the parser accepts is documented".
#[test]
fn every_scanned_table_rejects_unknown_keys() {
    let doc = read("docs/configuration.md");
    let base: toml::Table = kitchen_sinks(&doc)[0].parse().expect("valid TOML");
    let parser = parser_shape();
    let mut tables: Vec<String> = vec![String::new()];
    tables.extend(parser.tables.iter().cloned());
    let unchanged = toml::to_string(&base).expect("serialises");
    if let Err(e) = twinlease::config::parse(&unchanged, "probe") {
        panic!("the kitchen sink no longer loads once re-serialised: {e}");
    }
    for path in tables {
        let mut doc = base.clone();
        let mut t = &mut doc;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            let v = t
                .get_mut(part)
                .unwrap_or_else(|| panic!("kitchen sink lacks {path}"));
            // Into the first table of an array of tables; past an inline-table value.
            let v = match v {
                toml::Value::Array(a) => a
                    .iter_mut()
                    .find(|x| x.is_table())
                    .unwrap_or_else(|| panic!("{path}: empty array")),
                other => other,
            };
            t = v
                .as_table_mut()
                .unwrap_or_else(|| panic!("{path}: {part} is not a table"));
        }
        t.insert("surely-not-a-key".into(), toml::Value::Boolean(true));
        let text = toml::to_string(&doc).expect("serialises");
        let err = twinlease::config::parse(&text, "probe")
            .expect_err(&format!("an unknown key in [{path}] was accepted"));
        // Only the inserted key differs from a document that loads. serde names the key,
        // except inside an untagged enum (`interface-id = { … }`), where it reports that no
        // variant matched.
        let e = err.to_string();
        assert!(
            e.contains("surely-not-a-key") || e.contains("did not match any variant"),
            "[{path}]: unexpected error: {e}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The systemd unit.

fn unit_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn caps(lines: &[(String, String)], key: &str) -> BTreeSet<String> {
    lines
        .iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| v.split_whitespace().map(str::to_owned))
        .collect()
}

#[test]
fn the_unit_grants_only_the_needed_capabilities() {
    let unit = unit_lines(&read("packaging/twinlease.service"));
    let xdp = unit_lines(&read("packaging/twinlease.service.d/xdp.conf"));
    let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    let socket_path = set(&["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"]);
    assert_eq!(caps(&unit, "AmbientCapabilities"), socket_path);
    assert_eq!(caps(&unit, "CapabilityBoundingSet"), socket_path);
    let xdp_adds = set(&["CAP_BPF", "CAP_NET_ADMIN"]);
    assert_eq!(caps(&xdp, "AmbientCapabilities"), xdp_adds);
    assert_eq!(caps(&xdp, "CapabilityBoundingSet"), xdp_adds);
    let get = |lines: &[(String, String)], key: &str| {
        lines
            .iter()
            .find(|(k, _)| k == key)
            .map_or_else(|| panic!("{key} not set"), |(_, v)| v.clone())
    };
    assert_eq!(get(&unit, "User"), "twinlease");
    assert_eq!(get(&unit, "DynamicUser"), "no");
    assert_eq!(get(&unit, "StateDirectory"), "twinlease");
    assert_eq!(get(&unit, "NoNewPrivileges"), "yes");
    assert_eq!(get(&unit, "ProtectSystem"), "strict");
    assert_eq!(
        get(&unit, "ExecStart"),
        "/usr/bin/twinlease run --config /etc/twinlease/twinlease.toml"
    );
    assert_eq!(
        get(&unit, "ExecStartPre"),
        "/usr/bin/twinlease check-config /etc/twinlease/twinlease.toml"
    );
    // The data directory of the example the unit points operators to is the StateDirectory.
    let cfg = twinlease::config::load(&root().join("packaging/twinlease.toml")).expect("loads");
    assert_eq!(cfg.server.data_dir, Path::new("/var/lib/twinlease"));
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    assert!(out.status.success());
    // verify needs the unit under its own name and the ExecStart binary to exist: copy the
    // unit into a temporary directory with ExecStart pointing at a binary that does exist.
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_twinlease");
    for (src, dst) in [
        ("packaging/twinlease.service", "twinlease.service"),
        (
            "packaging/twinlease.service.d/xdp.conf",
            "twinlease.service.d/xdp.conf",
        ),
    ] {
        let text = read(src).replace("/usr/bin/twinlease", bin);
        let dst = dir.path().join(dst);
        std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
        std::fs::write(dst, text).expect("write");
    }
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("twinlease.service"))
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.path().display()))
        .output()
        .expect("runs systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Complaints about the host (no running systemd, missing unrelated units) are not ours;
    // anything that names our unit is.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("twinlease")).collect();
    assert!(
        ours.is_empty() && (out.status.success() || !stderr.contains("twinlease")),
        "systemd-analyze verify: {stderr}"
    );
}
