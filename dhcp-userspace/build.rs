//! Provides the XDP program (`dhcp-ebpf/`) to `io::xdp::program` as `$OUT_DIR/dhcp-xdp.o`.
//!
//! - When the eBPF toolchain is present (rustup's `nightly` with the `rust-src` component and
//!   `bpf-linker` on `PATH`), the program is built from source with aya-build
//!   (`cargo +nightly build --target bpfel-unknown-none -Z build-std=core --release`).
//! - Otherwise, or when `TWINLEASE_EBPF_PREBUILT=1` (or `true`), or when that build fails
//!   (with a warning), the committed `dhcp-ebpf/prebuilt/dhcp-xdp.o` is copied: a stable-only
//!   `cargo build` works. `cargo xtask ebpf --check` keeps that object in step with the source.
//!
//! The choice is exported as the `TWINLEASE_EBPF_SOURCE` compile-time variable.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

/// Forces the committed object even when the toolchain is present.
const PREBUILT_ENV: &str = "TWINLEASE_EBPF_PREBUILT";
/// The eBPF crate and the binary target aya-build copies into `OUT_DIR`.
const EBPF_PACKAGE: &str = "dhcp-ebpf";
const EBPF_BIN: &str = "dhcp-xdp";

fn main() {
    if let Err(e) = run() {
        // A build script has no better channel than a panic to fail the build.
        panic!("twinlease build.rs: {e}");
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let ebpf_dir = manifest_dir
        .join("..")
        .join(EBPF_PACKAGE)
        .canonicalize()
        .map_err(|e| format!("finding ../{EBPF_PACKAGE}: {e}"))?;
    let prebuilt = ebpf_dir.join("prebuilt").join("dhcp-xdp.o");
    let dest = out_dir.join("dhcp-xdp.o");

    println!("cargo:rerun-if-env-changed={PREBUILT_ENV}");
    println!("cargo:rerun-if-env-changed=PATH");
    for watched in [
        prebuilt.clone(),
        ebpf_dir.join("Cargo.toml"),
        ebpf_dir.join("Cargo.lock"),
        ebpf_dir.join("src"),
        ebpf_dir.join("common"),
    ] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }

    let forced = env::var(PREBUILT_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let built = if forced {
        false
    } else if let Some(missing) = missing_toolchain() {
        println!(
            "cargo:warning=eBPF toolchain incomplete ({missing}): using the committed {}",
            prebuilt.display()
        );
        false
    } else {
        match build_from_source(&ebpf_dir, &out_dir) {
            Ok(object) => {
                fs::copy(&object, &dest).map_err(|e| {
                    format!("copying {} to {}: {e}", object.display(), dest.display())
                })?;
                true
            }
            Err(e) => {
                println!(
                    "cargo:warning=building the XDP program failed, using the committed {}: {e}",
                    prebuilt.display()
                );
                false
            }
        }
    };
    if !built {
        fs::copy(&prebuilt, &dest)
            .map_err(|e| format!("copying {} to {}: {e}", prebuilt.display(), dest.display()))?;
    }
    println!(
        "cargo:rustc-env=TWINLEASE_EBPF_SOURCE={}",
        if built {
            "built from dhcp-ebpf/"
        } else {
            "prebuilt dhcp-ebpf/prebuilt/dhcp-xdp.o"
        }
    );
    Ok(())
}

fn env_var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|e| format!("{name}: {e}"))
}

/// What is missing to build the program from source, if anything.
fn missing_toolchain() -> Option<&'static str> {
    let sysroot = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success());
    let Some(sysroot) = sysroot else {
        return Some("no rustup nightly toolchain");
    };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if !sysroot
        .join("lib/rustlib/src/rust/library/core/Cargo.toml")
        .is_file()
    {
        return Some("no rust-src for nightly");
    }
    let on_path = env::var_os("PATH")
        .is_some_and(|path| env::split_paths(&path).any(|dir| dir.join("bpf-linker").is_file()));
    if !on_path {
        return Some("no bpf-linker on PATH");
    }
    None
}

/// Builds the program with aya-build; returns the object it copied into `out_dir`.
fn build_from_source(ebpf_dir: &Path, out_dir: &Path) -> Result<PathBuf, String> {
    let root_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", ebpf_dir.display()))?;
    // `dhcp-ebpf` is its own workspace (the root one excludes it): aya-build runs
    // `cargo build --package dhcp-ebpf` in our working directory, so move there.
    env::set_current_dir(ebpf_dir).map_err(|e| format!("cd {}: {e}", ebpf_dir.display()))?;
    // aya-build turns every stderr line of the inner cargo into a warning: keep it to
    // the compiler's own diagnostics.
    // Safety: the build script is single-threaded here; nothing reads the environment
    // concurrently.
    unsafe { env::set_var("CARGO_TERM_QUIET", "true") };
    aya_build::build_ebpf(
        [aya_build::Package {
            name: EBPF_PACKAGE,
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )
    .map_err(|e| format!("{e:#}"))?;
    Ok(out_dir.join(EBPF_BIN))
}
