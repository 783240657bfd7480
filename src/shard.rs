//! `--shard K/N`: split the selected members among N jobs (a CI system's job matrix), so each
//! sweeps one part and `fleetauth report merge` joins the results.
//!
//! A member's shard depends on its name alone — the first 8 bytes of SHA-256(name), modulo N —
//! so adding or removing members never moves the others between shards (a job's history stays
//! comparable), and every job computes the same split without talking to the others. The split
//! is balanced statistically, not exactly: a small fleet may leave a shard empty, which is not
//! an error (that job reports no rows and succeeds).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Whether the member named `name` belongs to this shard.
    pub fn holds(&self, name: &str) -> bool {
        shard_of(name, self.count) == self.index
    }
}

/// The 1-based shard of `count` that the member named `name` belongs to.
pub fn shard_of(name: &str, count: u32) -> u32 {
    let digest = Sha256::digest(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(count)) as u32 + 1
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("`{s}` is not K/N (e.g. 2/5: the second of five shards, 1 ≤ K ≤ N)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = k.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("build-{i:03}")).collect()
    }

    #[test]
    fn every_member_is_in_exactly_one_shard() {
        let all = names(300);
        let shards: Vec<Shard> = (1..=4).map(|k| Shard { index: k, count: 4 }).collect();
        for n in &all {
            assert_eq!(shards.iter().filter(|s| s.holds(n)).count(), 1, "{n}");
        }
        // Roughly balanced: each of 4 shards holds 75 ± 30 of 300.
        for s in &shards {
            let held = all.iter().filter(|n| s.holds(n)).count();
            assert!((45..=105).contains(&held), "{s}: {held}");
        }
    }

    #[test]
    fn adding_members_moves_no_existing_member() {
        let before: Vec<u32> = names(100).iter().map(|n| shard_of(n, 5)).collect();
        let after: Vec<u32> = names(150).iter().map(|n| shard_of(n, 5)).collect();
        assert_eq!(before[..], after[..100]);
        // The split is a function of the name alone, stable across runs and machines.
        assert_eq!(shard_of("build-000", 5), shard_of("build-000", 5));
    }

    #[test]
    fn parsing() {
        assert_eq!("2/5".parse(), Ok(Shard { index: 2, count: 5 }));
        assert_eq!("1/1".parse(), Ok(Shard { index: 1, count: 1 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "", "1/2/3"] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains("is not K/N"), "{bad}: {err}");
        }
    }
}
