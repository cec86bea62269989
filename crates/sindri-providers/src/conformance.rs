//! The provider conformance suite (being written).
