//! Commands with a timeout, and child processes that are always killed.
//!
//! Every process started here leads its own process group and gets `PR_SET_PDEATHSIG`
//! (SIGKILL), so it dies with the thread that started it even when the test process is
//! killed without running destructors. [`ChildGuard`] sends SIGTERM to the group on drop,
//! waits a grace period, then SIGKILLs it.

use std::fs::File;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// How often waits poll a child or a file.
pub const POLL: Duration = Duration::from_millis(20);

/// What a finished command printed, and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// The exit status.
    pub status: ExitStatus,
    /// Everything written to standard output (lossy UTF-8).
    pub stdout: String,
    /// Everything written to standard error (lossy UTF-8).
    pub stderr: String,
}

impl Output {
    /// The exit code, or `None` when killed by a signal.
    #[must_use]
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Ok when the command exited 0, else an error with both outputs.
    pub fn ok(self, what: &str) -> Result<Self> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(Error(format!(
                "{what} failed ({}):\nstdout: {}\nstderr: {}",
                self.status,
                self.stdout.trim_end(),
                self.stderr.trim_end()
            )))
        }
    }
}

/// Makes `cmd` lead its own process group and die with the thread that spawns it.
fn harden(cmd: &mut Command) {
    cmd.process_group(0);
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
    // async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Sends `signal` to the process group led by `pid` (a child this crate started).
fn signal_group(pid: u32, signal: i32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    // SAFETY: kill(2) with a negative pid signals the process group we created for our
    // own child; it has no memory-safety preconditions.
    unsafe {
        libc::kill(-pid, signal);
    }
}

/// Describes a command for messages: program and arguments.
#[must_use]
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn reader(mut source: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = source.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Runs `cmd` to completion with stdin closed, capturing its outputs. After `timeout` the
/// process group is killed with `SIGKILL` and an error is returned that includes what it printed.
///
/// # Panics
/// Never: both outputs are piped before they are taken.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let what = describe(cmd);
    harden(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error(format!("cannot start `{what}`: {e}")))?;
    let out_rx = reader(child.stdout.take().expect("stdout is piped"));
    let err_rx = reader(child.stderr.take().expect("stderr is piped"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            signal_group(child.id(), libc::SIGKILL);
            let _ = child.wait();
            break None;
        }
        thread::sleep(POLL);
    };
    // A daemon forked by the command may hold the pipes open: do not wait for it forever.
    let collect = |rx: mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(Duration::from_secs(2))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let stdout = collect(out_rx);
    let stderr = collect(err_rx);
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(Error(format!(
            "`{what}` timed out after {timeout:?}\nstdout: {}\nstderr: {}",
            stdout.trim_end(),
            stderr.trim_end()
        ))),
    }
}

/// Runs `cmd` with [`run`] and requires exit status 0; returns standard output.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> Result<String> {
    let what = describe(cmd);
    Ok(run(cmd, timeout)?.ok(&what)?.stdout)
}

/// A running child process that is terminated when dropped: SIGTERM to its process group,
/// then SIGKILL after the grace period.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    name: String,
    log: PathBuf,
    grace: Duration,
    status: Option<ExitStatus>,
}

impl ChildGuard {
    /// Starts `cmd` with stdin closed and stdout+stderr appended to the file `log`.
    /// `name` is used in messages.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<Self> {
        let what = describe(cmd);
        let file = File::options().create(true).append(true).open(log)?;
        let file2 = file.try_clone()?;
        Self::spawn_with(name, cmd, log, Stdio::from(file), Stdio::from(file2))
            .map_err(|e| Error(format!("cannot start {name} (`{what}`): {e}")))
    }

    /// Starts `cmd` with stdin closed, stdout into the file `stdout_file`, stderr appended
    /// to `log` (for programs whose standard output is data, like `tcpdump -w -`).
    pub fn spawn_split(
        name: &str,
        cmd: &mut Command,
        stdout_file: &Path,
        log: &Path,
    ) -> Result<Self> {
        let out = File::create(stdout_file)?;
        let err = File::options().create(true).append(true).open(log)?;
        Self::spawn_with(name, cmd, log, Stdio::from(out), Stdio::from(err))
    }

    fn spawn_with(
        name: &str,
        cmd: &mut Command,
        log: &Path,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<Self> {
        harden(cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()?;
        Ok(Self {
            child,
            name: name.to_owned(),
            log: log.to_path_buf(),
            grace: Duration::from_secs(3),
            status: None,
        })
    }

    /// Sets how long [`ChildGuard::terminate`] and drop wait after SIGTERM.
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name given at spawn.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path of the log file.
    #[must_use]
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// CPU seconds (user + system) the process has used so far.
    #[must_use]
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(self.child.id())
    }

    /// The log so far (lossy UTF-8; empty when unreadable).
    #[must_use]
    pub fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The exit status if the process has ended.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_status(), Ok(None))
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(POLL);
        }
    }

    /// Sends `signal` to the process only (not its group).
    pub fn signal(&mut self, signal: i32) {
        if self.is_running() {
            let Ok(pid) = i32::try_from(self.pid()) else {
                return;
            };
            // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet
            // (try_wait returned None), so the pid cannot have been reused.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// SIGKILLs the whole process group at once (a crash, for tests) and reaps the process.
    pub fn kill9(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.try_status()? {
            return Ok(status);
        }
        signal_group(self.pid(), libc::SIGKILL);
        let status = self.child.wait()?;
        self.status = Some(status);
        Ok(status)
    }

    /// SIGTERM to the group, up to the grace period for it to exit, then SIGKILL.
    /// Returns the exit status.
    pub fn terminate(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.try_status()? {
            return Ok(status);
        }
        signal_group(self.pid(), libc::SIGTERM);
        if let Some(status) = self.wait_timeout(self.grace)? {
            return Ok(status);
        }
        self.kill9()
    }

    /// Like [`ChildGuard::terminate`] but says whether the process exited by itself within
    /// the grace period with status 0 (or by the SIGTERM it was sent).
    pub fn terminate_cleanly(&mut self) -> Result<bool> {
        let status = self.terminate()?;
        Ok(status.success() || status.signal() == Some(libc::SIGTERM))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Err(e) = self.terminate() {
            eprintln!("harness: stopping {} failed: {e}", self.name);
        }
    }
}

/// Polls `check` every [`POLL`] until it returns `Some`, for at most `timeout`.
pub fn wait_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL);
    }
}

/// CPU time (user + system) a process has used so far, in seconds, from `/proc/PID/stat`
/// (fields 14 and 15, in clock ticks; proc(5)).
#[must_use]
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: the fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // Safety: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    #[expect(clippy::cast_precision_loss, reason = "clock ticks per second are small")]
    let tick = if tick > 0 { tick as f64 } else { 100.0 };
    Some((utime + stime) / tick)
}
