//! sindri artifact rendering (being written).
