//! Tar streams for `copy_in` and `copy_out` over SSH: a local tree packed on a blocking
//! thread and sent down a channel, and an archive arriving from the remote `tar`
//! unpacked on a blocking thread. The tar code itself is shared ([`crate::archive`]);
//! this module only names the other side (the ssh process) in its errors.

use std::io::Read;
use std::path::Path;

use sindri_core::{Result, TransferStats};
use tokio::sync::mpsc;

pub(crate) use crate::archive::{CHUNK, ChannelReader, io_error, pack, walk};

/// A writer into the ssh process's stdin. It also sends its buffered tail when
/// dropped, since the transport may drop it without a final flush.
pub(crate) fn stdin_writer(tx: mpsc::Sender<Vec<u8>>) -> crate::archive::ChannelWriter {
    crate::archive::ChannelWriter::new(tx, "the ssh process").flushing_on_drop()
}

/// Unpacks an archive from the remote `tar` into `to` (see [`crate::archive::unpack`]
/// for the destination rules and the refused entries).
pub(crate) fn unpack(reader: impl Read, to: &Path) -> Result<TransferStats> {
    crate::archive::unpack(reader, to, "the remote side")
}
