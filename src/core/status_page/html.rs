//! The HTML page (core layer).
