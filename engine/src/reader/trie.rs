//! The set of JSON paths the scanner follows, as a trie of object keys.
//!
//! Each inserted path ends at a node with a slot number; the scanner
//! records the values it finds there under that slot. A path is a list of
//! keys, not a dotted string, because raw keys may hold dots (Azure claim
//! names are URLs).

/// The root node: the top-level object.
pub const ROOT: u32 = 0;

#[derive(Clone, Debug)]
struct Node {
    /// Child key and node index. Nodes have few children, so a linear scan
    /// that checks length first beats hashing.
    children: Vec<(Box<[u8]>, u32)>,
    slot: Option<u16>,
}

#[derive(Clone, Debug)]
pub struct PathTrie {
    nodes: Vec<Node>,
    slots: u16,
}

impl Default for PathTrie {
    fn default() -> Self {
        PathTrie { nodes: vec![Node { children: Vec::new(), slot: None }], slots: 0 }
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
                None => {
                    let next = self.nodes.len() as u32;
                    self.nodes.push(Node { children: Vec::new(), slot: None });
                    let key: Box<[u8]> = key.as_bytes().into();
                    self.nodes[node as usize].children.push((key, next));
                    next
                }
            };
        }
        let slots = &mut self.slots;
        *self.nodes[node as usize].slot.get_or_insert_with(|| {
            *slots += 1;
            *slots - 1
        })
    }

    /// The child of `node` under `key`.
    #[inline]
    pub fn child(&self, node: u32, key: &[u8]) -> Option<u32> {
        self.nodes[node as usize]
            .children
            .iter()
            .find(|(k, _)| k.len() == key.len() && **k == *key)
            .map(|&(_, n)| n)
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
