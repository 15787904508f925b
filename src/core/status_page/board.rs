//! The responders' board (core layer).
