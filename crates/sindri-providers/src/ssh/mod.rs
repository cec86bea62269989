//! SSH transport over the system OpenSSH client (being written).
