//! Set algebra over dense numbers (project and machine numbers): [`Set`], the compact form
//! an index stores, a sorted list or a bitset, whichever is smaller; and [`Bits`], the
//! bitset a query accumulates into, which counts, intersects and subtracts.

/// How many projects and machines the dictionaries hold: the size of every bitset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Universe {
    pub(super) projects: usize,
    pub(super) machines: usize,
}

/// A set of dense numbers: a sorted list or a bitset, whichever is smaller.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) enum Set {
    List(#[serde(with = "super::persist::raw::boxed")] Box<[u32]>),
    Dense(#[serde(with = "super::persist::raw::boxed")] Box<[u64]>),
}

/// Whether `n` numbers below `words * 64` take less room as a bitset than as a list.
fn dense_is_smaller(n: usize, words: usize) -> bool {
    n * 4 > words * 8
}

impl Set {
    /// The set of `ids` (in any order, repeats allowed).
    pub(super) fn from_ids(mut ids: Vec<u32>) -> Set {
        ids.sort_unstable();
        ids.dedup();
        let words = ids.last().map_or(0, |m| (*m as usize + 1).div_ceil(64));
        if dense_is_smaller(ids.len(), words) {
            let mut bits = vec![0u64; words];
            for i in ids {
                bits[(i >> 6) as usize] |= 1 << (i & 63);
            }
            Set::Dense(bits.into_boxed_slice())
        } else {
            Set::List(ids.into_boxed_slice())
        }
    }

    /// The union of `sets`, whose numbers are all below `universe`.
    pub(super) fn union_of<'s>(sets: impl Iterator<Item = &'s Set>, universe: usize) -> Set {
        let mut words = vec![0u64; universe.div_ceil(64)];
        for set in sets {
            match set {
                Set::List(ids) => ids.iter().for_each(|i| words[(i >> 6) as usize] |= 1 << (i & 63)),
                Set::Dense(d) => words.iter_mut().zip(d.iter()).for_each(|(w, x)| *w |= x),
            }
        }
        let used = words.iter().rposition(|w| *w != 0).map_or(0, |i| i + 1);
        words.truncate(used);
        let n: usize = words.iter().map(|w| w.count_ones() as usize).sum();
        if dense_is_smaller(n, used) {
            Set::Dense(words.into_boxed_slice())
        } else {
            let mut ids = Vec::with_capacity(n);
            for (i, w) in words.iter().enumerate() {
                let mut w = *w;
                while w != 0 {
                    ids.push(i as u32 * 64 + w.trailing_zeros());
                    w &= w - 1;
                }
            }
            Set::List(ids.into_boxed_slice())
        }
    }

    /// How many numbers it holds.
    pub(super) fn len(&self) -> i64 {
        match self {
            Set::List(ids) => ids.len() as i64,
            Set::Dense(words) => words.iter().map(|w| i64::from(w.count_ones())).sum(),
        }
    }
}

/// A set of dense numbers. While sparse it remembers which words it touched, so that
/// counting and clearing cost what was inserted; once a bitset (or a long list) is merged
/// in it switches to whole-array operations, which the compiler vectorizes.
#[derive(Debug, Clone)]
pub(super) struct Bits {
    words: Vec<u64>,
    touched: Vec<u32>,
    dense: bool,
}

impl Bits {
    /// An empty set of numbers below `universe`.
    pub(super) fn new(universe: usize) -> Bits {
        Bits { words: vec![0; universe.div_ceil(64)], touched: Vec::new(), dense: false }
    }

    #[inline]
    pub(super) fn insert(&mut self, i: u32) {
        let w = (i >> 6) as usize;
        let x = self.words[w];
        if x == 0 && !self.dense {
            self.touched.push(w as u32);
        }
        self.words[w] = x | (1 << (i & 63));
    }

    pub(super) fn union(&mut self, set: &Set) {
        match set {
            // A long list makes the set dense enough for whole-array operations, and
            // inserting without bookkeeping has no unpredictable branch.
            Set::List(ids) if self.dense || ids.len() * 8 > self.words.len() => {
                self.dense = true;
                self.touched.clear();
                for &i in ids.iter() {
                    self.words[(i >> 6) as usize] |= 1 << (i & 63);
                }
            }
            Set::List(ids) => ids.iter().for_each(|i| self.insert(*i)),
            Set::Dense(words) => {
                self.dense = true;
                self.touched.clear();
                self.words.iter_mut().zip(words.iter()).for_each(|(mine, theirs)| *mine |= theirs);
            }
        }
    }

    pub(super) fn contains(&self, i: u32) -> bool {
        self.words[(i >> 6) as usize] & (1 << (i & 63)) != 0
    }

    /// How many numbers it holds.
    pub(super) fn count(&self) -> i64 {
        if self.dense {
            return self.words.iter().map(|w| i64::from(w.count_ones())).sum();
        }
        self.touched.iter().map(|&w| i64::from(self.words[w as usize].count_ones())).sum()
    }

    /// Empties it for reuse (back to sparse).
    pub(super) fn clear(&mut self) {
        if self.dense {
            self.words.iter_mut().for_each(|w| *w = 0);
            self.dense = false;
        } else {
            for &w in &self.touched {
                self.words[w as usize] = 0;
            }
        }
        self.touched.clear();
    }

    /// The size of the intersection with `other` (same universe).
    pub(super) fn and_count(&self, other: &Bits) -> i64 {
        if self.dense && other.dense {
            return self.words.iter().zip(&other.words).map(|(a, b)| i64::from((a & b).count_ones())).sum();
        }
        let (small, big) = match (self.dense, other.dense) {
            (false, true) => (self, other),
            (true, false) => (other, self),
            _ if self.touched.len() <= other.touched.len() => (self, other),
            _ => (other, self),
        };
        small.touched.iter().map(|&w| i64::from((small.words[w as usize] & big.words[w as usize]).count_ones())).sum()
    }

    /// The numbers in the set and not in `other` (same universe), ascending.
    pub(super) fn minus(&self, other: &Bits) -> Vec<u32> {
        let mut out = Vec::new();
        let mut take = |i: usize| {
            let mut w = self.words[i] & !other.words[i];
            while w != 0 {
                out.push(i as u32 * 64 + w.trailing_zeros());
                w &= w - 1;
            }
        };
        if self.dense {
            (0..self.words.len()).for_each(&mut take);
        } else {
            let mut touched = self.touched.clone();
            touched.sort_unstable();
            touched.into_iter().for_each(|i| take(i as usize));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{Bits, Set};

    fn ids(set: &Set) -> Vec<u32> {
        match set {
            Set::List(ids) => ids.to_vec(),
            Set::Dense(words) => {
                (0..words.len() as u32 * 64).filter(|i| (words[*i as usize / 64] >> (i % 64)) & 1 == 1).collect()
            }
        }
    }

    fn bits(universe: usize, ids: &[u32]) -> Bits {
        let mut b = Bits::new(universe);
        ids.iter().for_each(|i| b.insert(*i));
        b
    }

    #[test]
    fn from_ids_sorts_dedups_and_picks_the_smaller_form() {
        // (ids, dense?): a list costs 4 bytes a number, a bitset 8 bytes per 64 numbers.
        let cases: [(Vec<u32>, bool); 5] = [
            (vec![], false),
            (vec![0], false),
            (vec![5, 3, 5, 3], false),
            ((0..3).collect(), true),
            (vec![1, 10_000], false),
        ];
        for (input, dense) in cases {
            let set = Set::from_ids(input.clone());
            let mut want = input;
            want.sort_unstable();
            want.dedup();
            assert_eq!(matches!(set, Set::Dense(_)), dense, "{want:?}");
            assert_eq!(ids(&set), want);
            assert_eq!(set.len(), want.len() as i64);
        }
    }

    #[test]
    fn a_dense_set_holds_every_number_of_its_words() {
        let all: Vec<u32> = (0..200).collect();
        let set = Set::from_ids(all.clone());
        assert!(matches!(set, Set::Dense(_)));
        assert_eq!(ids(&set), all);
        assert_eq!(set.len(), 200);
    }

    #[test]
    fn union_of_lists_and_bitsets() {
        let sparse = Set::from_ids(vec![1, 900]);
        let dense = Set::from_ids((0..100).collect());
        let empty = Set::from_ids(vec![]);
        let u = Set::union_of([&sparse, &dense, &empty].into_iter(), 1000);
        let mut want: Vec<u32> = (0..100).collect();
        want.push(900);
        assert_eq!(ids(&u), want);
        assert_eq!(u.len(), 101);
        // 101 numbers below 901 fit in 15 words (120 bytes) but 404 bytes as a list.
        assert!(matches!(u, Set::Dense(_)));
        let few = Set::union_of([&sparse, &Set::from_ids(vec![900, 901])].into_iter(), 1000);
        assert_eq!(few, Set::List(vec![1, 900, 901].into()));
        assert_eq!(Set::union_of([&empty].into_iter(), 1000), Set::List(vec![].into()));
        assert_eq!(Set::union_of(std::iter::empty(), 0), Set::List(vec![].into()));
    }

    #[test]
    fn bits_count_and_clear_sparse_and_dense() {
        let mut b = Bits::new(1000);
        assert_eq!(b.count(), 0);
        b.insert(3);
        b.insert(3);
        b.insert(999);
        assert_eq!(b.count(), 2);
        assert!(b.contains(3) && b.contains(999) && !b.contains(4));
        b.union(&Set::from_ids(vec![4, 999]));
        assert_eq!(b.count(), 3);
        // A bitset switches it to whole-array operations.
        b.union(&Set::from_ids((0..64).collect()));
        assert_eq!(b.count(), 65);
        b.insert(500);
        assert_eq!(b.count(), 66);
        b.clear();
        assert_eq!(b.count(), 0);
        assert!(!b.contains(500));
        // Sparse again after clearing.
        b.insert(7);
        assert_eq!(b.count(), 1);
        b.clear();
        assert!(!b.contains(7));
        assert_eq!(b.count(), 0);
    }

    #[test]
    fn a_long_list_makes_bits_dense() {
        let mut b = Bits::new(64 * 4);
        b.union(&Set::List((0..40).collect()));
        assert_eq!(b.count(), 40);
        b.insert(200);
        assert_eq!(b.count(), 41);
        assert_eq!(b.minus(&Bits::new(64 * 4)), (0..40).chain([200]).collect::<Vec<u32>>());
    }

    #[test]
    fn and_count_for_every_pair_of_forms() {
        let a_ids: Vec<u32> = (0..300).step_by(3).collect();
        let b_ids: Vec<u32> = (0..300).step_by(5).collect();
        let both = a_ids.iter().filter(|i| *i % 5 == 0).count() as i64;
        let sparse = |ids: &[u32]| bits(300, ids);
        let dense = |ids: &[u32]| {
            let mut b = Bits::new(300);
            b.union(&Set::Dense(vec![0; 5].into()));
            ids.iter().for_each(|i| b.insert(*i));
            b
        };
        for (a, b) in [
            (sparse(&a_ids), sparse(&b_ids)),
            (sparse(&a_ids), dense(&b_ids)),
            (dense(&a_ids), sparse(&b_ids)),
            (dense(&a_ids), dense(&b_ids)),
        ] {
            assert_eq!(a.and_count(&b), both);
            assert_eq!(b.and_count(&a), both);
            assert_eq!(a.and_count(&Bits::new(300)), 0);
        }
    }

    #[test]
    fn minus_is_ascending_in_both_forms() {
        let a = bits(1000, &[900, 5, 70, 6]);
        let b = bits(1000, &[6, 901]);
        assert_eq!(a.minus(&b), vec![5, 70, 900]);
        let mut d = a.clone();
        d.union(&Set::Dense(vec![1].into()));
        assert_eq!(d.minus(&b), vec![0, 5, 70, 900]);
        assert_eq!(Bits::new(10).minus(&b), Vec::<u32>::new());
    }
}
