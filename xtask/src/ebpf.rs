//! `cargo xtask ebpf [--check]`: rebuild the XDP program into `dhcp-ebpf/prebuilt/`, or
//! check that the committed object matches a fresh build of the source.
//!
//! The build is the one `dhcp-userspace/build.rs` makes through aya-build (same toolchain,
//! target, flags), into `target/ebpf/`.
//!
//! The check compares bytes first. Builds are byte-reproducible on one machine, but the
//! debug info (DWARF, and the line info in `.BTF.ext`) records the absolute paths of the
//! checkout and of the toolchain, so a clone elsewhere gives other bytes. When the bytes
//! differ, the check compares what the kernel runs: with the `object` crate, the bytes of
//! every executable section (the programs), of `license`, `maps` and `.maps`, and their
//! relocations (offset, kind and target symbol name). Any difference there fails.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget, SectionKind};

use crate::Error;

/// The committed object, relative to the workspace root.
const PREBUILT: &str = "dhcp-ebpf/prebuilt/dhcp-xdp.o";

/// Runs the command; `args` is empty or `["--check"]`.
pub fn run(args: &[String]) -> Result<(), Error> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        other => return Err(format!("usage: cargo xtask ebpf [--check], got {other:?}").into()),
    };
    let root = twinlease_tests::workspace_root();
    let fresh = build(&root)?;
    let committed = root.join(PREBUILT);
    if check {
        compare(&committed, &fresh)
    } else {
        fs::copy(&fresh, &committed)?;
        println!("xtask ebpf: wrote {}", committed.display());
        Ok(())
    }
}

/// Builds the program as aya-build does and returns the object's path.
fn build(root: &Path) -> Result<PathBuf, Error> {
    let target_dir = root.join("target").join("ebpf");
    let arch = std::env::consts::ARCH;
    // aya-build's flags: the BPF target architecture cfg, full debug info, and BTF from it.
    let rustflags = [
        format!("--cfg=bpf_target_arch=\"{arch}\""),
        "-Cdebuginfo=2".into(),
        "-Clink-arg=--btf".into(),
    ]
    .join("\x1f");
    let mut cmd = Command::new("rustup");
    cmd.current_dir(root.join("dhcp-ebpf"))
        .args([
            "run",
            "nightly",
            "cargo",
            "build",
            "--package",
            "dhcp-ebpf",
            "--bins",
        ])
        .args([
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTUP_TOOLCHAIN");
    let status = crate::run_verbose(&mut cmd)?;
    if !status.success() {
        return Err(format!(
            "building the XDP program failed ({status}); it needs `rustup component add \
             rust-src --toolchain nightly` and `cargo install bpf-linker@0.10.4 --locked`"
        )
        .into());
    }
    Ok(target_dir
        .join("bpfel-unknown-none")
        .join("release")
        .join("dhcp-xdp"))
}

/// Fails when `committed` and `fresh` differ in what the kernel loads.
fn compare(committed: &Path, fresh: &Path) -> Result<(), Error> {
    let old = fs::read(committed).map_err(|e| format!("{}: {e}", committed.display()))?;
    let new = fs::read(fresh)?;
    if old == new {
        println!(
            "xtask ebpf --check: {} is byte-identical to a fresh build",
            committed.display()
        );
        return Ok(());
    }
    let old_norm = normalise(&old).map_err(|e| format!("{}: {e}", committed.display()))?;
    let new_norm = normalise(&new).map_err(|e| format!("fresh build: {e}"))?;
    if old_norm == new_norm {
        println!(
            "xtask ebpf --check: {} differs from a fresh build only outside the program, map \
             and license sections (debug info); {} sections compared equal",
            committed.display(),
            new_norm.len()
        );
        return Ok(());
    }
    let names = |n: &[Section]| n.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    let mut differing: Vec<_> = new_norm
        .iter()
        .filter(|s| !old_norm.contains(s))
        .map(|s| s.name.clone())
        .chain(
            old_norm
                .iter()
                .filter(|s| !new_norm.contains(s))
                .map(|s| s.name.clone()),
        )
        .collect();
    differing.sort();
    differing.dedup();
    Err(format!(
        "{} is stale: sections {differing:?} differ from a fresh build (committed {:?}, fresh \
         {:?}); run `cargo xtask ebpf` and commit the object",
        committed.display(),
        names(&old_norm),
        names(&new_norm)
    )
    .into())
}

/// A section the kernel sees: name, bytes and relocations.
#[derive(Debug, PartialEq, Eq)]
struct Section {
    name: String,
    data: Vec<u8>,
    /// (offset, relocation kind and size, target symbol name).
    relocations: Vec<(u64, String, String)>,
}

/// The program, map and license sections of an eBPF object, sorted by name.
fn normalise(bytes: &[u8]) -> Result<Vec<Section>, Error> {
    let file = object::File::parse(bytes)?;
    let mut sections = Vec::new();
    for section in file.sections() {
        let name = section.name()?.to_owned();
        let wanted = section.kind() == SectionKind::Text
            || matches!(name.as_str(), "license" | "maps" | ".maps");
        if !wanted {
            continue;
        }
        let mut relocations = Vec::new();
        for (offset, reloc) in section.relocations() {
            let target = match reloc.target() {
                RelocationTarget::Symbol(index) => {
                    let symbol = file.symbol_by_index(index)?;
                    match symbol.name()? {
                        // Section symbols have no name: use their section's.
                        "" => symbol
                            .section_index()
                            .map(|s| {
                                file.section_by_index(s)
                                    .and_then(|s| s.name().map(str::to_owned))
                            })
                            .transpose()?
                            .unwrap_or_default(),
                        named => named.to_owned(),
                    }
                }
                other => format!("{other:?}"),
            };
            relocations.push((
                offset,
                format!("{:?}/{}", reloc.flags(), reloc.size()),
                target,
            ));
        }
        sections.push(Section {
            name,
            data: section.data()?.to_vec(),
            relocations,
        });
    }
    if !sections.iter().any(|s| s.name == "xdp") {
        return Err("no `xdp` program section".into());
    }
    sections.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(sections)
}
