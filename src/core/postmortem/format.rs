//! Post-mortem draft, the text helpers (core layer): timestamps, timeline entry types as words,
//! and text made safe for a Markdown table cell or a single line.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::EntryType;

/// Shown in a fact whose value is not known (yet).
pub(super) const UNKNOWN: &str = "—";

/// A timestamp to the second, in UTC, without the zone (headers and suffixes say UTC).
pub(super) fn timestamp(time: &Time) -> String {
    time.0.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// "SeverityChanged" -> "Severity changed".
pub(super) fn entry_label(type_: EntryType) -> String {
    let name = format!("{type_:?}");
    let mut label = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if i > 0 && c.is_uppercase() {
            label.push(' ');
            label.extend(c.to_lowercase());
        } else {
            label.push(c);
        }
    }
    label
}

/// Text made safe for one Markdown table cell: pipes escaped, line breaks as `<br>`.
pub(super) fn escape_cell(text: &str) -> String {
    text.trim()
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('|', "\\|")
        .replace('\n', "<br>")
}

/// Text on one line (for headings and list items): runs of whitespace become one space.
pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
