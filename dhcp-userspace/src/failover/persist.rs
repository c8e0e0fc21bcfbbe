//! The failover state record in stable storage (draft-ietf-dhc-failover-12 §9.2: "Whenever
//! a server makes a transition into a new state, it MUST record the state and the time at
//! which it entered that state in stable storage").
//!
//! One small file per relationship, replaced atomically: written to `<name>.tmp`, fsynced,
//! renamed over the old one, then the directory is fsynced. Layout (little-endian, 38 bytes):
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `TLFO` |
//! | 4..6 | format version (1) |
//! | 6 | role (1 primary, 2 secondary) |
//! | 7 | state (server-state value, §12.24) |
//! | 8 | partner state (server-state value; 0: unknown) |
//! | 9 | flags: bit 0 `pd_start` present, bit 1 `recover_all`, bit 2 `partner_took_over` |
//! | 10..14 | entered |
//! | 14..18 | partner entered |
//! | 18..22 | pd start |
//! | 22..26 | MCLT |
//! | 26..30 | last operational |
//! | 30..34 | reserved (0) |
//! | 34..38 | CRC-32C of bytes 0..34 |

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::state::{Role, State};
use crate::wire::failover::ServerState;

const MAGIC: &[u8; 4] = b"TLFO";
const VERSION: u16 = 1;
const LEN: usize = 38;
const FLAG_PD: u8 = 1;
const FLAG_RECOVER_ALL: u8 = 2;
const FLAG_TOOK_OVER: u8 = 4;

/// What a server records about its failover state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persisted {
    /// The state to resume at the next start (for STARTUP, PAUSED, SHUTDOWN: the state
    /// they stand for, see [`super::Machine::persisted`]).
    pub state: State,
    /// When that state was entered.
    pub entered: u32,
    /// The partner's last known state.
    pub partner_state: Option<State>,
    /// When the partner entered it.
    pub partner_entered: u32,
    /// When PARTNER-DOWN began (only with `state` PARTNER-DOWN).
    pub pd_start: Option<u32>,
    /// Our role: a record of the other role is ignored.
    pub role: Role,
    /// The MCLT in force when recorded.
    pub mclt: u32,
    /// Last time the server was responsive to clients (0: never); compared with the
    /// partner's PARTNER-DOWN start at the next start (§9.3.2 step 5).
    pub last_operational: u32,
    /// In RECOVER: the recovery must use UPDREQALL (§9.5.2, §5.16).
    pub recover_all: bool,
    /// The partner was in PARTNER-DOWN since we were last NORMAL (our available
    /// addresses may be in its clients' hands; see [`super::Machine::policy`]).
    pub partner_took_over: bool,
}

/// Errors loading or saving the state record.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Reading, writing, syncing or renaming failed.
    #[error("failover state file {path}: {op}: {source}")]
    Io {
        /// The file (or directory) concerned.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The file exists but is not a valid record.
    #[error("failover state file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> PersistError + 'a {
    move |source| PersistError::Io {
        path: path.to_owned(),
        op,
        source,
    }
}

impl Persisted {
    /// The durable form (see the module documentation).
    #[must_use]
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0..4].copy_from_slice(MAGIC);
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        b[6] = match self.role {
            Role::Primary => 1,
            Role::Secondary => 2,
        };
        b[7] = u8::from(self.state.to_wire());
        b[8] = self.partner_state.map_or(0, |s| u8::from(s.to_wire()));
        let mut flags = 0;
        if self.pd_start.is_some() {
            flags |= FLAG_PD;
        }
        if self.recover_all {
            flags |= FLAG_RECOVER_ALL;
        }
        if self.partner_took_over {
            flags |= FLAG_TOOK_OVER;
        }
        b[9] = flags;
        b[10..14].copy_from_slice(&self.entered.to_le_bytes());
        b[14..18].copy_from_slice(&self.partner_entered.to_le_bytes());
        b[18..22].copy_from_slice(&self.pd_start.unwrap_or(0).to_le_bytes());
        b[22..26].copy_from_slice(&self.mclt.to_le_bytes());
        b[26..30].copy_from_slice(&self.last_operational.to_le_bytes());
        let crc = crc32c::crc32c(&b[..34]);
        b[34..38].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parse [`Self::encode`] output; the error says what is wrong.
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() != LEN {
            return Err(format!("{} bytes, expected {LEN}", b.len()));
        }
        if &b[0..4] != MAGIC {
            return Err("bad magic".into());
        }
        let version = u16::from_le_bytes([b[4], b[5]]);
        if version != VERSION {
            return Err(format!("unknown format version {version}"));
        }
        let crc = u32::from_le_bytes([b[34], b[35], b[36], b[37]]);
        if crc != crc32c::crc32c(&b[..34]) {
            return Err("checksum mismatch".into());
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let state_of = |v: u8| {
            ServerState::try_from(v)
                .ok()
                .and_then(State::from_wire)
                .ok_or_else(|| format!("unknown state value {v}"))
        };
        let role = match b[6] {
            1 => Role::Primary,
            2 => Role::Secondary,
            v => return Err(format!("unknown role value {v}")),
        };
        let flags = b[9];
        if flags & !(FLAG_PD | FLAG_RECOVER_ALL | FLAG_TOOK_OVER) != 0 {
            return Err(format!("unknown flags {flags:#04x}"));
        }
        Ok(Self {
            state: state_of(b[7])?,
            entered: u32_at(10),
            partner_state: if b[8] == 0 {
                None
            } else {
                Some(state_of(b[8])?)
            },
            partner_entered: u32_at(14),
            pd_start: (flags & FLAG_PD != 0).then(|| u32_at(18)),
            role,
            mclt: u32_at(22),
            last_operational: u32_at(26),
            recover_all: flags & FLAG_RECOVER_ALL != 0,
            partner_took_over: flags & FLAG_TOOK_OVER != 0,
        })
    }
}

/// Read the record at `path`: `Ok(None)` when there is no file (a server that never ran
/// failover, §9.3.2 step 1), an error naming the file when it cannot be read or is corrupt.
pub fn load(path: &Path) -> Result<Option<Persisted>, PersistError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, "open")(e)),
    };
    let mut buf = Vec::with_capacity(LEN);
    f.take(4096)
        .read_to_end(&mut buf)
        .map_err(io_err(path, "read"))?;
    Persisted::decode(&buf)
        .map(Some)
        .map_err(|reason| PersistError::Corrupt {
            path: path.to_owned(),
            reason,
        })
}

/// Replace the record at `path` atomically and durably (temporary file, fsync, rename,
/// fsync of the directory).
pub fn save(path: &Path, p: &Persisted) -> Result<(), PersistError> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err(&tmp, "create"))?;
        f.write_all(&p.encode()).map_err(io_err(&tmp, "write"))?;
        f.sync_all().map_err(io_err(&tmp, "fsync"))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path, "rename"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "fsync directory"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Persisted {
        Persisted {
            state: State::PartnerDown,
            entered: 1_700_000_000,
            partner_state: Some(State::CommunicationsInterrupted),
            partner_entered: 1_699_999_000,
            pd_start: Some(1_700_000_000),
            role: Role::Secondary,
            mclt: 3600,
            last_operational: 1_700_000_500,
            recover_all: false,
            partner_took_over: true,
        }
    }

    #[test]
    fn round_trip_every_state() {
        for st in State::ALL {
            for partner in [None, Some(State::Normal), Some(State::RecoverWait)] {
                let p = Persisted {
                    state: st,
                    partner_state: partner,
                    pd_start: (st == State::PartnerDown).then_some(7),
                    recover_all: st == State::Recover,
                    partner_took_over: st == State::ResolutionInterrupted,
                    ..sample()
                };
                assert_eq!(Persisted::decode(&p.encode()), Ok(p));
            }
        }
    }

    #[test]
    fn save_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("failover.state");
        assert!(load(&path).unwrap().is_none(), "absent file: no record");
        save(&path, &sample()).unwrap();
        assert_eq!(load(&path).unwrap(), Some(sample()));
        let next = Persisted {
            state: State::Normal,
            pd_start: None,
            ..sample()
        };
        save(&path, &next).unwrap();
        assert_eq!(load(&path).unwrap(), Some(next));
        assert!(!dir.path().join("failover.state.tmp").exists());
    }

    #[test]
    fn corrupt_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fo.state");
        let good = sample().encode();
        let mut flipped = good;
        flipped[12] ^= 0x40;
        let mut bad_state = good;
        bad_state[7] = 99;
        let crc = crc32c::crc32c(&bad_state[..34]);
        bad_state[34..38].copy_from_slice(&crc.to_le_bytes());
        let mut bad_version = good;
        bad_version[4] = 9;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..20].to_vec(), "20 bytes"),
            (Vec::new(), "0 bytes"),
            (flipped.to_vec(), "checksum"),
            (bad_state.to_vec(), "unknown state value 99"),
            (bad_version.to_vec(), "version"),
            ([good.as_slice(), b"x"].concat(), "39 bytes"),
            (b"not a state file at all, just text.....".to_vec(), "bytes"),
        ];
        for (bytes, want) in cases {
            fs::write(&path, &bytes).unwrap();
            let err = load(&path).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, PersistError::Corrupt { .. }), "{msg}");
            assert!(msg.contains("fo.state"), "{msg}");
            assert!(msg.contains(want), "{msg} should say {want}");
        }
    }

    #[test]
    fn unreadable_path_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be.
        let err = load(dir.path()).unwrap_err();
        assert!(matches!(err, PersistError::Io { .. }), "{err}");
        let err = save(&dir.path().join("missing/dir/x"), &sample()).unwrap_err();
        assert!(err.to_string().contains("x.tmp"), "{err}");
    }
}
