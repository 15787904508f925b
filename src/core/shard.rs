//! Which shard handles a namespace (core layer): `--shard N/M` splits the cluster's namespaces over
//! M operator deployments by a stable hash, so every incident, Runbook, Channel and pod is handled by
//! exactly one of them. The hash is FNV-1a (64 bit) of the namespace name fed to Lamping and Veach's
//! jump consistent hash: the same on every platform and release, and growing M from 3 to 4 moves only
//! the namespaces the new shard takes (a quarter), never one between two old shards.

use std::{fmt, str::FromStr};

/// The most shards a cluster may be split into.
pub const MAX_SHARDS: u32 = 64;

/// One shard of `count`: this process handles the namespaces that hash to `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Whether this shard handles `namespace`.
    pub fn owns(&self, namespace: &str) -> bool {
        shard_of(namespace, self.count) == self.index
    }

    /// The Lease of this shard's leader election: each shard elects its own leader.
    pub fn lease_name(&self, base: &str) -> String {
        format!("{base}-shard-{}-of-{}", self.index, self.count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let usage = || format!("{text:?} is not N/M (shard N of M, 0 <= N < M <= {MAX_SHARDS})");
        let (index, count) = text.trim().split_once('/').ok_or_else(usage)?;
        let index: u32 = index.parse().map_err(|_| usage())?;
        let count: u32 = count.parse().map_err(|_| usage())?;
        if count == 0 || count > MAX_SHARDS || index >= count {
            return Err(usage());
        }
        Ok(Self { index, count })
    }
}

/// The shard (0..count) that handles `namespace`.
pub fn shard_of(namespace: &str, count: u32) -> u32 {
    jump(fnv1a(namespace.as_bytes()), count.max(1))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Jump consistent hash (Lamping and Veach, 2014): a bucket in 0..buckets for `key`.
fn jump(mut key: u64, buckets: u32) -> u32 {
    let (mut bucket, mut next) = (-1_i64, 0_i64);
    while next < i64::from(buckets) {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // The top 31 bits of the key pick how far the next jump goes.
        let gap = f64::from(1_u32 << 31) / ((key >> 33) + 1) as f64;
        next = ((bucket + 1) as f64 * gap) as i64;
    }
    u32::try_from(bucket).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_n_of_m_and_refuses_the_rest() {
        assert_eq!("1/3".parse::<Shard>(), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "0/0", "1", "a/3", "-1/3", "0/65", "1/3/4", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad} must be refused");
        }
        assert_eq!(Shard { index: 1, count: 3 }.to_string(), "1/3");
    }

    #[test]
    fn every_namespace_has_exactly_one_shard() {
        for count in 1..=8 {
            for i in 0..500 {
                let namespace = format!("team-{i}");
                let owners = (0..count)
                    .filter(|&index| Shard { index, count }.owns(&namespace))
                    .count();
                assert_eq!(owners, 1, "{namespace} of {count}");
            }
        }
    }

    #[test]
    fn the_hash_is_fixed_across_releases() {
        // Changing these moves namespaces between shards on upgrade: it must never happen silently.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let seen: Vec<u32> = ["default", "shop", "payments", "kube-system"]
            .iter()
            .map(|ns| shard_of(ns, 4))
            .collect();
        assert_eq!(seen, [3, 0, 0, 1]);
    }

    #[test]
    fn spreads_evenly_and_moves_only_to_a_new_shard() {
        let names: Vec<String> = (0..4000).map(|i| format!("ns-{i}")).collect();
        let mut sizes = [0_usize; 4];
        for name in &names {
            sizes[shard_of(name, 4) as usize] += 1;
        }
        assert!(
            sizes.iter().all(|&n| (850..=1150).contains(&n)),
            "{sizes:?}"
        );
        for name in &names {
            let (before, after) = (shard_of(name, 4), shard_of(name, 5));
            assert!(after == before || after == 4, "{name}: {before} -> {after}");
        }
    }
}
