//! The local terminal for interactive sessions: raw mode while a remote shell owns the
//! keyboard (so Ctrl-C reaches the remote shell), and window-size changes forwarded.

use std::io::IsTerminal;

use sindri_core::{ExecIo, TtySize};
use tokio::sync::watch;

/// Restores the terminal's mode when dropped, even on error or panic.
pub struct RawModeGuard {
    active: bool,
}

impl RawModeGuard {
    /// Puts the terminal in raw mode if stdin is a terminal.
    pub fn enable() -> RawModeGuard {
        let active =
            std::io::stdin().is_terminal() && crossterm::terminal::enable_raw_mode().is_ok();
        RawModeGuard { active }
    }
}

impl Drop for RawModeGuard {
    fn drop(&mut self) {
        if self.active {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
}

/// True when both stdin and stdout are terminals: a TTY session makes sense.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

fn current_size() -> TtySize {
    crossterm::terminal::size().unwrap_or((80, 24))
}

/// A watch channel of the terminal size, updated on every SIGWINCH until the receiver is gone.
fn size_channel() -> watch::Receiver<TtySize> {
    let (tx, rx) = watch::channel(current_size());
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut winch) = signal(SignalKind::window_change()) else {
            return;
        };
        while winch.recv().await.is_some() {
            if tx.send(current_size()).is_err() {
                break;
            }
        }
    });
    rx
}

/// The process's own stdio as an [`ExecIo`]; with `tty`, sized and resizable.
pub fn stdio(tty: bool, with_stdin: bool) -> ExecIo {
    ExecIo {
        stdin: if with_stdin {
            Some(Box::new(tokio::io::stdin()))
        } else {
            None
        },
        stdout: Box::new(tokio::io::stdout()),
        stderr: Box::new(tokio::io::stderr()),
        tty: if tty { Some(size_channel()) } else { None },
    }
}
