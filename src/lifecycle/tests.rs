//! Unit and property tests of the lifecycle decision.
