//! `twinlease store check` and `twinlease store repair`: find every damaged file of a stopped
//! server's lease store with its location, and cut the logs at their damage on request,
//! keeping a backup copy of everything first. The steps are in docs/operations.md.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::lease::decode_any;
use crate::wal::{
    self, DEFAULT_SEGMENT_SIZE, Durability, Severity, ShardCheck, ShardRepair, WalOptions,
};

use super::{StoreError, io_err, layout_err, shard_dir_names};

/// Exit status of `store check` / `store repair` when the store holds damage a start refuses.
pub const EXIT_DAMAGED: u8 = 1;
/// Exit status when the check or repair itself could not run (I/O error, server running, no
/// store).
pub const EXIT_FAILED: u8 = 2;

/// Check every shard of the store in `data_dir` (the server must be stopped). Also decodes
/// every record a start would replay: an undecodable one is damage too.
pub fn check(data_dir: &Path) -> Result<Vec<ShardCheck>, StoreError> {
    let names = shard_dir_names(data_dir).map_err(io_err("list directory", data_dir))?;
    if names.is_empty() {
        return Err(layout_err(
            data_dir,
            "no lease store here (no shard-* directories)".to_owned(),
        ));
    }
    let mut out = Vec::with_capacity(names.len());
    for w in 0..names.len() {
        let mut validate = |p: &[u8]| {
            decode_any(p)
                .err()
                .map(|e| format!("undecodable lease record: {e}"))
        };
        let c = wal::check_shard(data_dir, shard_u32(w), &mut validate)
            .map_err(|source| StoreError::Wal { shard: w, source })?;
        out.push(c);
    }
    Ok(out)
}

/// Repair every damaged shard of the store in `data_dir` ([`wal::repair_shard`]): a backup
/// copy of each damaged shard's files goes to `backup` first. Returns what each shard's repair
/// did (empty for a shard without damage).
pub fn repair(data_dir: &Path, backup: &Path) -> Result<Vec<ShardRepair>, StoreError> {
    let names = shard_dir_names(data_dir).map_err(io_err("list directory", data_dir))?;
    let mut out = Vec::with_capacity(names.len());
    for w in 0..names.len() {
        let dir = data_dir.join(format!("shard-{w}"));
        let opts = WalOptions {
            segment_size: segment_size_in(&dir),
            durability: Durability::Fsync,
        };
        let r = wal::repair_shard(data_dir, shard_u32(w), opts, backup)
            .map_err(|source| StoreError::Wal { shard: w, source })?;
        out.push(r);
    }
    Ok(out)
}

fn shard_u32(w: usize) -> u32 {
    u32::try_from(w).unwrap_or(u32::MAX)
}

/// The size of the shard's existing segments, so the segment a repair may create matches them.
fn segment_size_in(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("wal-") && n.ends_with(".seg")
        })
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .filter(|&l| l >= 8192 && l.is_multiple_of(4096) && u32::try_from(l).is_ok())
        .max()
        .unwrap_or(DEFAULT_SEGMENT_SIZE)
}

fn print_findings(checks: &[ShardCheck]) -> bool {
    let mut damaged = false;
    for c in checks {
        for f in &c.findings {
            let what = match f.severity {
                Severity::Damage => "DAMAGE",
                Severity::Note => "note",
            };
            println!(
                "{}: offset {}: {what}: {}",
                f.file.display(),
                f.offset,
                f.what
            );
        }
        let state = if c.damaged() {
            damaged = true;
            "DAMAGED (a start refuses it)"
        } else {
            "ok"
        };
        println!(
            "{}: {state}: {} snapshot record(s), {} log record(s) replayable{}",
            c.dir.display(),
            c.snapshot_records,
            c.records,
            if c.records_after_damage > 0 {
                format!(", {} after the damage", c.records_after_damage)
            } else {
                String::new()
            }
        );
    }
    damaged
}

/// `twinlease store check --data-dir D`: print every finding (`file: offset N: DAMAGE|note:
/// what`) and a line per shard. Exit 0 when a start would succeed, [`EXIT_DAMAGED`] when it
/// would refuse, [`EXIT_FAILED`] when the check could not run.
#[must_use]
pub fn cli_check(data_dir: &Path) -> ExitCode {
    match check(data_dir) {
        Ok(checks) => {
            if print_findings(&checks) {
                println!(
                    "twinlease: {}: damaged; after a look at the files named above, run \
                     `twinlease store repair --data-dir {} --drop-after-corruption`",
                    data_dir.display(),
                    data_dir.display()
                );
                ExitCode::from(EXIT_DAMAGED)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("twinlease: store check {}: {e}", data_dir.display());
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// `twinlease store repair --data-dir D --drop-after-corruption [--backup-dir B]`: back up,
/// repair, check again. Exit 0 when the store is now usable, [`EXIT_DAMAGED`] when damage
/// remains (an undecodable record: see docs/operations.md), [`EXIT_FAILED`] on errors.
#[must_use]
pub fn cli_repair(
    data_dir: &Path,
    drop_after_corruption: bool,
    backup: Option<PathBuf>,
) -> ExitCode {
    if !drop_after_corruption {
        eprintln!(
            "twinlease: store repair drops every record after the first damage of each shard: \
             say so with --drop-after-corruption (run `twinlease store check` first)"
        );
        return ExitCode::from(EXIT_FAILED);
    }
    let backup = backup.unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        data_dir.join(format!("repair-backup-{secs}"))
    });
    let reps = match repair(data_dir, &backup) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("twinlease: store repair {}: {e}", data_dir.display());
            return ExitCode::from(EXIT_FAILED);
        }
    };
    for (w, r) in reps.iter().enumerate() {
        if r.backed_up.is_empty() {
            println!("shard-{w}: no damage, unchanged");
            continue;
        }
        println!(
            "shard-{w}: {} file(s) copied to {}",
            r.backed_up.len(),
            backup.join(format!("shard-{w}")).display()
        );
        if let Some((path, kept)) = &r.snapshot_rewritten {
            println!(
                "shard-{w}: snapshot {} rewritten with its {kept} intact record(s)",
                path.display()
            );
        }
        for p in &r.set_aside {
            println!(
                "shard-{w}: segment after a gap set aside as {}",
                p.display()
            );
        }
        if let Some(stop) = r.recovery.as_ref().and_then(|rec| rec.stopped_at.as_ref()) {
            println!(
                "shard-{w}: log cut at {} offset {} ({}); kept aside: {}",
                stop.file.display(),
                stop.offset,
                stop.reason,
                stop.preserved
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    match check(data_dir) {
        Ok(checks) => {
            if print_findings(&checks) {
                println!("twinlease: {}: damage remains", data_dir.display());
                ExitCode::from(EXIT_DAMAGED)
            } else {
                println!(
                    "twinlease: {}: repaired; the server can start",
                    data_dir.display()
                );
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("twinlease: store check {}: {e}", data_dir.display());
            ExitCode::from(EXIT_FAILED)
        }
    }
}
