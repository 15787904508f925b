//! The Atom feed of public updates (core layer), per RFC 4287: one entry per public update,
//! newest first, with ids stable across restarts and replicas (`urn:uuid:` from a hash), times in
//! RFC 3339, text escaped for XML 1.0 (characters XML cannot carry are dropped).

use jiff::Timestamp;

use super::{public::PublicIncident, snapshot::Snapshot};
use crate::core::text::fingerprint;

/// Most entries in the feed (the newest public updates).
pub const MAX_ENTRIES: usize = 50;
/// The feed's media type.
pub const CONTENT_TYPE: &str = "application/atom+xml; charset=utf-8";

/// A stable `urn:uuid:` (RFC 9562 version 8: custom, hash-based) for `parts`.
pub fn urn(parts: &[&str]) -> String {
    let high = fingerprint(&[&["atom-high"], parts].concat());
    let low = fingerprint(&[&["atom-low"], parts].concat());
    let hex = format!("{high}{low}");
    let variant = match u8::from_str_radix(&hex[16..17], 16).unwrap_or(0) & 0x3 {
        0 => '8',
        1 => '9',
        2 => 'a',
        _ => 'b',
    };
    format!(
        "urn:uuid:{}-{}-8{}-{variant}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// Text escaped for XML character data and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            // Not allowed in XML 1.0 documents at all, escaped or not.
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

fn rfc3339(time: Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The page's link for an anchor, when the page has a URL.
fn link(s: &Snapshot, anchor: &str) -> Option<String> {
    s.page
        .spec
        .url
        .as_ref()
        .map(|url| format!("{}/#{anchor}", url.trim_end_matches('/')))
}

/// The feed document.
pub fn feed(s: &Snapshot) -> String {
    let mut entries: Vec<(&PublicIncident, usize)> = s
        .incidents
        .iter()
        .flat_map(|i| (0..i.updates.len()).map(move |n| (i, n)))
        .collect();
    entries.sort_by(|(a, x), (b, y)| b.updates[*y].at.cmp(&a.updates[*x].at));
    entries.truncate(MAX_ENTRIES);
    let title = escape(&s.page.spec.title);
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    xml.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\" xml:lang=\"en\">\n");
    xml.push_str(&format!("  <id>{}</id>\n", urn(&["feed", &s.page_id])));
    xml.push_str(&format!("  <title>{title} - incident history</title>\n"));
    xml.push_str(&format!("  <updated>{}</updated>\n", rfc3339(s.updated_at)));
    xml.push_str(&format!("  <author><name>{title}</name></author>\n"));
    xml.push_str("  <generator>incident-operator</generator>\n");
    if let Some(url) = &s.page.spec.url {
        let base = escape(url.trim_end_matches('/'));
        xml.push_str(&format!(
            "  <link rel=\"alternate\" type=\"text/html\" href=\"{base}/\"/>\n"
        ));
        xml.push_str(&format!(
            "  <link rel=\"self\" type=\"application/atom+xml\" href=\"{base}/history.atom\"/>\n"
        ));
    }
    for (incident, n) in entries {
        let update = &incident.updates[n];
        xml.push_str("  <entry>\n");
        xml.push_str(&format!(
            "    <id>{}</id>\n",
            urn(&["update", &incident.id, &update.id])
        ));
        xml.push_str(&format!(
            "    <title>{}: {}</title>\n",
            escape(&incident.title),
            capitalized(update.status.as_str())
        ));
        xml.push_str(&format!("    <updated>{}</updated>\n", rfc3339(update.at)));
        xml.push_str(&format!(
            "    <published>{}</published>\n",
            rfc3339(update.at)
        ));
        if let Some(href) = link(s, &format!("incident-{}", incident.id)) {
            xml.push_str(&format!(
                "    <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n",
                escape(&href)
            ));
        }
        xml.push_str(&format!(
            "    <category term=\"{}\"/>\n",
            update.status.as_str()
        ));
        xml.push_str(&format!(
            "    <content type=\"text\">{}</content>\n",
            escape(&update.body)
        ));
        xml.push_str("  </entry>\n");
    }
    xml.push_str("</feed>\n");
    xml
}

/// `identified` -> `Identified`.
pub fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::core::status_page::fixtures::{self as fx, t};

    #[test]
    fn one_entry_per_public_update_newest_first_and_nothing_internal() {
        let s = Snapshot::new(&fx::page(), &fx::incidents(), t(30));
        let xml = feed(&s);
        assert_eq!(xml.matches("<entry>").count(), 4);
        let identified = xml.find("Checkout is slow: Identified").unwrap();
        let investigating = xml.find("Checkout is slow: Investigating").unwrap();
        assert!(identified < investigating);
        assert!(xml.contains("<link rel=\"self\" type=\"application/atom+xml\" href=\"https://status.example.com/history.atom\"/>"));
        for secret in fx::SECRETS {
            assert!(!xml.contains(secret), "{secret}");
        }
    }

    #[test]
    fn ids_are_stable_uuids() {
        let id = urn(&["update", "a", "b"]);
        assert_eq!(id, urn(&["update", "a", "b"]));
        assert_ne!(id, urn(&["update", "a", "c"]));
        let uuid = id.strip_prefix("urn:uuid:").unwrap();
        let groups: Vec<_> = uuid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(uuid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    proptest! {
        /// Escaped text holds no markup and no character XML 1.0 forbids.
        #[test]
        fn escaped_text_is_character_data(text in "\\PC*|[\\x00-\\x7f]*") {
            let out = escape(&text);
            prop_assert!(!out.contains('<') && !out.contains('"'));
            prop_assert!(out.chars().all(|c| c == '\t' || c == '\n' || c == '\r' || (c as u32) >= 0x20));
            prop_assert!(out.split('&').skip(1).all(|rest| ["amp;", "lt;", "gt;", "quot;", "apos;"].iter().any(|e| rest.starts_with(e))));
        }
    }
}
