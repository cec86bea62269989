//! sindri local state (being written).
