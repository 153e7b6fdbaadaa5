//! The set of JSON paths the scanner follows, as a trie of object keys.
//!
//! Each inserted path ends at a node with a slot number; the scanner
//! records the values it finds there under that slot. A path is a list of
//! keys, not a dotted string, because raw keys may hold dots (Azure claim
//! names are URLs).
//!
//! The scanner asks for the child under every key of every object it
//! follows, and most keys lead nowhere, so a lookup must be cheap above
//! all when it fails. Each key is known by its length and a 64-bit
//! fingerprint read with at most two loads; for keys of up to eight bytes
//! the two together are the key, so no bytes are compared. The root, which
//! holds the top-level keys of every log source, has dozens of children:
//! nodes that wide are looked up through a small hash table rather than
//! a scan.

/// The root node: the top-level object.
pub const ROOT: u32 = 0;

/// Nodes with more children than this get a hash index. Below it, a scan
/// of lengths and fingerprints takes fewer steps than hashing.
const SCAN_LIMIT: usize = 8;

#[derive(Clone, Debug, Default)]
struct Node {
    children: Vec<Child>,
    /// Open addressing over `children`, by [`slot_of`]: `u16::MAX` is an
    /// empty bucket. Empty unless there are more than [`SCAN_LIMIT`]
    /// children.
    index: Vec<u16>,
    slot: Option<u16>,
}

#[derive(Clone, Debug)]
struct Child {
    len: usize,
    print: u64,
    key: Box<[u8]>,
    node: u32,
}

impl Child {
    #[inline]
    fn is(&self, len: usize, print: u64, key: &[u8]) -> bool {
        self.len == len && self.print == print && (len <= 8 || self.rest_is(key))
    }

    /// Whether the bytes after the fingerprint's eight match, compared
    /// eight at a time as integers, the last eight overlapping the others:
    /// a slice comparison would call `memcmp`, a byte loop inside wasm.
    #[inline]
    fn rest_is(&self, key: &[u8]) -> bool {
        let n = key.len();
        let word =
            |k: &[u8], i: usize| u64::from_le_bytes(k[i..i + 8].try_into().expect("8 bytes"));
        let mut i = 8;
        while i + 8 < n {
            if word(&self.key, i) != word(key, i) {
                return false;
            }
            i += 8;
        }
        word(&self.key, n - 8) == word(key, n - 8)
    }
}

/// A fingerprint of `key` that, with its length, identifies a key of up
/// to eight bytes exactly: the bytes themselves, or for four to seven
/// bytes the first and last four (which overlap and so cover them all),
/// or for one to three bytes the first, middle and last.
#[inline]
fn fingerprint(key: &[u8]) -> u64 {
    let n = key.len();
    let u32_at = |i: usize| u32::from_le_bytes(key[i..i + 4].try_into().expect("4 bytes")) as u64;
    if n >= 8 {
        u64::from_le_bytes(key[..8].try_into().expect("8 bytes"))
    } else if n >= 4 {
        u32_at(0) | u32_at(n - 4) << 32
    } else if n > 0 {
        key[0] as u64 | (key[n / 2] as u64) << 8 | (key[n - 1] as u64) << 16
    } else {
        0
    }
}

/// The first bucket to probe for a key, in an index of `mask + 1` buckets.
#[inline]
fn slot_of(len: usize, print: u64, mask: usize) -> usize {
    let h = (print ^ (len as u64).rotate_left(56)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 40) as usize & mask
}

#[derive(Clone, Debug)]
pub struct PathTrie {
    nodes: Vec<Node>,
    slots: u16,
}

impl Default for PathTrie {
    fn default() -> Self {
        PathTrie { nodes: vec![Node::default()], slots: 0 }
    }
}

impl PathTrie {
    /// Adds `path` and returns its slot. Adding a path twice returns the
    /// same slot.
    pub fn insert(&mut self, path: &[&str]) -> u16 {
        let mut node = ROOT;
        for key in path {
            node = match self.child(node, key.as_bytes()) {
                Some(next) => next,
                None => self.add_child(node, key.as_bytes()),
            };
        }
        let slots = &mut self.slots;
        *self.nodes[node as usize].slot.get_or_insert_with(|| {
            *slots += 1;
            *slots - 1
        })
    }

    fn add_child(&mut self, parent: u32, key: &[u8]) -> u32 {
        let next = self.nodes.len() as u32;
        self.nodes.push(Node::default());
        let child = Child { len: key.len(), print: fingerprint(key), key: key.into(), node: next };
        let parent = &mut self.nodes[parent as usize];
        parent.children.push(child);
        if parent.children.len() > SCAN_LIMIT {
            parent.reindex();
        }
        next
    }

    /// The child of `node` under `key`. Inlined into the scanner, which
    /// calls it for every key it follows.
    #[inline(always)]
    pub fn child(&self, node: u32, key: &[u8]) -> Option<u32> {
        let node = &self.nodes[node as usize];
        let (len, print) = (key.len(), fingerprint(key));
        if node.index.is_empty() {
            for child in &node.children {
                if child.is(len, print, key) {
                    return Some(child.node);
                }
            }
            return None;
        }
        let mask = node.index.len() - 1;
        let mut bucket = slot_of(len, print, mask);
        loop {
            let at = node.index[bucket];
            let child = node.children.get(at as usize)?;
            if child.is(len, print, key) {
                return Some(child.node);
            }
            bucket = (bucket + 1) & mask;
        }
    }

    pub fn has_children(&self, node: u32) -> bool {
        !self.nodes[node as usize].children.is_empty()
    }

    pub fn slot(&self, node: u32) -> Option<u16> {
        self.nodes[node as usize].slot
    }

    pub fn slot_count(&self) -> usize {
        self.slots as usize
    }
}

impl Node {
    /// Rebuilds the hash index, at most half full so that probes are short
    /// and an empty bucket always ends them.
    fn reindex(&mut self) {
        let buckets = (self.children.len() * 2).next_power_of_two();
        self.index = vec![u16::MAX; buckets];
        let mask = buckets - 1;
        for (i, child) in self.children.iter().enumerate() {
            let mut bucket = slot_of(child.len, child.print, mask);
            while self.index[bucket] != u16::MAX {
                bucket = (bucket + 1) & mask;
            }
            self.index[bucket] = i as u16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_short_keys_apart() {
        let keys: Vec<Vec<u8>> = (0..=8)
            .flat_map(|n| {
                (0..n).flat_map(move |i| {
                    [b'a', b'b', b'\0'].map(|c| {
                        let mut k = vec![b'a'; n];
                        k[i] = c;
                        k
                    })
                })
            })
            .collect();
        for a in &keys {
            for b in &keys {
                let same = (a.len(), fingerprint(a)) == (b.len(), fingerprint(b));
                assert_eq!(same, a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn wide_and_narrow_nodes_find_every_child() {
        for width in [1, SCAN_LIMIT, SCAN_LIMIT + 1, 40] {
            let mut trie = PathTrie::default();
            let keys: Vec<String> =
                (0..width).map(|i| format!("key{i}-{}", "x".repeat(i))).collect();
            let slots: Vec<u16> = keys.iter().map(|k| trie.insert(&[k, "leaf"])).collect();
            for (key, slot) in keys.iter().zip(&slots) {
                let node = trie.child(ROOT, key.as_bytes()).expect("inserted");
                let leaf = trie.child(node, b"leaf").expect("inserted");
                assert_eq!(trie.slot(leaf), Some(*slot));
            }
            for missing in ["", "key", "key0-x", "key1-xx", "leaf", "key39-"] {
                assert_eq!(trie.child(ROOT, missing.as_bytes()), None, "{missing}");
            }
            // Keys one byte away from a child, at any place in the key.
            for key in &keys {
                for at in 0..key.len() {
                    let mut near = key.clone().into_bytes();
                    near[at] = b'#';
                    assert_eq!(trie.child(ROOT, &near), None, "{key} changed at {at}");
                }
            }
        }
    }
}
