//! The AWS EC2 provider (being written).
