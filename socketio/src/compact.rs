//! Giving a hash table's memory back once most of its entries are gone.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// Shrinks `map` when it is under a quarter full (and not small): a hash table keeps its size when
/// entries leave, so after a crowd of sockets has gone, the tables that listed them would hold
/// their memory for good. Shrinking to twice the entries left keeps the cost amortised O(1) per
/// removal, since the table must lose half of them again before the next shrink.
pub(crate) fn shrink_sparse<K: Eq + Hash, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_emptied_by_a_crowd_shrinks_and_a_small_one_stays() {
        let mut map: HashMap<u32, u32> = (0..10_000).map(|i| (i, i)).collect();
        let full = map.capacity();
        for i in 0..9_990 {
            map.remove(&i);
            shrink_sparse(&mut map);
        }
        assert_eq!(map.len(), 10);
        assert!(map.capacity() <= 64, "{} of {full}", map.capacity());
        assert!((9_990..10_000).all(|i| map[&i] == i));

        // A small table is left alone, however empty.
        let mut small: HashMap<u32, u32> = (0..50).map(|i| (i, i)).collect();
        for i in 0..49 {
            small.remove(&i);
        }
        let capacity = small.capacity();
        shrink_sparse(&mut small);
        assert_eq!(small.capacity(), capacity);
    }
}
