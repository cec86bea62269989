//! Running one script in the environment through the dispatcher, with its output
//! streamed line by line to the caller and its last lines kept for error messages.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use sindri_core::{Deployment, ExecCommand, ExecIo, Provider, Result, dispatch};
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;

/// Lines of output kept for the "log tail" of a failure.
pub const TAIL_LINES: usize = 25;

/// Lines starting with this on stdout are messages from sindri's own scripts to the
/// installer (e.g. which apt packages were new); they are not shown as output.
pub const TAG: &str = "sindri:";

/// Lines of stdout kept whole (for scripts whose output the installer parses).
const MAX_STDOUT_LINES: usize = 20_000;

/// What a script did.
#[derive(Debug, Clone, Default)]
pub struct Ran {
    /// Its exit code.
    pub code: i32,
    /// The last lines of its output (stdout and stderr interleaved as they came).
    pub tail: Vec<String>,
    /// Tag lines, without the tag.
    pub tags: Vec<String>,
    /// Every stdout line that is not a tag.
    pub stdout: Vec<String>,
}

#[derive(Default)]
struct Shared {
    partial: [Vec<u8>; 2],
    tail: VecDeque<String>,
    tags: Vec<String>,
    stdout: Vec<String>,
}

impl Shared {
    fn line(&mut self, stream: usize, raw: &[u8], tx: &mpsc::UnboundedSender<String>) {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end_matches('\r');
        // apt and pip redraw progress with carriage returns: keep what was drawn last.
        let text = text.rsplit('\r').next().unwrap_or(text).to_string();
        if stream == 0 {
            if let Some(tag) = text.strip_prefix(TAG) {
                self.tags.push(tag.to_string());
                return;
            }
            if self.stdout.len() < MAX_STDOUT_LINES {
                self.stdout.push(text.clone());
            }
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(text.clone());
        let _ = tx.send(text);
    }
}

/// One of the two output streams of an exec, split into lines.
struct LineWriter {
    shared: Arc<Mutex<Shared>>,
    stream: usize,
    tx: mpsc::UnboundedSender<String>,
}

impl LineWriter {
    fn feed(&self, buf: &[u8]) {
        let mut s = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let mut partial = std::mem::take(&mut s.partial[self.stream]);
        partial.extend_from_slice(buf);
        let mut start = 0;
        while let Some(pos) = partial[start..].iter().position(|&b| b == b'\n') {
            s.line(self.stream, &partial[start..start + pos], &self.tx);
            start += pos + 1;
        }
        partial.drain(..start);
        s.partial[self.stream] = partial;
    }

    fn flush_partial(&self) {
        let mut s = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let partial = std::mem::take(&mut s.partial[self.stream]);
        if !partial.is_empty() {
            s.line(self.stream, &partial, &self.tx);
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.feed(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.flush_partial();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.flush_partial();
    }
}

/// Runs `argv` in the environment (through [`dispatch::exec`], so the provider's
/// capabilities are checked), calling `on_line` for every output line as it comes.
pub async fn run(
    provider: &dyn Provider,
    d: &Deployment,
    argv: Vec<String>,
    on_line: &(dyn Fn(&str) + Sync),
) -> Result<Ran> {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let io = ExecIo {
        stdin: None,
        stdout: Box::new(LineWriter {
            shared: shared.clone(),
            stream: 0,
            tx: tx.clone(),
        }),
        stderr: Box::new(LineWriter {
            shared: shared.clone(),
            stream: 1,
            tx,
        }),
        tty: None,
    };
    let cmd = ExecCommand::new(argv);
    let exec = dispatch::exec(provider, d, &cmd, io);
    tokio::pin!(exec);
    let result = loop {
        tokio::select! {
            r = &mut exec => break r,
            Some(line) = rx.recv() => on_line(&line),
        }
    };
    // The provider has dropped the writers by now (or will): take what is queued.
    while let Ok(line) = rx.try_recv() {
        on_line(&line);
    }
    let code = result?;
    let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
    // A provider may keep the writers until it is dropped; count unfinished lines too.
    for stream in 0..2 {
        let partial = std::mem::take(&mut s.partial[stream]);
        if !partial.is_empty() {
            let (tx, _rx) = mpsc::unbounded_channel();
            s.line(stream, &partial, &tx);
        }
    }
    Ok(Ran {
        code,
        tail: s.tail.iter().cloned().collect(),
        tags: std::mem::take(&mut s.tags),
        stdout: std::mem::take(&mut s.stdout),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn output_is_split_into_lines_and_tags_are_set_apart() {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut out = LineWriter {
            shared: shared.clone(),
            stream: 0,
            tx: tx.clone(),
        };
        let mut err = LineWriter {
            shared: shared.clone(),
            stream: 1,
            tx,
        };
        out.write_all(b"hel").await.unwrap();
        err.write_all(b"warning: x\n").await.unwrap();
        out.write_all(b"lo\nsindri:new-apt jq\n50%\r100%\nlast")
            .await
            .unwrap();
        drop(out);
        drop(err);
        let s = shared.lock().unwrap();
        assert_eq!(s.tags, ["new-apt jq"]);
        assert_eq!(s.stdout, ["hello", "100%", "last"]);
        assert_eq!(s.tail, ["warning: x", "hello", "100%", "last"]);
        let mut seen = Vec::new();
        while let Ok(l) = rx.try_recv() {
            seen.push(l);
        }
        assert_eq!(seen, ["warning: x", "hello", "100%", "last"]);
    }

    #[tokio::test]
    async fn the_tail_keeps_the_last_lines() {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut out = LineWriter {
            shared: shared.clone(),
            stream: 1,
            tx,
        };
        for i in 0..100 {
            out.write_all(format!("line {i}\n").as_bytes())
                .await
                .unwrap();
        }
        let s = shared.lock().unwrap();
        assert_eq!(s.tail.len(), TAIL_LINES);
        assert_eq!(s.tail.back().map(String::as_str), Some("line 99"));
        assert_eq!(s.tail.front().map(String::as_str), Some("line 75"));
    }
}
