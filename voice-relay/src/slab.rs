//! A minimal slab: stable `u32` indices into a `Vec`, freed slots reused. Indices are what rooms and lookup maps
//! hold, so a member list is a `Vec<u32>` and forwarding needs no hashing beyond the sender's token.

#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) fn new() -> Self {
        Self { slots: Vec::new(), free: Vec::new(), len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores `value`; `None` when 2^32 slots are in use (the relay's own caps stop far earlier).
    pub(crate) fn insert(&mut self, value: T) -> Option<u32> {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = u32::try_from(self.slots.len()).ok()?;
                self.slots.push(None);
                i
            }
        };
        self.slots[idx as usize] = Some(value);
        self.len += 1;
        Some(idx)
    }

    pub(crate) fn remove(&mut self, idx: u32) -> Option<T> {
        let v = self.slots.get_mut(idx as usize)?.take()?;
        self.free.push(idx);
        self.len -= 1;
        Some(v)
    }

    #[inline]
    pub(crate) fn get(&self, idx: u32) -> Option<&T> {
        self.slots.get(idx as usize)?.as_ref()
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, idx: u32) -> Option<&mut T> {
        self.slots.get_mut(idx as usize)?.as_mut()
    }

    /// Indices of the occupied slots, in index order (deterministic).
    pub(crate) fn indices(&self) -> impl Iterator<Item = u32> + '_ {
        // A slab never holds more than u32::MAX + 1 slots (`insert` refuses), so the cast is lossless.
        self.slots.iter().enumerate().filter(|(_, s)| s.is_some()).map(|(i, _)| i as u32)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.slots.iter().flatten()
    }
}
