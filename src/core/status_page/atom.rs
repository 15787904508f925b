//! The Atom feed of public updates (core layer), per RFC 4287: one entry per public update (and
//! per maintenance window), newest first, ids stable across restarts and replicas.
