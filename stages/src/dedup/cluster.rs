//! From LSH buckets to decisions: candidate pairs from a band's sorted entries,
//! verification of candidates by signature similarity, and clusters by union-find.
//! Each cluster keeps its smallest id (ties between equal ids — the same text, or two
//! documents given one id — by key, i.e. input order), so which copy survives never
//! depends on sharding. A pair of documents sharing an id is accepted whatever its
//! similarity: ids must be unique downstream (they name the triples).

use std::collections::HashMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::bottom_k::estimate_jaccard;

/// Turns a band's `(band hash, key)` entries, fed in ascending order, into candidate
/// pairs: within each run of equal hashes, every key is paired with the run's first
/// (smallest) key. Union-find needs no more than this star to connect a bucket.
#[derive(Debug, Default)]
pub struct BucketPairs {
    run: Option<(u64, u64)>,
}

impl BucketPairs {
    /// The next entry; returns the pair it makes, if any.
    pub fn push(&mut self, (hash, key): (u64, u64)) -> Option<(u64, u64)> {
        match self.run {
            Some((run_hash, first)) if run_hash == hash => (key != first).then_some((first, key)),
            _ => {
                self.run = Some((hash, key));
                None
            }
        }
    }
}

/// A document taking part in some candidate pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its id.
    pub id: String,
    /// Its bottom-k sketch.
    pub sketch: Vec<u32>,
    /// Where it came from (the documents' `source`).
    pub source: String,
}

/// One row of the `dedup_clusters` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterRow {
    /// The document's id.
    pub id: String,
    /// The id of the copy the cluster keeps.
    pub cluster_id: String,
    /// Whether this is the kept copy.
    pub kept: bool,
    /// Jaccard similarity to the kept copy (exact for documents of at most
    /// `sketch_size` shingles, else estimated).
    pub similarity: f32,
    /// The document's key (unit and row) while dedup runs.
    pub key: u64,
    /// Where it came from.
    pub source: String,
}

/// What clustering counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterCounters {
    /// Distinct candidate pairs.
    pub candidate_pairs: u64,
    /// Candidates whose signature similarity fell below the threshold.
    pub rejected_pairs: u64,
    /// Candidates sharing an id (accepted whatever their similarity).
    pub same_id_pairs: u64,
    /// Clusters of two or more documents.
    pub clusters: u64,
    /// Documents removed (cluster members other than the kept copy).
    pub removed: u64,
}

/// Clusters and what to remove.
#[derive(Debug, Clone, Default)]
pub struct Clusters {
    /// Every member of every cluster, sorted by (cluster id, id, key).
    pub rows: Vec<ClusterRow>,
    /// Keys of the removed documents, sorted.
    pub removed: Vec<u64>,
    /// Counts.
    pub counters: ClusterCounters,
}

/// Verifies candidate pairs and clusters them.
#[derive(Debug, Clone, Copy)]
pub struct Clustering {
    /// Similarity threshold for verification.
    pub threshold: f64,
    /// Whether to verify candidates at all.
    pub verify: bool,
    /// The `k` of the members' bottom-k sketches.
    pub sketch_size: usize,
}

impl Clustering {
    /// Clusters `pairs` (deduplicated, `a < b`); `members` has every key they name.
    ///
    /// # Panics
    /// If a pair names a key missing from `members` (a bug in the caller).
    pub fn run(&self, pairs: &[(u64, u64)], members: &HashMap<u64, Member>) -> Clusters {
        let member = |key: &u64| {
            members
                .get(key)
                .unwrap_or_else(|| panic!("no member for key {key}"))
        };
        let threshold = self.threshold as f32;
        let accepted: Vec<bool> = pairs
            .par_iter()
            .map(|(a, b)| {
                let (a, b) = (member(a), member(b));
                a.id == b.id || !self.verify || self.similarity(a, b) >= threshold
            })
            .collect();
        let mut keys: Vec<u64> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
        keys.sort_unstable();
        keys.dedup();
        let index = |key: u64| keys.binary_search(&key).expect("every pair key is indexed");
        let mut sets = UnionFind::new(keys.len());
        for (&(a, b), _) in pairs.iter().zip(&accepted).filter(|(_, ok)| **ok) {
            sets.union(index(a), index(b));
        }
        let mut components: HashMap<usize, Vec<u64>> = HashMap::new();
        for (position, &key) in keys.iter().enumerate() {
            components.entry(sets.find(position)).or_default().push(key);
        }
        let mut clusters = Clusters::default();
        for component in components.values().filter(|c| c.len() > 1) {
            let kept = *component
                .iter()
                .min_by(|x, y| (&member(x).id, *x).cmp(&(&member(y).id, *y)))
                .expect("non-empty component");
            let kept_member = member(&kept);
            for &key in component {
                let this = member(&key);
                clusters.rows.push(ClusterRow {
                    id: this.id.clone(),
                    cluster_id: kept_member.id.clone(),
                    kept: key == kept,
                    similarity: self.similarity(this, kept_member),
                    key,
                    source: this.source.clone(),
                });
                if key != kept {
                    clusters.removed.push(key);
                }
            }
            clusters.counters.clusters += 1;
        }
        clusters
            .rows
            .sort_by(|x, y| (&x.cluster_id, &x.id, x.key).cmp(&(&y.cluster_id, &y.id, y.key)));
        clusters.removed.sort_unstable();
        clusters.counters.candidate_pairs = pairs.len() as u64;
        clusters.counters.rejected_pairs = accepted.iter().filter(|ok| !**ok).count() as u64;
        clusters.counters.same_id_pairs = pairs
            .iter()
            .filter(|(a, b)| member(a).id == member(b).id)
            .count() as u64;
        clusters.counters.removed = clusters.removed.len() as u64;
        clusters
    }
}

impl Clustering {
    fn similarity(&self, a: &Member, b: &Member) -> f32 {
        estimate_jaccard(&a.sketch, &b.sketch, self.sketch_size)
    }
}

/// Disjoint sets over `0..n` with path halving and union by size.
struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, sketch: &[u32]) -> Member {
        Member {
            source: format!("source-of-{id}"),
            id: id.into(),
            sketch: sketch.to_vec(),
        }
    }

    fn clustering(threshold: f64, verify: bool) -> Clustering {
        Clustering {
            threshold,
            verify,
            sketch_size: 256,
        }
    }

    #[test]
    fn buckets_pair_every_key_with_the_smallest_of_its_hash() {
        let mut buckets = BucketPairs::default();
        let pairs: Vec<(u64, u64)> = [(1, 10), (1, 11), (1, 12), (2, 5), (3, 7), (3, 8)]
            .into_iter()
            .filter_map(|entry| buckets.push(entry))
            .collect();
        assert_eq!(pairs, [(10, 11), (10, 12), (7, 8)]);
    }

    #[test]
    fn clusters_keep_the_smallest_id_whatever_the_keys() {
        let members = HashMap::from([
            (1, member("doc-c", &[1, 2, 3, 4])),
            (2, member("doc-a", &[1, 2, 3, 4])),
            (3, member("doc-b", &[1, 2, 3, 9])),
            (4, member("other", &[5, 6, 7, 8])),
        ]);
        // doc-b shares 3 of 5 distinct shingles with the others: J = 0.6.
        let clustering = clustering(0.55, true);
        let clusters = clustering.run(&[(1, 2), (1, 3), (1, 4)], &members);
        let rows: Vec<(&str, &str, bool, f32)> = clusters
            .rows
            .iter()
            .map(|r| (r.id.as_str(), r.cluster_id.as_str(), r.kept, r.similarity))
            .collect();
        assert_eq!(
            rows,
            [
                ("doc-a", "doc-a", true, 1.0),
                ("doc-b", "doc-a", false, 0.6),
                ("doc-c", "doc-a", false, 1.0)
            ]
        );
        assert_eq!(clusters.removed, [1, 3]);
        assert_eq!(
            clusters.counters,
            ClusterCounters {
                candidate_pairs: 3,
                rejected_pairs: 1,
                same_id_pairs: 0,
                clusters: 1,
                removed: 2
            }
        );
    }

    #[test]
    fn without_verification_every_candidate_joins() {
        let members = HashMap::from([(1, member("a", &[1])), (2, member("b", &[2]))]);
        let clusters = clustering(0.9, false).run(&[(1, 2)], &members);
        assert_eq!(clusters.removed, [2]);
    }

    #[test]
    fn equal_ids_keep_the_smaller_key() {
        let members = HashMap::from([(9, member("same", &[1])), (4, member("same", &[1]))]);
        let clusters = clustering(0.8, true).run(&[(4, 9)], &members);
        assert_eq!(clusters.removed, [9]);
        assert!(clusters.rows[0].kept && clusters.rows[0].key == 4);
    }

    #[test]
    fn documents_sharing_an_id_are_one_cluster_whatever_their_text() {
        let members = HashMap::from([
            (7, member("page-1", &[1, 2, 3])),
            (3, member("page-1", &[8, 9])),
            (5, member("page-2", &[4, 5])),
        ]);
        let clusters = clustering(0.8, true).run(&[(3, 7), (3, 5)], &members);
        assert_eq!(clusters.removed, [7], "the later copy of page-1 goes");
        assert_eq!(clusters.counters.same_id_pairs, 1);
        assert_eq!(clusters.counters.rejected_pairs, 1, "page-2 is not similar");
        let removed = clusters.rows.iter().find(|r| !r.kept).unwrap();
        assert_eq!(
            (
                removed.id.as_str(),
                removed.similarity,
                removed.source.as_str()
            ),
            ("page-1", 0.0, "source-of-page-1")
        );
    }
}
