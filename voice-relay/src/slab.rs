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
        // `idx` is either a freed slot or the one just pushed: always in bounds.
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

    /// One past the highest index ever used: iterate `0..slot_count()` with `get` to visit every entry without
    /// borrowing the slab.
    pub(crate) fn slot_count(&self) -> u32 {
        // `insert` refuses to create a slot whose index does not fit a u32, so this never saturates.
        u32::try_from(self.slots.len()).unwrap_or(u32::MAX)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.slots.iter().flatten()
    }
}
