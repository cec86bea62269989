//! Tar streams for `copy_in` and `copy_out` over exec: a local tree packed on a blocking
//! thread and sent down a channel, and an archive from the pod's `tar` unpacked on a
//! blocking thread, refusing entries that would land outside the destination. The tar
//! code itself is shared ([`crate::archive`]); this module names the other side (the
//! pod) in its errors and holds the exec-specific [`SharedBuf`].

use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use sindri_core::{Result, TransferStats};
use tokio::sync::mpsc;

pub(crate) use crate::archive::{ChannelReader, Entry, io_error, pack, walk};

/// A writer into the exec session's stdin.
pub(crate) fn stdin_writer(tx: mpsc::Sender<Vec<u8>>) -> crate::archive::ChannelWriter {
    crate::archive::ChannelWriter::new(tx, "the pod")
}

/// Unpacks an archive from the pod's `tar` into `to` (see [`crate::archive::unpack`]
/// for the destination rules and the refused entries).
pub(crate) fn unpack(reader: impl Read, to: &Path) -> Result<TransferStats> {
    crate::archive::unpack(reader, to, "the pod")
}

/// An in-memory writer that stays readable after being boxed into an `ExecIo`.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl tokio::io::AsyncWrite for SharedBuf {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
