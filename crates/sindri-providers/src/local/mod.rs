//! The local provider (being written).
