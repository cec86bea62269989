//! sindri secret resolution (being written).
