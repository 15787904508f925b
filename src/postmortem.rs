//! Post-mortem draft rendering.
